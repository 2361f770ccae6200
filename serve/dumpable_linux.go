//go:build linux

package serve

import "golang.org/x/sys/unix"

// HideProcess makes this process undumpable (prctl PR_SET_DUMPABLE 0): its
// /proc/PID/environ, mem, maps and fd, and ptrace, are then closed to other
// processes of the same user without CAP_SYS_PTRACE, among them an exec
// sink's command, which could otherwise read the engine's password from
// /proc/$PPID/environ. It also turns off core dumps. A child's exec resets
// the flag for the child, so commands run as usual. Root (CAP_SYS_PTRACE)
// still reads everything.
func HideProcess() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}

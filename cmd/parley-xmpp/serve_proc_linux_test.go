//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

// nobody is the user the engine runs as in TestExecChildCannotReadTheEngineEnvironment
// when the tests run as root: root reads every process's /proc entries
// (CAP_SYS_PTRACE), so the guarantee is about a non-root engine and its
// children, which run as the same user.
const nobody = 65534

// An exec sink's command runs as the engine's user, yet can't read the
// engine's environment (where PARLEY_XMPP_PASS is) from /proc/$PPID/environ:
// serve makes itself undumpable before it starts any sink. Run as root, the
// engine and so its sink run as nobody; a control shows that nobody reads a
// parent's environ when the parent isn't serve.
func TestExecChildCannotReadTheEngineEnvironment(t *testing.T) {
	s := xmpptest.Require(t)
	bin := buildCLI(t)
	// A directory the engine's user can reach: t.TempDir's are root's alone.
	dir, err := os.MkdirTemp("", "parley-environ-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	shared := filepath.Join(dir, "parley-xmpp")
	data, err := os.ReadFile(bin)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(shared, data, 0o755))

	// The sink: the id it runs as, the parent's name, and whether the
	// parent's environment can be read; then it takes the message.
	script := filepath.Join(dir, "snoop.sh")
	require.NoError(t, os.WriteFile(script, []byte(`#!/bin/sh
out="$1"
{
  echo "uid=$(id -u)"
  echo "parent=$(cat /proc/$PPID/comm)"
  if cat /proc/$PPID/environ > "$out.environ" 2>/dev/null; then echo "environ=readable"; else echo "environ=refused"; fi
} > "$out.tmp"
mv "$out.tmp" "$out"
cat > /dev/null
`), 0o755))

	asUser := func(cmd *exec.Cmd) {
		if os.Getuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		}
	}
	own := func(paths ...string) {
		if os.Getuid() == 0 {
			for _, p := range paths {
				require.NoError(t, os.Chown(p, nobody, nobody))
			}
		}
	}
	result := func(out string) map[string]string {
		t.Helper()
		var b []byte
		require.Eventually(t, func() bool { b, err = os.ReadFile(out); return err == nil }, 30*time.Second, 20*time.Millisecond, "the sink ran")
		m := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			k, v, _ := strings.Cut(l, "=")
			m[k] = v
		}
		return m
	}
	pw := s.Accounts[0][1]
	env := []string{"PATH=" + os.Getenv("PATH"), "PARLEY_XMPP_PASS=" + pw, "PARLEY_XMPP_SERVICE=xmpp://" + s.Addr}

	// Control: the same script, as the same user, under a parent that is
	// not serve, reads the parent's environment.
	ctlDir := filepath.Join(dir, "control")
	require.NoError(t, os.Mkdir(ctlDir, 0o755))
	own(ctlDir)
	ctl := exec.Command("sh", "-c", script+` "$0" < /dev/null; sleep 0`, filepath.Join(ctlDir, "result"))
	ctl.Env = env
	asUser(ctl)
	out, err := ctl.CombinedOutput()
	require.NoError(t, err, "%s", out)
	c := result(filepath.Join(ctlDir, "result"))
	require.Equal(t, "environ=readable", "environ="+c["environ"], "the control reads its parent's environment: %v", c)
	b, err := os.ReadFile(filepath.Join(ctlDir, "result.environ"))
	require.NoError(t, err)
	require.Contains(t, string(b), "PARLEY_XMPP_PASS="+pw, "the control sees the password")

	// serve, with the script as an exec sink.
	run := filepath.Join(dir, "serve")
	require.NoError(t, os.Mkdir(run, 0o755))
	own(run)
	topic := topicFor(t)
	cfg := filepath.Join(run, "serve.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `
backend_config:
  service: "xmpp://%s"
  domain: %q
  muc_service: %q
  username: %q
serve:
  state_dir: %q
  routes:
    - name: snoop
      topics: [%q]
      start: start
      sink:
        exec: {command: [%q, %q], timeout: 10s}
`, s.Addr, s.Domain, s.MUC, s.Accounts[0][0], filepath.Join(run, "state"), topic, script, filepath.Join(run, "result")), 0o600))
	own(cfg)
	engine := exec.Command(shared, "--config", cfg, "serve")
	engine.Env = env
	engine.Stderr = os.Stderr
	asUser(engine)
	require.NoError(t, engine.Start())
	t.Cleanup(func() { _ = engine.Process.Kill(); _, _ = engine.Process.Wait() })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	postAs(t, ctx, s, topic, 1)
	r := result(filepath.Join(run, "result"))
	assert.NotEqual(t, "0", r["uid"], "the sink runs as a user without CAP_SYS_PTRACE")
	assert.Equal(t, c["uid"], r["uid"], "the sink runs as the control did")
	assert.Equal(t, "parley-xmpp", r["parent"], "the sink's parent is the engine")
	assert.Equal(t, "refused", r["environ"], "the sink read the engine's /proc/$PPID/environ")
	if b, err := os.ReadFile(filepath.Join(run, "result.environ")); err == nil {
		assert.NotContains(t, string(b), pw)
	}

	require.NoError(t, engine.Process.Signal(syscall.SIGTERM))
	st, err := engine.Process.Wait()
	require.NoError(t, err)
	assert.True(t, st.Success(), "serve exits 0 on SIGTERM: %v", st)
}

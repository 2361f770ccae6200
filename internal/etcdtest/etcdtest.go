// Package etcdtest starts a real etcd for tests: loopback, random ports, a
// temp data dir (Debian's etcd-server; missing, a test fails with CI=true and
// skips otherwise).
package etcdtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

// Server is a real etcd on loopback, with random ports and a temp data
// dir; Restart keeps both.
type Server struct {
	t                  testing.TB
	bin, dir           string
	ClientURL, peerURL string
	cmd                *exec.Cmd
}

func FreePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func Start(t testing.TB) *Server {
	bin := xmpptest.RequireTool(t, "etcd", "etcd-server")
	e := &Server{t: t, bin: bin, dir: t.TempDir(),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
		peerURL:   fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))}
	e.Start()
	t.Cleanup(e.Stop)
	return e
}

func (e *Server) Start() {
	t := e.t
	e.cmd = exec.Command(e.bin, "--name", "test", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.ClientURL, "--advertise-client-urls", e.ClientURL,
		"--listen-peer-urls", e.peerURL, "--initial-advertise-peer-urls", e.peerURL,
		"--initial-cluster", "test="+e.peerURL, "--initial-cluster-state", "new",
		"--log-level", "error", "--logger", "zap")
	logf, err := os.OpenFile(filepath.Join(e.dir, "etcd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	require.NoError(t, e.cmd.Start())
	addr := strings.TrimPrefix(e.ClientURL, "http://")
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "etcd listens")
}

func (e *Server) Stop() {
	if e.cmd != nil && e.cmd.ProcessState == nil {
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _, _ = e.cmd.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = e.cmd.Process.Kill()
			<-done
		}
	}
}

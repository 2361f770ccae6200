package xmpptest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-go/parley-xmpp/internal/devconfig"
)

// RequireEjabberd says whether ejabberd is here (and can run as its user):
// missing, the test fails in CI (CI=true or PARLEY_XMPP_REQUIRE_SERVER=1) and is
// skipped elsewhere.
func RequireEjabberd(t testing.TB) {
	t.Helper()
	_, err := exec.LookPath("ejabberdctl")
	if err == nil {
		_, err = user.Lookup("ejabberd")
	}
	if err == nil {
		err = debianPackage("erlang-p1-sqlite3") // the SQL storage (devconfig)
	}
	if err == nil && os.Geteuid() != 0 {
		err = errors.New("ejabberdctl switches to user ejabberd: the tests must run as root")
	}
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
			t.Fatalf("ejabberd not installed (%v): CI must install it (apt-get install -y ejabberd erlang-p1-sqlite3; scripts/devserver.sh start does)", err)
		}
		t.Skipf("ejabberd not installed (%v); apt-get install -y ejabberd erlang-p1-sqlite3 (with CI=true this fails)", err)
	}
}

// StartEjabberd starts a private ejabberd (its own Erlang node, config, spool
// and certificate in a temp dir, random loopback ports) like StartProsody.
func StartEjabberd(t testing.TB, o PrivateOptions) *Private {
	t.Helper()
	RequireEjabberd(t)
	// ejabberdctl runs the node as user ejabberd: the dir must be theirs, and
	// reachable (t.TempDir's parent is private to root).
	dir, err := os.MkdirTemp("", "parley-ejabberd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p := &Private{Name: "ejabberd", Domain: devconfig.Domain, MUC: devconfig.MUC, Dir: dir, CA: NewCA(t, "parley test CA")}
	for _, d := range []string{"etc", "db", "log", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	certPEM, keyPEM := p.CA.Issue(t, p.Domain, p.MUC)
	crt, key := filepath.Join(dir, "etc", "server.crt"), filepath.Join(dir, "etc", "server.key")
	if err := os.WriteFile(crt, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	inetrc, err := os.ReadFile("/etc/ejabberd/inetrc")
	if err != nil {
		inetrc = []byte("{lookup,[\"file\",\"native\"]}.\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "inetrc"), inetrc, 0o644); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "ejabberd.pid")
	c2s, direct := freePort(t), freePort(t)
	p.Addr = fmt.Sprintf("127.0.0.1:%d", c2s)
	p.DirectTLS = fmt.Sprintf("127.0.0.1:%d", direct)
	srv := devconfig.Server{For: "a test's private ejabberd, internal/xmpptest", Dir: dir, Data: filepath.Join(dir, "data"),
		Port: c2s, TLS: &devconfig.TLS{Cert: crt, Key: key}, DirectTLSPort: direct, RequireEncryption: o.RequireEncryption,
		StreamManagement: o.StreamManagement, ResumeSeconds: o.resumeSeconds(),
		Node: "parleytest" + strings.ToLower(rand.Text()[:10]), Cookie: strings.ToLower(rand.Text()), Mnesia: o.Mnesia}
	if o.NoTLS {
		p.DirectTLS, srv.TLS, srv.DirectTLSPort = "", nil, 0
	}
	yml, ctl, err := devconfig.Ejabberd(srv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "ejabberdctl.cfg"), ctl, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "ejabberd.yml"), yml, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", "ejabberd:ejabberd", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v\n%s", dir, err, out)
	}
	ejctl := func(args ...string) ([]byte, error) {
		base := []string{"--config-dir", filepath.Join(dir, "etc"), "--ctl-config", filepath.Join(dir, "etc", "ejabberdctl.cfg"),
			"--spool", filepath.Join(dir, "db"), "--logs", filepath.Join(dir, "log")}
		return exec.Command("ejabberdctl", append(base, args...)...).CombinedOutput()
	}
	stop := func() {
		data, err := os.ReadFile(pidFile)
		if err != nil {
			return
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 {
			return
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for range 100 {
			if syscall.Kill(pid, 0) != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	t.Cleanup(stop)
	if out, err := ejctl("start"); err != nil {
		t.Fatalf("ejabberdctl start: %v\n%s\n%s", err, out, p.ejabberdLogs())
	}
	if out, err := ejctl("started"); err != nil {
		t.Fatalf("ejabberd did not start: %v\n%s\n%s", err, out, p.ejabberdLogs())
	}
	for u, pw := range o.Accounts {
		if out, err := ejctl("register", u, p.Domain, pw); err != nil {
			t.Fatalf("ejabberdctl register %s: %v\n%s", u, err, out)
		}
	}
	waitListening(t, p, nil, p.ejabberdLogs)
	return p
}

func (p *Private) ejabberdLogs() string {
	var b strings.Builder
	for _, f := range []string{"ejabberd.log", "error.log", "crash.log"} {
		data, _ := os.ReadFile(filepath.Join(p.Dir, "log", f))
		fmt.Fprintf(&b, "--- %s\n%s", f, data)
	}
	return b.String()
}

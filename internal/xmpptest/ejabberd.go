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
	if err == nil && os.Geteuid() != 0 {
		err = errors.New("ejabberdctl switches to user ejabberd: the tests must run as root")
	}
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
			t.Fatalf("ejabberd not installed (%v): CI must install it (apt-get install -y ejabberd)", err)
		}
		t.Skipf("ejabberd not installed (%v); apt-get install -y ejabberd (with CI=true this fails)", err)
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
	p := &Private{Name: "ejabberd", Domain: "parley.local", MUC: "muc.parley.local", Dir: dir, CA: NewCA(t, "parley test CA")}
	for _, d := range []string{"etc", "db", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	certPEM, keyPEM := p.CA.Issue(t, p.Domain, p.MUC)
	pem := filepath.Join(dir, "etc", "server.pem")
	if err := os.WriteFile(pem, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	inetrc, err := os.ReadFile("/etc/ejabberd/inetrc")
	if err != nil {
		inetrc = []byte("{lookup,[\"file\",\"native\"]}.\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "inetrc"), inetrc, 0o644); err != nil {
		t.Fatal(err)
	}
	node := "parleytest" + strings.ToLower(rand.Text()[:10])
	pidFile := filepath.Join(dir, "ejabberd.pid")
	ctl := fmt.Sprintf(`ERLANG_NODE=%s@localhost
ERL_OPTIONS="-setcookie %s -env ERL_CRASH_DUMP_BYTES 0"
export ERL_EPMD_ADDRESS=127.0.0.1
INET_DIST_INTERFACE=127.0.0.1
EJABBERD_CONFIG_PATH=%s
EJABBERD_PID_PATH=%s
`, node, strings.ToLower(rand.Text()), filepath.Join(dir, "etc", "ejabberd.yml"), pidFile)
	if err := os.WriteFile(filepath.Join(dir, "etc", "ejabberdctl.cfg"), []byte(ctl), 0o644); err != nil {
		t.Fatal(err)
	}
	c2s, direct := freePort(t), freePort(t)
	p.Addr = fmt.Sprintf("127.0.0.1:%d", c2s)
	p.DirectTLS = fmt.Sprintf("127.0.0.1:%d", direct)
	certfiles := fmt.Sprintf("[%q]", pem)
	starttls := fmt.Sprintf("starttls: true\n    starttls_required: %v", o.RequireEncryption)
	directListener := fmt.Sprintf(`  - port: %d
    ip: "127.0.0.1"
    module: ejabberd_c2s
    tls: true
    shaper: none
    access: all
`, direct)
	if o.NoTLS {
		certfiles, starttls, directListener, p.DirectTLS = "[]", "starttls: false", "", ""
	}
	sm := ""
	if o.StreamManagement {
		sm = fmt.Sprintf("\n  mod_stream_mgmt: {resume_timeout: %d}", o.resumeSeconds())
	}
	yml := fmt.Sprintf(`# A private ejabberd for one test (internal/xmpptest).
hosts: [%q]
loglevel: info
log_rotate_count: 0
certfiles: %s
auth_method: internal
listen:
  - port: %d
    ip: "127.0.0.1"
    module: ejabberd_c2s
    %s
    max_stanza_size: 262144
    shaper: none
    access: all
%sacl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}%s
  mod_mam: {db_type: mnesia, assume_mam_usage: true, default: always}
  mod_muc:
    host: %q
    db_type: mnesia
    access: all
    access_create: all
    access_persistent: all
    access_mam: all
    default_room_options: {mam: true, persistent: true}
`, p.Domain, certfiles, c2s, starttls, directListener, sm, p.MUC)
	if err := os.WriteFile(filepath.Join(dir, "etc", "ejabberd.yml"), []byte(yml), 0o640); err != nil {
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

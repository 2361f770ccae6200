package xmpptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-go/parley-xmpp/internal/devconfig"
)

// CA is a certificate authority made up for one test.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// NewCA makes a fresh CA.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
}

// Pool is a cert pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// TLSConfig trusts only this CA.
func (ca *CA) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
}

// WriteFile writes the CA's certificate (PEM) into dir and returns its path.
func (ca *CA) WriteFile(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(p, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue makes a server certificate for names, signed by the CA, as PEM.
func (ca *CA) Issue(t testing.TB, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// PrivateOptions shape a private server.
type PrivateOptions struct {
	// RequireEncryption: c2s_require_encryption (STARTTLS required on the c2s
	// port). Otherwise STARTTLS is offered, not required.
	RequireEncryption bool
	// NoTLS: no certificate, so no STARTTLS and no direct-TLS port (DirectTLS
	// is empty), like the dev server.
	NoTLS bool
	// Accounts to register: username → password.
	Accounts map[string]string
	// StreamManagement: XEP-0198 with resumption (Prosody's smacks,
	// ejabberd's mod_stream_mgmt), as the dev servers have it; a lost session
	// waits ResumeTimeout for its resumption (0: 300 s).
	StreamManagement bool
	ResumeTimeout    time.Duration
	// Mnesia: ejabberd keeps rooms and archives in mnesia instead of SQLite.
	Mnesia bool
}

// resumeSeconds is o's resumption timeout, in whole seconds.
func (o PrivateOptions) resumeSeconds() int {
	if o.ResumeTimeout <= 0 {
		return 300
	}
	return max(1, int(o.ResumeTimeout/time.Second))
}

// Private is a private server (Prosody or ejabberd) started by a test: its own
// config, data and certificate in a temp dir, on random loopback ports, stopped
// (by its pid) when the test ends.
type Private struct {
	Name      string // prosody or ejabberd
	Domain    string // parley.local
	MUC       string // muc.parley.local
	Addr      string // c2s: STARTTLS offered (or required)
	DirectTLS string // c2s_direct_tls_ports: TLS from the first byte
	CA        *CA    // signed the server's certificate (for Domain and MUC)
	Dir       string
}

// RequireProsody says whether the Prosody binaries are here: missing, the test
// fails in CI (CI=true or PARLEY_XMPP_REQUIRE_SERVER=1) and is skipped elsewhere.
func RequireProsody(t testing.TB) {
	t.Helper()
	var err error
	for _, bin := range []string{"prosody", "prosodyctl"} {
		if _, err = exec.LookPath(bin); err != nil {
			break
		}
	}
	if err == nil {
		err = debianPackage("lua-dbi-sqlite3") // the SQL storage (devconfig)
	}
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
			t.Fatalf("prosody not installed (%v): CI must install it (apt-get install -y prosody lua-dbi-sqlite3; scripts/devserver.sh start does)", err)
		}
		t.Skipf("prosody not installed (%v); apt-get install -y prosody lua-dbi-sqlite3 (with CI=true this fails)", err)
	}
}

// debianPackage: the package is installed (dpkg says so).
func debianPackage(name string) error {
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", name).Output(); err != nil || !strings.HasSuffix(string(out), " installed") {
		return fmt.Errorf("package %s is not installed", name)
	}
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// StartProsody starts a private Prosody for domain parley.local with a
// certificate from a fresh CA, and registers o.Accounts.
func StartProsody(t testing.TB, o PrivateOptions) *Private {
	t.Helper()
	RequireProsody(t)
	dir := t.TempDir()
	p := &Private{Name: "prosody", Domain: devconfig.Domain, MUC: devconfig.MUC, Dir: dir, CA: NewCA(t, "parley test CA")}
	certPEM, keyPEM := p.CA.Issue(t, p.Domain, p.MUC)
	crt, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(crt, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	c2s, direct := freePort(t), freePort(t)
	p.Addr = fmt.Sprintf("127.0.0.1:%d", c2s)
	p.DirectTLS = fmt.Sprintf("127.0.0.1:%d", direct)
	srv := devconfig.Server{For: "a test's private Prosody, internal/xmpptest", Dir: dir, Data: filepath.Join(dir, "data"),
		Port: c2s, TLS: &devconfig.TLS{Cert: crt, Key: key}, DirectTLSPort: direct, RequireEncryption: o.RequireEncryption,
		StreamManagement: o.StreamManagement, ResumeSeconds: o.resumeSeconds()}
	if o.NoTLS {
		p.DirectTLS, srv.TLS, srv.DirectTLSPort = "", nil, 0
	}
	cfg, err := devconfig.Prosody(srv)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "prosody.cfg.lua")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	for user, pass := range o.Accounts {
		out, err := exec.Command("prosodyctl", "--config", cfgPath, "register", user, p.Domain, pass).CombinedOutput()
		if err != nil {
			t.Fatalf("prosodyctl register %s: %v\n%s", user, err, out)
		}
	}
	cmd := exec.Command("prosody", "--config", cfgPath, "-F")
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prosody: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = out.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	waitListening(t, p, exited, p.Logs)
	return p
}

// waitListening waits until p's ports accept connections (10 s at most),
// failing early when exited (if any) closes.
func waitListening(t testing.TB, p *Private, exited <-chan struct{}, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range []string{p.Addr, p.DirectTLS} {
		for a != "" {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				_ = c.Close()
				break
			}
			select {
			case <-exited:
				t.Fatalf("%s exited at start; its logs:\n%s", p.Name, logs())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not listening on %s after 10s; its logs:\n%s", p.Name, a, logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Logs returns the private Prosody's logs (for failure messages).
func (p *Private) Logs() string {
	var b strings.Builder
	for _, f := range []string{"stdout.log", "prosody.log", "prosody.err"} {
		data, _ := os.ReadFile(filepath.Join(p.Dir, f))
		fmt.Fprintf(&b, "--- %s\n%s", f, data)
	}
	return b.String()
}

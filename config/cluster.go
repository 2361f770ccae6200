package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/parley-go/parley-xmpp/runtime"
)

// Cluster is serve's cluster block: the serve processes (nodes) that name the
// same cluster in the same etcd share the routes' topics, each (route, topic)
// delivered by one node at a time, fenced by an etcd lease.
type Cluster struct {
	// Name separates clusters sharing one etcd; it prefixes every key.
	Name string `yaml:"name"`
	// Etcd is where members, locks and cursors live.
	Etcd Etcd `yaml:"etcd"`
	// Listen is this node's address for the other nodes (host:port; port 0
	// picks a free one) [127.0.0.1:0].
	Listen string `yaml:"listen"`
	// Advertise is the host the other nodes reach this node at [Listen's host].
	Advertise string `yaml:"advertise"`
	// LeaseTTL bounds how long a node that stopped answering keeps its topics
	// [10s]; whole seconds, at least 2s.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// TLS, when set, turns on mutual TLS between the nodes: the listener
	// requires a client certificate signed by the CA, and a node dialing
	// another presents its certificate and checks the other's against the CA.
	// Unset, the listener takes plain, unauthenticated gRPC (docs/cluster.md).
	TLS *NodeTLS `yaml:"tls"`
}

// NodeTLS is the nodes' mutual TLS: PEM files, relative paths relative to the
// configuration file. Every node's certificate is both its server's and its
// client's (extended key usages serverAuth and clientAuth, or none), and names
// the host the other nodes dial (advertise, or listen's host), unless
// server_name says which name to check instead.
type NodeTLS struct {
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	CAFile     string `yaml:"ca_file"`
	ServerName string `yaml:"server_name"`
}

// Etcd says how to reach etcd.
type Etcd struct {
	Endpoints    []string `yaml:"endpoints"`
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	PasswordFile string   `yaml:"password_file"`
	TLS          *EtcdTLS `yaml:"tls"`
	DialTimeout  Duration `yaml:"dial_timeout"` // [5s]
}

// EtcdTLS holds PEM files; relative paths are relative to the configuration
// file.
type EtcdTLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// DefaultLeaseTTL is the lease TTL when lease_ttl is unset.
const DefaultLeaseTTL = 10 * time.Second

var clusterNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// TTL is the lease TTL with its default applied.
func (c *Cluster) TTL() time.Duration {
	if c.LeaseTTL <= 0 {
		return DefaultLeaseTTL
	}
	return time.Duration(c.LeaseTTL)
}

// ListenAddr is Listen with its default applied.
func (c *Cluster) ListenAddr() string {
	if c.Listen == "" {
		return "127.0.0.1:0"
	}
	return c.Listen
}

// EtcdPassword is the password, read from password_file when that is set.
func (c *Cluster) EtcdPassword() (string, error) {
	if c.Etcd.PasswordFile == "" {
		return c.Etcd.Password, nil
	}
	data, err := ReadSecretFile(c.Etcd.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("%w: serve.cluster.etcd.password_file: %v", ErrConfig, err)
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}

// validate checks the block (nil: no cluster) and makes its file paths
// relative to the configuration file's directory.
func (c *Cluster) validate(configDir string) error {
	if c == nil {
		return nil
	}
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: serve.cluster.%s: %s", ErrConfig, key, fmt.Sprintf(format, a...))
	}
	if !clusterNameRE.MatchString(c.Name) {
		return bad("name", "%q: give the cluster a name of letters, digits, '.', '_' or '-' (it prefixes its keys in etcd)", c.Name)
	}
	if len(c.Etcd.Endpoints) == 0 {
		return bad("etcd.endpoints", "at least one etcd endpoint (host:port or http(s)://host:port) is needed")
	}
	for i, e := range c.Etcd.Endpoints {
		if err := checkEndpoint(e); err != nil {
			return bad(fmt.Sprintf("etcd.endpoints[%d]", i), "%q: %v", e, err)
		}
	}
	if c.Etcd.Password != "" && c.Etcd.PasswordFile != "" {
		return bad("etcd.password_file", "set password or password_file, not both")
	}
	if (c.Etcd.Password != "" || c.Etcd.PasswordFile != "") && c.Etcd.Username == "" {
		return bad("etcd.username", "a password needs a username")
	}
	if c.Etcd.Username != "" || c.Etcd.Password != "" || c.Etcd.PasswordFile != "" {
		for i, e := range c.Etcd.Endpoints {
			if host, plain := plaintextEndpoint(e, c.Etcd.TLS != nil); plain && !runtime.IsLoopback(host) {
				return bad(fmt.Sprintf("etcd.endpoints[%d]", i), "%q: etcd.username and its password would cross the network in clear text: set etcd.tls (an http:// endpoint never uses it: write https:// or host:port), or use an etcd on loopback", e)
			}
		}
	}
	if _, port, err := net.SplitHostPort(c.ListenAddr()); err != nil || port == "" {
		return bad("listen", "%q is not host:port", c.Listen)
	}
	if ttl := c.LeaseTTL; ttl != 0 && (time.Duration(ttl) < 2*time.Second || time.Duration(ttl)%time.Second != 0) {
		return bad("lease_ttl", "%s: use whole seconds, at least 2s (etcd leases count seconds)", time.Duration(ttl))
	}
	rel := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) && configDir != "" {
			*p = filepath.Join(configDir, *p)
		}
	}
	rel(&c.Etcd.PasswordFile)
	if t := c.Etcd.TLS; t != nil {
		if (t.CertFile == "") != (t.KeyFile == "") {
			return bad("etcd.tls", "cert_file and key_file go together")
		}
		rel(&t.CAFile)
		rel(&t.CertFile)
		rel(&t.KeyFile)
	}
	if t := c.TLS; t != nil {
		// Read with the secrets (loadSecrets), once the paths are final.
		rel(&t.CertFile)
		rel(&t.KeyFile)
		rel(&t.CAFile)
	}
	return nil
}

// plaintextEndpoint says whether the etcd client talks to endpoint e (checked
// by checkEndpoint) without TLS, as cluster/etcd.go dials it: an http:// URL
// always (etcd's client drops TLS for it), host:port unless etcd.tls is set
// (https:// then); and returns its host.
func plaintextEndpoint(e string, withTLS bool) (host string, plain bool) {
	hostport := e
	plain = !withTLS
	if strings.Contains(e, "://") {
		u, err := url.Parse(e)
		if err != nil {
			return "", true
		}
		hostport, plain = u.Host, u.Scheme != "https"
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, plain
	}
	return host, plain
}

// NodeTLSConfigs reads tls's files: the listener's configuration (it requires
// and verifies a client certificate against the CA) and the dialer's (it
// presents the node's certificate and verifies the other node's against the
// CA). Both nil when tls is unset. Errors wrap ErrConfig and name the key.
func (c *Cluster) NodeTLSConfigs() (server, client *tls.Config, err error) {
	t := c.TLS
	if t == nil {
		return nil, nil, nil
	}
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: serve.cluster.tls.%s: %s", ErrConfig, key, fmt.Sprintf(format, a...))
	}
	for _, f := range []struct{ key, path string }{{"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"ca_file", t.CAFile}} {
		if f.path == "" {
			return nil, nil, bad(f.key, "missing: mutual TLS needs the node's certificate, its key and the CA that signs every node's certificate")
		}
	}
	ca, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, nil, bad("ca_file", "can't read %s: %v", t.CAFile, errors.Unwrap(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, nil, bad("ca_file", "%s holds no PEM certificate", t.CAFile)
	}
	for _, f := range []struct{ key, path string }{{"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if _, err := os.Stat(f.path); err != nil {
			return nil, nil, bad(f.key, "can't read %s: %v", f.path, errors.Unwrap(err))
		}
	}
	pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, nil, bad("cert_file", "%s with key_file %s: %v", t.CertFile, t.KeyFile, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, bad("cert_file", "%s: %v", t.CertFile, err)
	}
	for _, use := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		// Each node is a server and a client of the others.
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{use}}); err != nil {
			return nil, nil, bad("cert_file", "%s is not a node certificate of ca_file %s (signed by it, valid now, for server and client authentication): %v", t.CertFile, t.CAFile, err)
		}
	}
	server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	client = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair},
		RootCAs: pool, ServerName: t.ServerName}
	return server, client, nil
}

func checkEndpoint(e string) error {
	hostport := e
	if strings.Contains(e, "://") {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return errors.New("use host:port or an http(s):// URL")
		}
		hostport = u.Host
	}
	if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
		return errors.New("use host:port or an http(s):// URL")
	}
	return nil
}

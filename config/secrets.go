package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/parley-go/parley-xmpp/internal/redact"
	"github.com/parley-go/parley-xmpp/runtime"
)

// loadSecrets reads every server's password_file and tls.ca_file, and, once the
// environment is applied (withEnv), refuses a missing password for a server not
// on loopback (the dev server's default password is for loopback only). Errors
// name the key and the file, never what the file holds.
func (f *File) loadSecrets(withEnv bool) error {
	if c := f.Serve.Cluster; c != nil {
		// The nodes' TLS files, before any network.
		if _, _, err := c.NodeTLSConfigs(); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(f.Servers))
	for name := range f.Servers {
		names = append(names, name)
	}
	sort.Strings(names)
	if err := f.loadBackend(&f.Backend, "backend_config", withEnv); err != nil {
		return err
	}
	for _, name := range names {
		srv := f.Servers[name]
		if err := f.loadBackend(&srv.Backend, "servers."+name+".backend_config", withEnv); err != nil {
			return err
		}
		f.Servers[name] = srv
	}
	if c := f.Serve.Cluster; c != nil && c.Etcd.PasswordFile != "" {
		if _, err := c.EtcdPassword(); err != nil {
			return err
		}
	}
	return nil
}

// ReadSecretFile reads a file that holds a secret (a password_file, a .env
// file). It refuses one its group or others may read or write, naming the
// file and the chmod that fixes it: anyone else on the machine could read
// the secret, or change what the engine logs in with. Errors never hold the
// file's content.
func ReadSecretFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("can't read %s: %v", path, errors.Unwrap(err))
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("can't read %s: %v", path, errors.Unwrap(err))
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("can't read %s: %v", path, errors.Unwrap(err))
	}
	if len(data) > maxSecretFile {
		return nil, fmt.Errorf("%s is over %d bytes: not a secret file", path, maxSecretFile)
	}
	return data, nil
}

// maxSecretFile bounds what ReadSecretFile reads.
const maxSecretFile = 1 << 20

// checkPrivate refuses a file whose mode lets its group or others in.
func checkPrivate(path string, fi os.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s is open to its group or others (mode %04o): it holds a secret; chmod 600 %s", path, perm, path)
	}
	return nil
}

func (f *File) loadBackend(b *Backend, key string, withEnv bool) error {
	bad := func(k, format string, a ...any) error {
		return fmt.Errorf("%w: %s.%s: %s", ErrConfig, key, k, fmt.Sprintf(format, a...))
	}
	if b.PasswordFile != "" {
		if b.Password != "" {
			return bad("password_file", "set, and so is the password (in the file or PARLEY_XMPP_*PASS): keep one")
		}
		p := f.relative(os.ExpandEnv(b.PasswordFile))
		data, err := ReadSecretFile(p)
		if err != nil {
			return bad("password_file", "%v", err)
		}
		pw := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
		if pw == "" {
			return bad("password_file", "%s is empty", p)
		}
		if strings.ContainsAny(pw, "\r\n") {
			return bad("password_file", "%s holds more than one line", p)
		}
		b.Password = pw
	}
	if withEnv && b.Password == "" && !loopbackService(b.Service) {
		return bad("password", "missing for %q: the dev server's default password applies only to a loopback service; set password_file (or PARLEY_XMPP_PASS)", redact.URL(b.Service))
	}
	if b.TLS.CAFile == "" && b.TLS.ServerName == "" {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: b.TLS.ServerName}
	if b.TLS.CAFile != "" {
		p := f.relative(os.ExpandEnv(b.TLS.CAFile))
		data, err := os.ReadFile(p)
		if err != nil {
			return bad("tls.ca_file", "can't read %s: %v", p, errors.Unwrap(err))
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(data) {
			return bad("tls.ca_file", "%s holds no PEM certificate", p)
		}
	}
	b.tlsConfig = cfg
	return nil
}

// relative resolves p against the configuration file's directory.
func (f *File) relative(p string) string {
	if filepath.IsAbs(p) || f.path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(f.path), p)
}

// loopbackService: an unset service is the default, on loopback.
func loopbackService(service string) bool {
	if service == "" {
		service = runtime.DefaultService
	}
	// An invalid service is reported by its own check (validate), not as a
	// missing password.
	svc, err := runtime.ParseService(service)
	return err != nil || svc.Loopback
}

package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

// password_file: read relative to the configuration, its trailing newline
// trimmed; a named server's too.
func TestPasswordFile(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	write(t, dir, "pw", "s3cret-from-file\n")
	write(t, dir, "pw2", "other-secret\r\n")
	p := write(t, dir, "c.yaml", `
backend_config: {service: "xmpp://chat.example.org", password_file: pw}
servers:
  remote: {backend_config: {service: "xmpp://127.0.0.1:15222", password_file: "`+filepath.Join(dir, "pw2")+`"}}
`)
	f, err := Load(p)
	require.NoError(t, err)
	assert.Equal(t, "s3cret-from-file", f.RuntimeConfig().Password)
	c, err := f.ServerConfig("remote")
	require.NoError(t, err)
	assert.Equal(t, "other-secret", c.Password)
}

// Errors name the key and the file, never what the file holds.
func TestPasswordFileErrors(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	write(t, dir, "two-lines", "line-one-secret\nline-two-secret\n")
	write(t, dir, "empty", "\n")
	for name, c := range map[string]struct{ yaml, want string }{
		"missing":   {"backend_config: {password_file: nope}", "backend_config.password_file: can't read " + filepath.Join(dir, "nope")},
		"empty":     {"backend_config: {password_file: empty}", "backend_config.password_file: " + filepath.Join(dir, "empty") + " is empty"},
		"two lines": {"backend_config: {password_file: two-lines}", "backend_config.password_file: " + filepath.Join(dir, "two-lines") + " holds more than one line"},
		"both":      {"backend_config: {password: x, password_file: empty}", "backend_config.password_file: set, and so is the password"},
		"named":     {"servers: {far: {backend_config: {service: xmpp://10.1.2.3}}}", "servers.far.backend_config.password: missing"},
	} {
		p := write(t, dir, "c.yaml", c.yaml)
		_, err := Load(p)
		require.Error(t, err, name)
		assert.ErrorIs(t, err, ErrConfig, name)
		assert.Contains(t, err.Error(), c.want, name)
		assert.NotContains(t, err.Error(), "secret", name)
	}
}

// The dev server's password is only a loopback service's default: elsewhere a
// missing password is an error naming the key; the environment can supply it.
func TestMissingPasswordForARemoteServer(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	p := write(t, dir, "c.yaml", "backend_config: {service: \"xmpps://chat.example.org\"}\n")
	_, err := Load(p)
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), "backend_config.password: missing")
	t.Setenv("PARLEY_XMPP_PASS", "from-env")
	_, err = Load(p)
	require.NoError(t, err)

	clearEnv(t)
	write(t, dir, "c.yaml", "backend_config: {service: \"xmpp://[::1]:5222\"}\n")
	_, err = Load(p)
	require.NoError(t, err, "loopback: the runtime's default applies")
}

// tls.ca_file and tls.server_name become the runtime's TLSConfig (which makes
// TLS mandatory); a file without a certificate is an error naming the key.
func TestTLSSettings(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	ca := xmpptest.NewCA(t, "test CA")
	ca.WriteFile(t, dir)
	p := write(t, dir, "c.yaml", `
backend_config: {service: "xmpps://127.0.0.1", tls: {ca_file: ca.pem, server_name: chat.example.org}}
servers:
  plain: {backend_config: {service: "xmpp://127.0.0.1"}}
`)
	f, err := Load(p)
	require.NoError(t, err)
	c := f.RuntimeConfig()
	require.NotNil(t, c.TLSConfig)
	assert.Equal(t, "chat.example.org", c.TLSConfig.ServerName)
	require.NotNil(t, c.TLSConfig.RootCAs)
	assert.True(t, c.TLSConfig.RootCAs.Equal(ca.Pool()), "trusts exactly the CA file")
	plain, err := f.ServerConfig("plain")
	require.NoError(t, err)
	assert.Nil(t, plain.TLSConfig)

	write(t, dir, "bad.pem", "not a certificate")
	write(t, dir, "c.yaml", "backend_config: {tls: {ca_file: bad.pem}}\n")
	_, err = Load(p)
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), "backend_config.tls.ca_file: "+filepath.Join(dir, "bad.pem")+" holds no PEM certificate")
}

// A webhook URL with credentials in it is never echoed whole in an error.
func TestWebhookURLRedactedInErrors(t *testing.T) {
	for _, u := range []string{"ftp://user:hunter2@hooks.example.com/x", "https://user:hunter2@bad host/x"} {
		_, err := Parse([]byte(`serve: {routes: [{name: r, topics: [a], sink: {webhook: {url: "` + u + `"}}}]}`))
		require.ErrorIs(t, err, ErrConfig, u)
		assert.Contains(t, err.Error(), "serve.routes[0].sink.webhook.url")
		assert.NotContains(t, err.Error(), "hunter2", u)
	}
}

// A secret file its group or others may open (password_file, a named
// server's password_file, the .env file beside the configuration, the etcd
// password_file) is refused, naming the key, the file and the chmod that
// fixes it, never the content; 0600 and 0400 are taken.
func TestSecretFilesOpenToOthersAreRefused(t *testing.T) {
	clearEnv(t)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o660} {
		for name, c := range map[string]struct{ file, yaml, key string }{
			"password_file": {"pw", "backend_config: {service: xmpp://chat.example.org, password_file: pw}\n", "backend_config.password_file"},
			"named server":  {"pw", "servers: {far: {backend_config: {service: xmpp://10.1.2.3, password_file: pw}}}\n", "servers.far.backend_config.password_file"},
			".env":          {".env", "backend_config: {service: xmpp://chat.example.org}\n", ".env"},
			"etcd": {"etcd.pass", "serve:\n  cluster:\n    name: x\n" +
				"    etcd: {endpoints: ['127.0.0.1:2379'], username: u, password_file: etcd.pass}\n", "serve.cluster.etcd.password_file"},
		} {
			dir := t.TempDir()
			secret := filepath.Join(dir, c.file)
			body := "the-secret-itself\n"
			if c.file == ".env" {
				body = "PARLEY_XMPP_PASS=the-secret-itself\n"
			}
			require.NoError(t, os.WriteFile(secret, []byte(body), 0o600))
			require.NoError(t, os.Chmod(secret, mode))
			p := write(t, dir, "c.yaml", c.yaml)
			_, err := Load(p)
			require.Error(t, err, "%s %04o", name, mode)
			assert.ErrorIs(t, err, ErrConfig, name)
			assert.Contains(t, err.Error(), c.key, name)
			assert.Contains(t, err.Error(), "chmod 600 "+secret, name)
			assert.NotContains(t, err.Error(), "the-secret-itself", name)

			for _, ok := range []os.FileMode{0o600, 0o400} {
				require.NoError(t, os.Chmod(secret, ok))
				_, err = Load(p)
				assert.NoError(t, err, "%s %04o", name, ok)
			}
		}
	}
}

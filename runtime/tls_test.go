package runtime_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
)

// A configuration file's tls.ca_file and password_file reach a real Prosody
// that requires encryption: over STARTTLS and over its direct-TLS port
// (xmpps://), the certificate checked against the XMPP domain, not 127.0.0.1.
// A wrong CA fails the connect with xmppconn.ErrTLS.
func TestTLSFromConfigFileOnRealProsody(t *testing.T) {
	p := xmpptest.StartProsody(t, xmpptest.PrivateOptions{RequireEncryption: true, Accounts: map[string]string{"cfguser": "cfg-Pw-31ab"}})
	dir := t.TempDir()
	p.CA.WriteFile(t, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pw"), []byte("cfg-Pw-31ab\n"), 0o600))
	for name, svc := range map[string]string{"starttls": "xmpp://" + p.Addr, "direct": "xmpps://" + p.DirectTLS} {
		t.Run(name, func(t *testing.T) {
			for _, e := range []string{"PARLEY_XMPP_SERVICE", "PARLEY_XMPP_PASS", "PARLEY_XMPP_PASS_FILE", "PARLEY_XMPP_USER", "PARLEY_XMPP_DOMAIN", "PARLEY_XMPP_MUC"} {
				t.Setenv(e, "")
			}
			cfgPath := filepath.Join(dir, "c.yaml")
			require.NoError(t, os.WriteFile(cfgPath, fmt.Appendf(nil, `
backend_config:
  service: %q
  domain: parley.local
  muc_service: muc.parley.local
  username: cfguser
  password_file: pw
  tls: {ca_file: ca.pem}
runtime: {dial_timeout: 5s}
`, svc), 0o600))
			f, err := config.Load(cfgPath)
			require.NoError(t, err)
			rt, err := runtime.New(f.RuntimeConfig())
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, rt.Connect(ctx))
			require.NoError(t, rt.Disconnect(ctx))

			other := xmpptest.NewCA(t, "not the server's CA")
			c := f.RuntimeConfig()
			c.TLSConfig = other.TLSConfig()
			rt, err = runtime.New(c)
			require.NoError(t, err)
			err = rt.Connect(ctx)
			require.ErrorIs(t, err, vocab.ErrTLS)
			assert.NotContains(t, err.Error(), "cfg-Pw-31ab")
			_ = rt.Disconnect(ctx)
		})
	}
}

// A TLSConfig insists on TLS even on loopback: the dev server offers no
// STARTTLS, so Connect fails with xmppconn.ErrTLSRequired and no <auth> (nor
// the password) reaches the wire.
func TestTLSConfigInsistsOnTLS(t *testing.T) {
	s := xmpptest.Require(t)
	proxy := xmpptest.NewRecordingProxy(t, s.Addr)
	rt, err := runtime.New(runtime.Config{
		Service: "xmpp://" + proxy.Addr, Domain: s.Domain, MUCService: s.MUC,
		Username: s.Accounts[0][0], Password: s.Accounts[0][1], AllowPlaintext: true,
		TLSConfig: xmpptest.NewCA(t, "any").TLSConfig(),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = rt.Connect(ctx)
	require.ErrorIs(t, err, vocab.ErrTLSRequired)
	_ = rt.Disconnect(ctx)
	assert.NotContains(t, string(proxy.Sent()), "<auth")
	for _, f := range xmpptest.SecretForms(s.Accounts[0][0], s.Domain, s.Accounts[0][1]) {
		assert.NotContains(t, string(proxy.Sent()), f)
	}
}

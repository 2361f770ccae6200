package xmppconn

import (
	"bytes"
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

const tlsPass = "tls-Pw-7c1e0b9a"

// privateProsody starts a private Prosody (with its own CA) for one test.
func privateProsody(t *testing.T, requireEncryption bool) *xmpptest.Private {
	t.Helper()
	return xmpptest.StartProsody(t, xmpptest.PrivateOptions{RequireEncryption: requireEncryption, Accounts: map[string]string{"tlsuser": tlsPass}})
}

func tlsOpts(p *xmpptest.Private, addr string) Options {
	return Options{Addr: addr, User: "tlsuser@" + p.Domain, Password: tlsPass, Resource: "r", DialTimeout: 10 * time.Second}
}

func assertEncryptedLogin(t *testing.T, c *Conn, err error) {
	t.Helper()
	require.NoError(t, err)
	defer c.Close(time.Second)
	assert.True(t, c.t.Load().client.IsEncrypted(), "the login ran over TLS")
	assert.Contains(t, c.JID(), "tlsuser@parley.local/")
}

// assertNothingInClear: no SASL exchange, no password, in any of its encodings,
// crossed the wire unencrypted.
func assertNothingInClear(t *testing.T, wire []byte) {
	t.Helper()
	assert.NotContains(t, string(wire), "<auth", "a SASL <auth> crossed in clear")
	for _, f := range xmpptest.SecretForms("tlsuser", "parley.local", tlsPass) {
		assert.False(t, bytes.Contains(wire, []byte(f)), "the password (as %q) crossed in clear", f)
	}
}

// A real Prosody that requires STARTTLS: the runtime's login does STARTTLS,
// verifies the certificate against the XMPP domain with the given CA, and logs in.
func TestSTARTTLSRequiredOnRealProsody(t *testing.T) { checkSTARTTLS(t, privateProsody(t, true)) }

func checkSTARTTLS(t *testing.T, p *xmpptest.Private) {
	proxy := xmpptest.NewRecordingProxy(t, p.Addr)
	o := tlsOpts(p, proxy.Addr)
	o.TLSConfig = p.CA.TLSConfig()
	c, err := Dial(context.Background(), o)
	assertEncryptedLogin(t, c, err)
	assertNothingInClear(t, proxy.Sent())
	assert.Contains(t, string(proxy.Sent()), "<starttls", "STARTTLS was negotiated")
}

// The direct-TLS port (xmpps://): TLS from the first byte, the certificate
// checked against the domain, not the address dialed (127.0.0.1).
func TestDirectTLSOnRealProsody(t *testing.T) { checkDirectTLS(t, privateProsody(t, true)) }

func checkDirectTLS(t *testing.T, p *xmpptest.Private) {
	o := tlsOpts(p, p.DirectTLS)
	o.DirectTLS, o.TLSConfig = true, p.CA.TLSConfig()
	c, err := Dial(context.Background(), o)
	assertEncryptedLogin(t, c, err)

	// A certificate that doesn't name the domain fails.
	o.TLSConfig.ServerName = "other.example"
	_, err = Dial(context.Background(), o)
	require.ErrorIs(t, err, vocab.ErrTLS)
}

// A certificate from a CA the client doesn't trust fails the handshake, and
// nothing about the account (no <auth>, no password) was sent: STARTTLS and
// direct TLS.
func TestWrongCAFailsBeforeAuth(t *testing.T) { checkWrongCA(t, privateProsody(t, false)) }

func checkWrongCA(t *testing.T, p *xmpptest.Private) {
	wrong := xmpptest.NewCA(t, "someone else's CA").TLSConfig()
	for name, direct := range map[string]bool{"starttls": false, "direct": true} {
		t.Run(name, func(t *testing.T) {
			up := p.Addr
			if direct {
				up = p.DirectTLS
			}
			proxy := xmpptest.NewRecordingProxy(t, up)
			o := tlsOpts(p, proxy.Addr)
			o.DirectTLS, o.TLSConfig, o.AllowPlaintext = direct, wrong.Clone(), true
			_, err := Dial(context.Background(), o)
			require.ErrorIs(t, err, vocab.ErrTLS)
			assert.NotContains(t, err.Error(), tlsPass)
			assertNothingInClear(t, proxy.Sent())
		})
	}
}

// A server on loopback that offers STARTTLS (without requiring it) gets
// STARTTLS even though plain text would be allowed there; the recording proxy
// sees no password and no SASL in clear.
func TestOfferedSTARTTLSIsUsedOnLoopback(t *testing.T) {
	checkOfferedSTARTTLS(t, privateProsody(t, false))
}

func checkOfferedSTARTTLS(t *testing.T, p *xmpptest.Private) {
	proxy := xmpptest.NewRecordingProxy(t, p.Addr)
	o := tlsOpts(p, proxy.Addr)
	o.AllowPlaintext, o.RequireTLS = true, false
	o.TLSConfig = &tls.Config{RootCAs: p.CA.Pool(), MinVersion: tls.VersionTLS12}
	c, err := Dial(context.Background(), o)
	assertEncryptedLogin(t, c, err)
	assertNothingInClear(t, proxy.Sent())
}

// The same checks against a private ejabberd (one instance, STARTTLS offered
// and a direct-TLS port). ejabberd 23.01 refuses go-xmpp's TLS 1.3 channel
// binding (tls-exporter): the login's retry over TLS 1.2 keeps a -PLUS
// mechanism (tls-unique).
func TestTLSOnRealEjabberd(t *testing.T) {
	p := xmpptest.StartEjabberd(t, xmpptest.PrivateOptions{Accounts: map[string]string{"tlsuser": tlsPass}})
	t.Run("starttls", func(t *testing.T) {
		checkSTARTTLS(t, p)
		o := tlsOpts(p, p.Addr)
		o.TLSConfig = p.CA.TLSConfig()
		c, err := Dial(context.Background(), o)
		require.NoError(t, err)
		defer c.Close(time.Second)
		assert.True(t, strings.HasSuffix(c.t.Load().client.Mechanism, "-PLUS"), "channel binding kept: %s", c.t.Load().client.Mechanism)
	})
	t.Run("direct", func(t *testing.T) { checkDirectTLS(t, p) })
	t.Run("wrong CA", func(t *testing.T) { checkWrongCA(t, p) })
	t.Run("offered on loopback", func(t *testing.T) { checkOfferedSTARTTLS(t, p) })
}

package runtime

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

func clearEnv(t *testing.T) {
	for _, k := range []string{"PARLEY_XMPP_SERVICE", "PARLEY_XMPP_DOMAIN", "PARLEY_XMPP_MUC", "PARLEY_XMPP_USER", "PARLEY_XMPP_PASS", "PARLEY_XMPP_NICK"} {
		t.Setenv(k, "")
	}
}

func TestConfigDefaults(t *testing.T) {
	clearEnv(t)
	r, err := resolve(Config{})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:5222", r.addr)
	assert.True(t, r.loopback)
	assert.False(t, r.directTLS)
	assert.Equal(t, DefaultDomain, r.Domain)
	assert.Equal(t, DefaultMUCService, r.MUCService)
	assert.Equal(t, DefaultUsername, r.Username)
	assert.Equal(t, DefaultPassword, r.Password)
	assert.False(t, r.pinned)
	assert.True(t, strings.HasPrefix(r.Nick, "parley-"))
	r2, err := resolve(Config{})
	require.NoError(t, err)
	assert.NotEqual(t, r.Nick, r2.Nick, "an unset nick is random per runtime")
}

func TestConfigEnvFillsOnlyEmptyFields(t *testing.T) {
	clearEnv(t)
	t.Setenv("PARLEY_XMPP_SERVICE", "xmpps://chat.example.org")
	t.Setenv("PARLEY_XMPP_DOMAIN", "example.org")
	t.Setenv("PARLEY_XMPP_MUC", "rooms.example.org")
	t.Setenv("PARLEY_XMPP_USER", "envuser")
	t.Setenv("PARLEY_XMPP_PASS", "envpass")
	t.Setenv("PARLEY_XMPP_NICK", "envnick")
	c := ConfigFromEnv()
	c.Username = "codeuser"
	r, err := resolve(c)
	require.NoError(t, err)
	assert.Equal(t, "chat.example.org:5223", r.addr)
	assert.True(t, r.directTLS)
	assert.False(t, r.loopback)
	assert.Equal(t, "example.org", r.Domain)
	assert.Equal(t, "rooms.example.org", r.MUCService)
	assert.Equal(t, "codeuser", r.Username, "a field set in code wins")
	assert.Equal(t, "envpass", r.Password)
	assert.Equal(t, "envnick", r.Nick)
	assert.True(t, r.pinned)
}

func TestConfigRejects(t *testing.T) {
	clearEnv(t)
	for name, c := range map[string]Config{
		"scheme":       {Service: "http://x"},
		"port":         {Service: "xmpp://x:99999"},
		"path":         {Service: "xmpp://x:5222/path"},
		"domain":       {Domain: "a b"},
		"muc":          {MUCService: "muc/x"},
		"user":         {Username: "u@x"},
		"nick":         {Nick: "a/b"},
		"nick spaces":  {Nick: " padded "},
		"fetch limits": {FetchLimit: 100, MaxFetchLimit: 10},
	} {
		_, err := resolve(c)
		assert.Error(t, err, name)
	}
}

func TestConfigErrorsNeverHoldThePassword(t *testing.T) {
	clearEnv(t)
	_, err := resolve(Config{Service: "bogus://x", Password: "hunter2-secret"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2-secret")
}

func TestPlaintextOnlyToLoopbackUnlessAllowed(t *testing.T) {
	clearEnv(t)
	for _, c := range []struct {
		service        string
		allow          bool
		wantPlain      bool
		wantRequireTLS bool
		wantDirect     bool
		tls            *tls.Config
	}{
		{"xmpp://127.0.0.1:5222", false, true, false, false, nil},
		{"xmpp://[::1]:5222", false, true, false, false, nil},
		{"xmpp://localhost", false, true, false, false, nil},
		{"xmpp://chat.example.org", false, false, true, false, nil},
		{"xmpp://10.0.0.7:5222", false, false, true, false, nil},
		{"xmpp://chat.example.org", true, true, false, false, nil},
		{"xmpps://chat.example.org", false, false, false, true, nil},
		// A TLSConfig insists on TLS, even on loopback, even with AllowPlaintext.
		{"xmpp://127.0.0.1:5222", true, false, true, false, &tls.Config{}},
		{"xmpps://127.0.0.1:5223", false, false, false, true, &tls.Config{}},
	} {
		r, err := resolve(Config{Service: c.service, AllowPlaintext: c.allow, Password: "pw", TLSConfig: c.tls})
		require.NoError(t, err, c.service)
		o := r.connOptions()
		assert.Equal(t, c.wantPlain, o.AllowPlaintext, "%s allow=%v: plaintext", c.service, c.allow)
		assert.Equal(t, c.wantRequireTLS, o.RequireTLS, "%s allow=%v: STARTTLS required", c.service, c.allow)
		assert.Equal(t, c.wantDirect, o.DirectTLS, "%s: direct TLS", c.service)
	}
}

// The dev server's password is a default only for a loopback service; anywhere
// else a missing password is an error naming the field and its variable.
func TestDefaultPasswordOnlyOnLoopback(t *testing.T) {
	clearEnv(t)
	r, err := resolve(Config{Service: "xmpp://[::1]:5222"})
	require.NoError(t, err)
	assert.Equal(t, DefaultPassword, r.Password)
	for _, svc := range []string{"xmpp://chat.example.org", "xmpps://10.0.0.7"} {
		_, err = resolve(Config{Service: svc})
		require.Error(t, err, svc)
		assert.Contains(t, err.Error(), "Password")
		assert.Contains(t, err.Error(), "PARLEY_XMPP_PASS")
	}
	t.Setenv("PARLEY_XMPP_PASS", "from-env")
	c := ConfigFromEnv()
	c.Service = "xmpp://chat.example.org"
	r, err = resolve(c)
	require.NoError(t, err)
	assert.Equal(t, "from-env", r.Password)
}

// A Service with credentials in it is refused, and errors never echo them.
func TestServiceCredentialsRedacted(t *testing.T) {
	clearEnv(t)
	for _, svc := range []string{"xmpp://bridge:hunter2@chat.example.org", "http://bridge:hunter2@x", "xmpp://bridge:hunter2@x:99999", "xmpp://bridge:hunter2@x y/"} {
		_, err := resolve(Config{Service: svc, Password: "pw"})
		require.Error(t, err, svc)
		assert.NotContains(t, err.Error(), "hunter2", svc)
	}
}

func TestConfigAllowlists(t *testing.T) {
	clearEnv(t)
	allow := map[seam.Topic]Allowlist{"t": {Nicks: []string{"alice"}}}
	r, err := resolve(Config{Allow: allow})
	require.NoError(t, err)
	allow["u"] = Allowlist{Nicks: []string{"bob"}}
	assert.Len(t, r.Allow, 1, "copied: a later change of the caller's map changes nothing")
	assert.NotNil(t, r.allowFor("t"))
	assert.Nil(t, r.allowFor("other"), "a topic it doesn't name delivers everything")
	for _, bad := range []Allowlist{{}, {Nicks: []string{""}}, {JIDs: []string{"bob"}}, {JIDs: []string{"bob@x/res"}}} {
		_, err := resolve(Config{Allow: map[seam.Topic]Allowlist{"t": bad}})
		assert.ErrorIs(t, err, errConfig, "%+v", bad)
	}
}

func TestConfigStanzaLimits(t *testing.T) {
	clearEnv(t)
	r, err := resolve(Config{})
	require.NoError(t, err)
	assert.Equal(t, 240*1024, r.MaxStanzaBytes, "under the 256 KiB Prosody and ejabberd take by default")
	assert.Equal(t, 1<<20, r.MaxInboundStanzaBytes)
	o := r.connOptions()
	assert.Equal(t, 240*1024, o.MaxStanzaBytes)
	assert.Equal(t, 1<<20, o.MaxInboundBytes)
	r, err = resolve(Config{MaxStanzaBytes: 1000, MaxInboundStanzaBytes: 5000})
	require.NoError(t, err)
	assert.Equal(t, 1000, r.connOptions().MaxStanzaBytes)
	assert.Equal(t, 5000, r.connOptions().MaxInboundBytes)
}

// The runtime reads no environment: only ConfigFromEnv does.
func TestConfigIgnoresTheEnvironment(t *testing.T) {
	clearEnv(t)
	t.Setenv("PARLEY_XMPP_SERVICE", "xmpps://chat.example.org")
	t.Setenv("PARLEY_XMPP_USER", "envuser")
	t.Setenv("PARLEY_XMPP_NICK", "envnick")
	r, err := resolve(Config{})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:5222", r.addr)
	assert.Equal(t, DefaultUsername, r.Username)
	assert.False(t, r.pinned)
	assert.Equal(t, Config{Service: "xmpps://chat.example.org", Username: "envuser", Nick: "envnick"}, ConfigFromEnv())
}

// One parser reads a service URL for the runtime, the configuration's
// password rule and the demo (issue 21).
func TestParseService(t *testing.T) {
	for in, want := range map[string]Service{
		"xmpp://example.org":      {Addr: "example.org:5222"},
		"xmpps://example.org":     {Addr: "example.org:5223", DirectTLS: true},
		"example.org:5300":        {Addr: "example.org:5300"},
		"xmpp://127.0.0.1:15222":  {Addr: "127.0.0.1:15222", Loopback: true},
		"xmpp://[::1]":            {Addr: "[::1]:5222", Loopback: true},
		"xmpps://localhost:5224/": {Addr: "localhost:5224", DirectTLS: true, Loopback: true},
		"xmpp://u:pw@192.0.2.1":   {Addr: "192.0.2.1:5222", UserInfo: true},
	} {
		got, err := ParseService(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "http://example.org", "xmpp://example.org/path", "xmpp://example.org:0", "xmpp://example.org:x",
		"xmpp://u:secret@example.org:x", "ftp://u:secret@127.0.0.1"} {
		_, err := ParseService(in)
		require.ErrorIs(t, err, ErrConfig, "%q", in)
		assert.NotContains(t, err.Error(), "secret", "%q: the error repeats no password", in)
	}
}

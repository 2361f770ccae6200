package doctor

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmppconn"
	"github.com/parley-go/parley-xmpp/runtime"
)

func certExpiring(t *testing.T, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chat.example.org"},
		DNSNames: []string{"example.org"}, NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

func TestTLSCheck(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	p := runtime.ProbeConfig{Domain: "example.org", Loopback: true}
	plain := tlsCheck(tls.ConnectionState{}, false, p, now)
	assert.Equal(t, Warn, plain.Status, "plain text on loopback (a dev server) warns")
	assert.Contains(t, plain.Detail, "loopback")
	assert.Contains(t, plain.Fix, "c2s_require_encryption")
	remote := tlsCheck(tls.ConnectionState{}, false, runtime.ProbeConfig{Domain: "example.org"}, now)
	assert.Equal(t, Fail, remote.Status, "plain text to a server elsewhere (allow_plaintext) fails")
	assert.Contains(t, remote.Detail, "allow_plaintext")

	st := func(days int) tls.ConnectionState {
		return tls.ConnectionState{Version: tls.VersionTLS13, PeerCertificates: []*x509.Certificate{certExpiring(t, now.Add(time.Duration(days)*24*time.Hour))}}
	}
	ok := tlsCheck(st(200), true, p, now)
	assert.Equal(t, Pass, ok.Status)
	assert.Contains(t, ok.Detail, "TLS 1.3, certificate for example.org")
	assert.Contains(t, ok.Detail, "expires 2027-06-19")
	soon := tlsCheck(st(5), true, p, now)
	assert.Equal(t, Warn, soon.Status)
	assert.Contains(t, soon.Detail, "5 days left")
	expired := tlsCheck(st(-1), true, p, now)
	assert.Equal(t, Fail, expired.Status)
	assert.Contains(t, expired.Detail, "expired")
}

func TestOneWeekRetentionLooksLikeADefault(t *testing.T) {
	assert.True(t, looksLikeOneWeek(7*24*time.Hour-time.Hour))
	assert.True(t, looksLikeOneWeek(7*24*time.Hour+time.Hour))
	assert.False(t, looksLikeOneWeek(3*24*time.Hour), "a young archive")
	assert.False(t, looksLikeOneWeek(30*24*time.Hour), "kept longer than a week")
}

func TestAdvertisedStanzaLimit(t *testing.T) {
	ok := advertisedSizeCheck(262144, 65536)
	assert.Equal(t, Pass, ok.Status)
	assert.Contains(t, ok.Detail, "max-bytes 262144")
	small := advertisedSizeCheck(65536, 65536)
	assert.Equal(t, Fail, small.Status, "the stanza's envelope needs room too")
	assert.Contains(t, small.Fix, "66560 bytes")
}

func TestFormValues(t *testing.T) {
	v := formValues([]byte(`<query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="form">` +
		`<field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/muc#roomconfig</value></field>` +
		`<field var="muc#roomconfig_persistentroom" type="boolean"><value>0</value></field>` +
		`<field var="muc#roomconfig_roomname" type="text-single"/></x></query>`))
	assert.Equal(t, "0", v["muc#roomconfig_persistentroom"])
	assert.Contains(t, v, "muc#roomconfig_roomname")
	assert.Empty(t, formValues([]byte("not xml")))
}

func TestStreamManagementCheck(t *testing.T) {
	c := streamMgmtCheck(xmppconn.SMState{}, false)
	assert.Equal(t, Warn, c.Status)
	assert.Contains(t, c.Fix, "smacks")
	assert.Contains(t, c.Fix, "mod_stream_mgmt")
	c = streamMgmtCheck(xmppconn.SMState{Offered: true, Enabled: true, Resumable: true, Max: 300 * time.Second}, false)
	assert.Equal(t, Pass, c.Status)
	assert.Contains(t, c.Detail, "5m0s")
	c = streamMgmtCheck(xmppconn.SMState{Offered: true, Enabled: true}, false)
	assert.Equal(t, Warn, c.Status, "no resumption")
	c = streamMgmtCheck(xmppconn.SMState{Offered: true}, true)
	assert.Equal(t, Pass, c.Status)
	assert.Contains(t, c.Detail, "turned off")
}

func TestPrintAndFailed(t *testing.T) {
	report := []Check{
		{Name: CheckTLS, Status: Pass, Detail: "TLS 1.3"},
		{Name: CheckClockOffset, Status: Warn, Detail: "no XEP-0202", Fix: "enable mod_time"},
	}
	assert.False(t, Failed(report), "warnings alone pass")
	var b bytes.Buffer
	require.NoError(t, Print(&b, report))
	assert.Contains(t, b.String(), "CHECK")
	assert.Contains(t, b.String(), "clock offset (warn): enable mod_time")
	report = append(report, Check{Name: CheckLogin, Status: Fail, Detail: "not-authorized", Fix: "check the password"})
	assert.True(t, Failed(report))
}

// The JSON report: one document, every check with its name, status (pass,
// warn, fail, skip), detail and fix; each server's status and the
// document's are the worst of their checks (skipped ones aside).
func TestWriteJSON(t *testing.T) {
	o := Options{Probe: runtime.ProbeConfig{Service: "xmpp://127.0.0.1:5222", Domain: "parley.local", MUCService: "muc.parley.local"}}
	a := NewServer("default", o, []Check{
		{Name: CheckTLS, Status: Warn, Detail: "plain text", Fix: "a certificate"},
		{Name: CheckLogin, Status: Pass, Detail: "logged in"},
		{Name: CheckRetention, Status: Skip, Detail: "no topics"},
	})
	o.MUCService = "rooms.example.org"
	b := NewServer("remote", o, []Check{{Name: CheckLogin, Status: Fail, Detail: "host-unknown", Fix: "set the domain"}})
	var buf bytes.Buffer
	require.NoError(t, WriteJSON(&buf, []Server{a, b}))
	var doc struct {
		Status  string `json:"status"`
		Servers []struct {
			Server, Service, Domain, Status string
			MUC                             string `json:"muc_service"`
			Checks                          []map[string]string
		} `json:"servers"`
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&doc), buf.String())
	assert.False(t, dec.More(), "one document")
	assert.Equal(t, "fail", doc.Status)
	require.Len(t, doc.Servers, 2)
	assert.Equal(t, "default", doc.Servers[0].Server)
	assert.Equal(t, "warn", doc.Servers[0].Status, "a skipped check is no failure")
	assert.Equal(t, "muc.parley.local", doc.Servers[0].MUC)
	assert.Equal(t, "rooms.example.org", doc.Servers[1].MUC, "the --muc-service checked")
	assert.Equal(t, "fail", doc.Servers[1].Status)
	assert.Equal(t, []map[string]string{
		{"name": CheckTLS, "status": "warn", "detail": "plain text", "fix": "a certificate"},
		{"name": CheckLogin, "status": "pass", "detail": "logged in"},
		{"name": CheckRetention, "status": "skip", "detail": "no topics"},
	}, doc.Servers[0].Checks)

	var table bytes.Buffer
	require.NoError(t, PrintServers(&table, []Server{a, b}))
	assert.Contains(t, table.String(), "server default (xmpp://127.0.0.1:5222, parley.local at muc.parley.local)")
	assert.Contains(t, table.String(), "server remote (")
	assert.Equal(t, 2, strings.Count(table.String(), "CHECK "), "a table per server")
}

// A login refused with host-unknown: the advice names the domain setting.
func TestLoginFixForAnUnknownDomain(t *testing.T) {
	o := Options{Key: "servers.remote.backend_config", Probe: runtime.ProbeConfig{Domain: "nosuch.local", Username: "parley"}}
	o.Probe.Dial.Addr = "127.0.0.1:5222"
	fix := loginFix(errors.New("xmppconn: login as parley@nosuch.local at 127.0.0.1:5222: xmppconn: stream error: host-unknown"), o)
	assert.Contains(t, fix, `does not serve the domain "nosuch.local"`)
	assert.Contains(t, fix, "servers.remote.backend_config.domain")
	assert.Contains(t, fix, "VirtualHost")
	other := loginFix(errors.New("something new"), Options{})
	assert.Contains(t, other, "backend_config", "never empty advice")
}

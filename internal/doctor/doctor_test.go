package doctor

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
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
	assert.Equal(t, Fail, plain.Status, "plain text fails, even on loopback")
	assert.Contains(t, plain.Detail, "loopback")
	assert.Contains(t, plain.Fix, "c2s_require_encryption")

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

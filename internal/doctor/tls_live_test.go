// These tests start a private Prosody with TLS (xmpptest.StartProsody); with
// CI=true a missing prosody fails them.

package doctor

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
)

// A private Prosody with a certificate: the TLS check passes (a warning: the
// test CA's certificates expire within a day), naming the certificate and its
// expiry, over STARTTLS and over direct TLS; nothing fails.
func TestDoctorOnATLSServer(t *testing.T) {
	p := xmpptest.StartProsody(t, xmpptest.PrivateOptions{RequireEncryption: true, Accounts: map[string]string{"doc": "doc-Pw-1"}})
	for _, svc := range []string{"xmpp://" + p.Addr, "xmpps://" + p.DirectTLS} {
		probe, err := runtime.Probe(runtime.Config{Service: svc, Domain: p.Domain, MUCService: p.MUC, Username: "doc", Password: "doc-Pw-1", TLSConfig: p.CA.TLSConfig()})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		report := Run(ctx, Options{Probe: probe})
		cancel()
		require.NotEmpty(t, report)
		tlsRow := report[0]
		assert.Equal(t, CheckTLS, tlsRow.Name)
		assert.NotEqual(t, Fail, tlsRow.Status, "%s: %+v", svc, report) // the test CA's certificates live a day: a warning
		assert.Contains(t, tlsRow.Detail, "certificate for parley.local")
		assert.Contains(t, tlsRow.Detail, "expires 20")
		assert.False(t, Failed(report), "%s: %+v", svc, report)
	}
}

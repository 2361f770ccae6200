// These tests use the dev server under test (PARLEY_TEST_SERVER: prosody or
// ejabberd; scripts/devserver.sh start).

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

func devProbe(t *testing.T, s xmpptest.Server, domain string) runtime.ProbeConfig {
	t.Helper()
	p, err := runtime.Probe(runtime.Config{Service: "xmpp://" + s.Addr, Domain: domain, MUCService: s.MUC,
		Username: s.Accounts[0][0], Password: s.Accounts[0][1]})
	require.NoError(t, err)
	return p
}

func rowsOf(report []Check) map[string]Check {
	out := map[string]Check{}
	for _, c := range report {
		out[c.Name] = c
	}
	return out
}

// A MUC service the server does not have (Prosody answers not-allowed,
// ejabberd remote-server-not-found): the MUC check fails and names the
// server's MUC services, found by disco#items (the dev servers' muc service
// with MAM); the room check is skipped, not failed with advice about room
// creation. The plain-text dev server is a warning, not a failure.
func TestDoctorAdvisesOnAnUnknownMUCService(t *testing.T) {
	s := xmpptest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows := rowsOf(Run(ctx, Options{Probe: devProbe(t, s, s.Domain), MUCService: "nosuch.parley.local"}))
	muc := rows[CheckMUC]
	assert.Equal(t, Fail, muc.Status, "%+v", muc)
	assert.Contains(t, muc.Detail, "nosuch.parley.local is not a service of this server")
	assert.Contains(t, muc.Fix, "set --muc-service to the server's MUC service: ")
	assert.Contains(t, muc.Fix, s.MUC+" (with MAM)")
	if s.Name == "prosody" { // ejabberd's MAM-less service is on another host (nomam.local)
		assert.Contains(t, muc.Fix, s.NoMAMMUC+" (without MAM)")
	}
	room := rows[CheckRoom]
	assert.Equal(t, Skip, room.Status, "%+v", room)
	assert.Contains(t, room.Detail, "needs a MUC service")
	assert.NotContains(t, room.Fix, "let the account create rooms")
	assert.Equal(t, Warn, rows[CheckTLS].Status, "plain text on loopback: %+v", rows[CheckTLS])
	assert.Equal(t, Pass, rows[CheckLogin].Status)
}

// A domain the server does not serve: the login fails with host-unknown and
// the advice names the domain setting (it was "see the error").
func TestDoctorAdvisesOnAnUnknownDomain(t *testing.T) {
	s := xmpptest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows := rowsOf(Run(ctx, Options{Probe: devProbe(t, s, "nosuch.local")}))
	login := rows[CheckLogin]
	assert.Equal(t, Fail, login.Status, "%+v", login)
	assert.Contains(t, login.Detail, "host-unknown")
	assert.Contains(t, login.Fix, `does not serve the domain "nosuch.local"`)
	assert.Contains(t, login.Fix, "backend_config.domain")
	assert.Equal(t, Skip, rows[CheckMUC].Status)
}

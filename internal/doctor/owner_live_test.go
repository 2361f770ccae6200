// These tests use the dev server under test (PARLEY_TEST_SERVER: prosody or
// ejabberd; scripts/devserver.sh start).

package doctor

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// The ownership check on a real server, with three topics: one whose room
// another account (parley2) created first and holds (squatted), one whose
// room this account (parley) created, and one without a room yet. The check
// fails, naming the squatted room and the affiliation it gives this account
// (none), and says what to change on the server; the other two are fine. On
// Prosody the squatted room is then destroyed with the admin-shell line
// docs/security.md gives (its tombstone answers gone).
func TestDoctorReportsASquattedRoom(t *testing.T) {
	s := xmpptest.Require(t)
	fresh := func(what string) seam.Topic {
		return seam.Topic("doctor " + what + " " + strings.ToLower(rand.Text()[:10]))
	}
	squatted, owned, missing := fresh("squatted"), fresh("owned"), fresh("missing")
	roomOf := func(topic seam.Topic) string {
		local, err := runtime.RoomLocalpart(topic)
		require.NoError(t, err)
		return local + "@" + s.MUC
	}
	squatter, err := xmpptest.Dial(s, 1)
	require.NoError(t, err)
	t.Cleanup(squatter.Close)
	require.NoError(t, squatter.Join(roomOf(squatted), "squatter"))
	creator, err := xmpptest.Dial(s, 0)
	require.NoError(t, err)
	t.Cleanup(creator.Close)
	require.NoError(t, creator.Join(roomOf(owned), "creator"))

	probe, err := runtime.Probe(runtime.Config{Service: "xmpp://" + s.Addr, Domain: s.Domain, MUCService: s.MUC,
		Username: s.Accounts[0][0], Password: s.Accounts[0][1]})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	report := Run(ctx, Options{Probe: probe, Topics: []seam.Topic{owned, missing, squatted}})
	var row *Check
	for i := range report {
		if report[i].Name == CheckOwnership {
			row = &report[i]
		}
	}
	require.NotNil(t, row, "%+v", report)
	assert.Equal(t, Fail, row.Status, "%+v", row)
	assert.Contains(t, row.Detail, fmt.Sprintf("%s: %s gives this account the affiliation none, not owner", squatted, roomOf(squatted)))
	assert.Contains(t, row.Detail, fmt.Sprintf("%s: %s is owned by this account", owned, roomOf(owned)))
	assert.Contains(t, row.Detail, fmt.Sprintf("%s: no room yet", missing))
	assert.Contains(t, row.Fix, "squatting")
	assert.Contains(t, row.Fix, "access_create")
	assert.Contains(t, row.Fix, "restrict_room_creation")
	assert.True(t, Failed(report))

	if s.Name == "prosody" {
		room := roomOf(squatted)
		xmpptest.ProsodyShell(t, fmt.Sprintf(`prosody.hosts[%q].modules.muc.get_room_from_jid(%q):destroy()`, s.MUC, room))
		exists, err := creator.RoomExists(room)
		if err != nil {
			assert.ErrorContains(t, err, "gone", "a destroyed room leaves a tombstone (gone)")
		} else {
			assert.False(t, exists, "the admin shell's line destroys the squatted room")
		}
	}
}

package runtime_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// A silent removal on a real server: Prosody's admin shell drops the runtime's
// occupant from the room without a word to it (no unavailable presence, as
// when a server restart loses a room's occupants, or a MUC on another server
// drops a member whose s2s link hiccupped). Messages posted meanwhile don't
// reach it. The XEP-0410 self-ping finds it (the room answers not-acceptable),
// the runtime reports RoomRemoved, rejoins, and replays what it missed from the
// archive: the subscriber gets every message once, in order.
//
// Prosody only: ejabberd 23.01 has no way to do this from outside. Its admin
// commands (ejabberdctl, mod_muc_admin: kick, change room option, destroy)
// all tell the occupant with an unavailable presence, and dropping an
// occupant silently would mean rewriting the state of the room's live Erlang
// process (its internal #state record), which no API offers.
func TestSilentRemovalOnRealProsodyFoundBySelfPing(t *testing.T) {
	s := xmpptest.Require(t)
	if s.Name != "prosody" {
		t.Skip("a silent removal can be made only on Prosody (its admin shell); see the comment")
	}
	var ev events
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.SelfPing = time.Second
		c.OnRoomEvent = ev.add
	}))
	poster := connected(t, newRuntime(t, s, 1, nil))
	topic := freshTopic()
	room := roomOf(t, s, topic)
	got := &collector{}
	_, err := rt.Subscribe(ctx5(t), topic, got.add)
	require.NoError(t, err)
	postN := func(n int, tag string) []seam.BackendMsgID {
		var ids []seam.BackendMsgID
		for i := range n {
			id, err := poster.Post(ctx5(t), topic, "me", fmt.Sprintf("%s %d", tag, i), seam.PostOptions{})
			require.NoError(t, err)
			ids = append(ids, id)
		}
		return ids
	}
	ids := postN(3, "before")
	require.Eventually(t, func() bool { return len(got.got()) == 3 }, 10*time.Second, 5*time.Millisecond)

	// Drop every occupant of the runtime's account from the room's state, the
	// way the room itself forgets an occupant (a role of nil, saved), with no
	// presence sent.
	removed := xmpptest.ProsodyShell(t, fmt.Sprintf(`local room = prosody.hosts[%q].modules.muc.get_room_from_jid(%q); `+
		`if not room then error("no room %s") end; local n = 0; `+
		`for _, occ in room:each_occupant() do if occ.bare_jid == %q then occ.role = nil; room:save_occupant(occ); n = n + 1 end end; `+
		`return n`, s.MUC, room, room, s.Accounts[0][0]+"@"+s.Domain))
	require.Equal(t, "1", removed, "the runtime's occupant was in the room and is now gone")

	ids = append(ids, postN(3, "while removed")...)
	require.Eventually(t, func() bool { return ev.has(runtime.RoomRemoved) && ev.has(runtime.RoomRejoined) },
		15*time.Second, 10*time.Millisecond, "the self-ping finds the removal and the room is rejoined")
	ids = append(ids, postN(2, "after the rejoin")...)
	require.Eventually(t, func() bool { return len(got.got()) >= len(ids) }, 15*time.Second, 5*time.Millisecond,
		"got %d of %d", len(got.got()), len(ids))
	time.Sleep(200 * time.Millisecond) // room for a duplicate to show
	assert.Equal(t, ids, got.got(), "every message once, in order: the missed ones replayed")
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, e := range ev.es {
		if e.Kind == runtime.RoomRemoved {
			assert.ErrorContains(t, e.Err, "self-ping", "found by the self-ping")
		}
	}
}

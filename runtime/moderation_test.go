package runtime_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/rawclient"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

const (
	nsAdmin = "http://jabber.org/protocol/muc#admin"
	nsOwner = "http://jabber.org/protocol/muc#owner"
)

// moderated sets up a room owned by an independent client (account parley),
// and a runtime of another account (parley2) subscribed to it.
func moderated(t *testing.T) (*runtime.Runtime, *rawclient.Client, seam.Topic, string, *events, *collector) {
	s := xmpptest.Require(t)
	owner, err := xmpptest.Dial(s, 0)
	require.NoError(t, err)
	t.Cleanup(owner.Close)
	topic := freshTopic()
	room := roomOf(t, s, topic)
	require.NoError(t, owner.Join(room, "owner"))
	ev := &events{}
	rt := connected(t, newRuntime(t, s, 1, func(c *runtime.Config) {
		c.OnRoomEvent = ev.add
		c.Nick = "guest"
	}))
	got := &collector{}
	_, err = rt.Subscribe(ctx5(t), topic, got.add)
	require.NoError(t, err)
	return rt, owner, topic, room, ev, got
}

// Kicked: the runtime reports it, rejoins by itself, and its subscriber still
// gets every message, including those posted while it was out, once each.
func TestKickedRuntimeRejoinsAndReplays(t *testing.T) {
	rt, owner, topic, room, ev, got := moderated(t)
	first, err := owner.Post(room, "before the kick", "")
	require.NoError(t, err)
	require.NoError(t, owner.Admin(room, nsAdmin, `<item nick='guest' role='none'/>`))
	during, err := owner.Post(room, "while the guest is out", "")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return ev.has(runtime.RoomRejoined) }, 10*time.Second, 10*time.Millisecond)
	assert.True(t, ev.has(runtime.RoomRemoved))
	after, err := rt.Post(ctx5(t), topic, "guest", "back again", seam.PostOptions{})
	require.NoError(t, err)
	want := []seam.BackendMsgID{seam.BackendMsgID(first), seam.BackendMsgID(during), after}
	require.Eventually(t, func() bool { return len(got.got()) >= 3 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, want, got.got())
}

// Banned: the runtime reports it and does not rejoin; calls on the room fail
// with a clear error.
func TestBannedRuntimeGivesUp(t *testing.T) {
	rt, owner, topic, room, ev, _ := moderated(t)
	require.NoError(t, owner.Admin(room, nsAdmin, `<item jid='parley2@parley.local' affiliation='outcast'/>`))
	require.Eventually(t, func() bool { return ev.has(runtime.RoomBanned) }, 5*time.Second, 10*time.Millisecond)
	_, err := rt.Post(ctx5(t), topic, "guest", "let me in", seam.PostOptions{})
	require.Error(t, err)
	assert.ErrorContains(t, err, "banned")
}

// Destroyed: the runtime reports the removal and tries to rejoin. A server that
// keeps the destroyed room's name (Prosody) refuses: that is reported. One that
// lets the name be used again (ejabberd) makes a new room with a new archive:
// the lost history is reported.
func TestDestroyedRoomIsReported(t *testing.T) {
	_, owner, _, room, ev, got := moderated(t)
	_, err := owner.Post(room, "history that goes with the room", "")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(got.got()) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, owner.Admin(room, nsOwner, `<destroy><reason>gone</reason></destroy>`))
	require.Eventually(t, func() bool { return ev.has(runtime.RoomRemoved) }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return ev.has(runtime.RoomRejoinFailed) || ev.has(runtime.RoomHistoryGap) }, 10*time.Second, 10*time.Millisecond)
}

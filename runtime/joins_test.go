package runtime_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// The room's join state machine, against a scripted MUC.

func joinError(st *xmpptest.Stream, p xmpptest.Element, condition string) {
	st.Send(`<presence type='error' from='%s' to='%s' id='%s'><error type='cancel'><%s xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`, p.Get("to"), st.JID, p.Get("id"), condition)
}

// A room another connection is creating answers item-not-found until it is
// unlocked: the join retries and succeeds.
func TestJoinRetriesWhileTheRoomIsLocked(t *testing.T) {
	var attempts atomic.Int32
	rt := hostileRuntime(t, &fakeMUC{onJoin: func(st *xmpptest.Stream, p xmpptest.Element) bool {
		if attempts.Add(1) <= 3 {
			joinError(st, p, "item-not-found")
			return true
		}
		return false
	}}, nil)
	_, err := rt.Subscribe(ctx5(t), hostileTopic, func(seam.Message) {})
	require.NoError(t, err)
	assert.Equal(t, int32(4), attempts.Load())
}

// A room that stays locked ends the join at the join timeout with a clear error.
func TestJoinGivesUpAtTheJoinTimeout(t *testing.T) {
	rt := hostileRuntime(t, &fakeMUC{onJoin: func(st *xmpptest.Stream, p xmpptest.Element) bool {
		joinError(st, p, "item-not-found")
		return true
	}}, func(c *runtime.Config) { c.JoinTimeout = 500 * time.Millisecond })
	start := time.Now()
	_, err := rt.Post(ctx5(t), hostileTopic, "me", "x", seam.PostOptions{})
	assert.ErrorIs(t, err, vocab.ErrJoinTimeout)
	assert.Less(t, time.Since(start), 3*time.Second)
}

// A refusal that retrying can't fix fails the join at once.
func TestJoinRefusedFailsAtOnce(t *testing.T) {
	rt := hostileRuntime(t, &fakeMUC{onJoin: func(st *xmpptest.Stream, p xmpptest.Element) bool {
		joinError(st, p, "forbidden")
		return true
	}}, nil)
	_, err := rt.Post(ctx5(t), hostileTopic, "me", "x", seam.PostOptions{})
	assert.ErrorIs(t, err, vocab.ErrJoin)
	assert.ErrorContains(t, err, "forbidden")
}

// A server-reported conflict: a pinned nick fails loudly naming the nick; a
// random nick draws another and gets in.
func TestJoinConflict(t *testing.T) {
	conflictOnce := func() *fakeMUC {
		var n atomic.Int32
		return &fakeMUC{onJoin: func(st *xmpptest.Stream, p xmpptest.Element) bool {
			if n.Add(1) == 1 {
				joinError(st, p, "conflict")
				return true
			}
			return false
		}}
	}
	pinned := hostileRuntime(t, conflictOnce(), func(c *runtime.Config) { c.Nick = "taken-nick" })
	_, err := pinned.Subscribe(ctx5(t), hostileTopic, func(seam.Message) {})
	assert.ErrorIs(t, err, seam.ErrNickConflict)
	assert.ErrorContains(t, err, "taken-nick")

	f := conflictOnce()
	random := hostileRuntime(t, f, nil)
	_, err = random.Subscribe(ctx5(t), hostileTopic, func(seam.Message) {})
	require.NoError(t, err)
	assert.NotEqual(t, random.Nick(), f.nick, "a fresh nick was drawn")
}

// A pinned nick whose probe is answered by someone else (another session holds
// the nick) fails with the nick conflict; the control, a probe that comes back to
// us, succeeds.
func TestPinnedNickProbe(t *testing.T) {
	for _, routedToUs := range []bool{true, false} {
		t.Run(fmt.Sprintf("routed_to_us=%v", routedToUs), func(t *testing.T) {
			f := &fakeMUC{}
			f.onIQ = func(st *xmpptest.Stream, iq xmpptest.Element) bool {
				if !strings.Contains(iq.Inner, "nick-probe") {
					return false
				}
				if routedToUs { // the room routes the probe to the nick's session: us
					st.Send(`<iq type='get' id='routed' from='%s' to='%s'>%s</iq>`, iq.Get("to"), st.JID, iq.Inner)
				}
				st.Send(`<iq type='result' id='%s' from='%s' to='%s'/>`, iq.Get("id"), iq.Get("to"), st.JID)
				return true
			}
			rt := hostileRuntime(t, f, func(c *runtime.Config) { c.Nick = "pinned" })
			_, err := rt.Subscribe(ctx5(t), hostileTopic, func(seam.Message) {})
			if routedToUs {
				require.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, seam.ErrNickConflict)
			}
		})
	}
}

// Removal from the room (a kick, the room's destruction): the runtime rejoins
// by itself, replays, and the post that was in flight resolves exactly once.
func TestRemovedFromTheRoomRejoins(t *testing.T) {
	var joins, posts atomic.Int32
	events := make(chan runtime.RoomEvent, 10)
	f := &fakeMUC{onPresence: func() { joins.Add(1) }}
	f.onMessage = func(st *xmpptest.Stream, m xmpptest.Element) {
		if posts.Add(1) == 1 { // instead of reflecting the first post: kick the poster
			st.Send(`<presence type='unavailable' from='%s/%s' to='%s'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='none'/><status code='307'/><status code='110'/></x></presence>`, hostileRoom, f.nick, st.JID)
			return
		}
		reflect(st, f, m, "after-kick")
	}
	rt := hostileRuntime(t, f, func(c *runtime.Config) {
		c.OnRoomEvent = func(e runtime.RoomEvent) { events <- e }
	})
	id, err := rt.Post(ctx5(t), hostileTopic, "me", "x", seam.PostOptions{})
	require.NoError(t, err)
	assert.Equal(t, seam.BackendMsgID("after-kick"), id, "resolved once, by the resend")
	assert.Equal(t, int32(2), joins.Load(), "rejoined by itself")
	assert.Equal(t, int32(2), posts.Load(), "sent again once: the replay didn't find it")
	var kinds []runtime.RoomEventKind
	for len(kinds) < 2 {
		select {
		case e := <-events:
			kinds = append(kinds, e.Kind)
		case <-time.After(2 * time.Second):
			t.Fatalf("events so far: %v", kinds)
		}
	}
	assert.Equal(t, []runtime.RoomEventKind{runtime.RoomRemoved, runtime.RoomRejoined}, kinds)
}

// A ban ends the occupancy: what waited fails with ErrBanned, no rejoin.
func TestBannedFromTheRoom(t *testing.T) {
	var joins atomic.Int32
	f := &fakeMUC{onPresence: func() { joins.Add(1) }}
	f.onMessage = func(st *xmpptest.Stream, m xmpptest.Element) {
		st.Send(`<presence type='unavailable' from='%s/%s' to='%s'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='outcast' role='none'/><status code='301'/><status code='110'/></x></presence>`, hostileRoom, f.nick, st.JID)
	}
	rt := hostileRuntime(t, f, nil)
	_, err := rt.Post(ctx5(t), hostileTopic, "me", "x", seam.PostOptions{})
	assert.ErrorIs(t, err, vocab.ErrBanned)
	time.Sleep(700 * time.Millisecond) // longer than the first rejoin wait
	assert.Equal(t, int32(1), joins.Load(), "no rejoin after a ban")
}

// reflect echoes a post back from the runtime's nick with the given stanza-id.
func reflect(st *xmpptest.Stream, f *fakeMUC, m xmpptest.Element, id string) {
	var body string
	m.Child("body", &body)
	var origin struct {
		ID string `xml:"id,attr"`
	}
	m.Child("origin-id", &origin)
	st.Send(`<message type='groupchat' from='%s/%s' to='%s'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%s'/><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='%s'/></message>`,
		hostileRoom, f.nick, st.JID, xmpptest.Escape(body), origin.ID, hostileRoom, id)
}

// A room whose archive refuses queries fails the join with seam.ErrNoArchive.
func TestJoinWithoutArchive(t *testing.T) {
	rt := hostileRuntime(t, &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		st.Send(`<iq type='error' id='%s' from='%s' to='%s'><error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`, q.iq.Get("id"), hostileRoom, st.JID)
	}}, nil)
	_, err := rt.Subscribe(ctx5(t), hostileTopic, func(seam.Message) {})
	assert.ErrorIs(t, err, seam.ErrNoArchive)
}

// A room that renames us on join (status 210, which go-xmpp hides) still echoes
// the join's id: the runtime takes the nick it was given and works on.
func TestJoinWithANickTheRoomChose(t *testing.T) {
	f := &fakeMUC{}
	f.onJoin = func(st *xmpptest.Stream, p xmpptest.Element) bool {
		f.nick = "renamed-by-room"
		st.Send(`<presence from='%s/%s' to='%s' id='%s'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/><status code='110'/><status code='210'/></x></presence>`, hostileRoom, f.nick, st.JID, p.Get("id"))
		return true
	}
	f.onMessage = func(st *xmpptest.Stream, m xmpptest.Element) { reflect(st, f, m, "s-1") }
	rt := hostileRuntime(t, f, nil)
	id, err := rt.Post(ctx5(t), hostileTopic, "me", "under my new name", seam.PostOptions{})
	require.NoError(t, err)
	assert.Equal(t, seam.BackendMsgID("s-1"), id)
}

package runtime_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// manyRooms plays a MUC service of many rooms on a scripted stream: every join
// is let in after a delay (joins in flight are counted), every room archives
// and its archive is empty.
type manyRooms struct {
	delay time.Duration
	mu    sync.Mutex
	conns []*xmpptest.Stream
	// per stream (1-based), the rooms joined in order, and the most joins
	// waiting for their answer at once.
	joins    map[int][]string
	most     map[int]int
	inFlight int
}

func (m *manyRooms) run(st *xmpptest.Stream) {
	m.mu.Lock()
	m.conns = append(m.conns, st)
	n := len(m.conns)
	m.mu.Unlock()
	for {
		e, err := st.Next(time.Minute)
		if err != nil {
			return
		}
		to, id := e.Get("to"), e.Get("id")
		room, _, _ := strings.Cut(to, "/")
		switch e.XMLName.Local {
		case "presence":
			if !strings.Contains(to, "/") || e.Get("type") != "" {
				continue
			}
			m.mu.Lock()
			m.joins[n] = append(m.joins[n], room)
			m.inFlight++
			m.most[n] = max(m.most[n], m.inFlight)
			m.mu.Unlock()
			time.AfterFunc(m.delay, func() {
				m.mu.Lock()
				m.inFlight--
				m.mu.Unlock()
				welcome(st, e)
			})
		case "iq":
			switch {
			case strings.Contains(e.Inner, "urn:xmpp:mam:2"):
				st.Send(`<iq type='result' id='%s' from='%s' to='%s'><fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'/></fin></iq>`, id, to, st.JID)
			case strings.Contains(e.Inner, "disco#info") && e.Get("type") == "get":
				st.Send(`<iq type='result' id='%s' from='%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'><feature var='http://jabber.org/protocol/muc'/><feature var='urn:xmpp:mam:2'/></query></iq>`, id, to, st.JID)
			case e.Get("type") == "get" || e.Get("type") == "set":
				st.Send(`<iq type='result' id='%s' from='%s' to='%s'/>`, id, to, st.JID)
			}
		}
	}
}

func (m *manyRooms) stream(i int) (joins []string, most int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.joins[i]...), m.most[i]
}

// Issue 12, item 3: after a reconnect the rooms rejoin a bounded number at a
// time (RejoinConcurrency), rooms with subscribers first: the server never
// sees more joins waiting than the bound, and every subscribed room is joined
// before any room that only has a long-poll waiting.
func TestRejoinTurnsAreBoundedSubscribedFirst(t *testing.T) {
	const bound, subscribed, polled = 4, 12, 8
	m := &manyRooms{delay: 40 * time.Millisecond, joins: map[int][]string{}, most: map[int]int{}}
	srv := xmpptest.NewScripted(t, "parley.local", m.run)
	var online atomic.Int32
	rt := scriptedRuntime(t, srv, func(c *runtime.Config) {
		c.RejoinConcurrency = bound
		c.OnStateChange = func(sc runtime.StateChange) {
			if sc.To == runtime.Online {
				online.Add(1)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	isSubscribed := map[string]bool{}
	for i := range subscribed + polled {
		topic := seam.Topic("gate " + string(rune('a'+i)))
		local, err := runtime.RoomLocalpart(topic)
		require.NoError(t, err)
		if i < subscribed {
			isSubscribed[local+"@muc.parley.local"] = true
			_, err := rt.Subscribe(ctx, topic, func(seam.Message) {})
			require.NoError(t, err)
			continue
		}
		// A long-poll waiting for the room's next message needs the room too.
		go func() {
			since := seam.Cursor("")
			_, _ = rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Since: &since, Block: time.Minute})
		}()
	}
	require.Eventually(t, func() bool { j, _ := m.stream(1); return len(j) == subscribed+polled }, 10*time.Second, 5*time.Millisecond)

	time.Sleep(1100 * time.Millisecond) // past the flap window: reconnect at once
	m.mu.Lock()
	_ = m.conns[0].Conn.Close()
	m.mu.Unlock()
	require.Eventually(t, func() bool { j, _ := m.stream(2); return len(j) == subscribed+polled }, 10*time.Second, 5*time.Millisecond, "every room rejoined")

	joins, most := m.stream(2)
	assert.LessOrEqual(t, most, bound, "joins waiting at once")
	assert.GreaterOrEqual(t, most, 2, "rejoins are pipelined")
	lastSubscribed, firstPolled := -1, len(joins)
	for i, r := range joins {
		if isSubscribed[r] {
			lastSubscribed = i
		} else {
			firstPolled = min(firstPolled, i)
		}
	}
	assert.Less(t, lastSubscribed, firstPolled, "subscribed rooms first: %v", joins)
	assert.Equal(t, int32(2), online.Load())
}

// Issue 12, item 3: a lean rejoin reuses what the first join learnt, until the
// room shows it no longer holds. Here the room was destroyed and made anew
// while the link was down: its archive no longer knows the room's cursor,
// which one server says with an error (Prosody: item-not-found) and another by
// answering the new archive's newest page, here empty, with an RSM count of 0
// (ejabberd). Either way the runtime reports the gap, replays the new archive
// from its start, and unlocks the new room as a first join would (a new room
// stays locked on Prosody until its creator configures it).
func TestRejoinIntoARecreatedRoomFallsBackToAFirstJoin(t *testing.T) {
	for _, answer := range []string{"item-not-found", "empty page, count 0"} {
		t.Run(answer, func(t *testing.T) {
			var streams atomic.Int32
			var mu sync.Mutex
			unlocks, joins := map[int32]int{}, map[int32]int{}
			f := &fakeMUC{onStream: func() { streams.Add(1) }}
			f.onPresence = func() { mu.Lock(); joins[streams.Load()]++; mu.Unlock() }
			f.onIQ = func(st *xmpptest.Stream, iq xmpptest.Element) bool {
				if strings.Contains(iq.Inner, "muc#owner") {
					mu.Lock()
					unlocks[streams.Load()]++
					mu.Unlock()
				}
				return false
			}
			f.onMAM = func(st *xmpptest.Stream, q mamQuery) {
				switch {
				case q.last && streams.Load() == 1: // the first join's tail: the room's newest message
					fin(st, q, true, "old-1", "old-1")
				case q.after == "old-1" && answer == "item-not-found":
					st.Send(`<iq type='error' id='%s' from='%s' to='%s'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`, q.iq.Get("id"), hostileRoom, st.JID)
				default: // the new room's archive: empty
					st.Send(`<iq type='result' id='%s' from='%s' to='%s'><fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><count>0</count></set></fin></iq>`, q.iq.Get("id"), hostileRoom, st.JID)
				}
			}
			var ev events
			rt := hostileRuntime(t, f, func(c *runtime.Config) {
				c.OnRoomEvent = ev.add
				c.ReconnectWait = 20 * time.Millisecond
			})
			_, err := rt.Subscribe(ctx5(t), hostileTopic, func(seam.Message) {})
			require.NoError(t, err)
			first := f.stream()
			time.Sleep(1100 * time.Millisecond) // past the flap window: reconnect at once
			_ = first.Conn.Close()
			require.Eventually(t, func() bool { return ev.has(runtime.RoomRejoined) }, 5*time.Second, 5*time.Millisecond)
			assert.True(t, ev.has(runtime.RoomHistoryGap), "the gap is reported")
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, map[int32]int{1: 1, 2: 1}, joins)
			assert.Equal(t, 1, unlocks[1], "the first join unlocks")
			assert.Equal(t, 1, unlocks[2], "the rejoin into the new room unlocks it")
		})
	}
}

// A lean rejoin trusts the room's cursor without a second query only while
// the replay's first page is not full (archive.Query.Trusted): a full page may
// be the newest page a server (ejabberd) answers for a cursor it doesn't know,
// so the cursor is verified then, before anything is delivered.
func TestRejoinVerifiesTheCursorBehindAFullPage(t *testing.T) {
	var streams, verified atomic.Int32
	f := &fakeMUC{onStream: func() { streams.Add(1) }}
	f.onMAM = func(st *xmpptest.Stream, q mamQuery) {
		switch {
		case q.last: // the first join's tail
			fin(st, q, true, "c0", "c0")
		case q.before != "" && q.max == 1: // the verification: the row before the page
			verified.Add(1)
			row(st, hostileRoom, q.queryID, "c0", "someone", "<body>old</body>")
			fin(st, q, false, "c0", "c0")
		case q.after == "c0": // a full page
			for i := range q.max {
				row(st, hostileRoom, q.queryID, fmt.Sprintf("r%02d", i), "someone", fmt.Sprintf("<body>m%d</body>", i))
			}
			fin(st, q, false, "r00", fmt.Sprintf("r%02d", q.max-1))
		default:
			fin(st, q, true, "", "")
		}
	}
	var got collector
	rt := hostileRuntime(t, f, func(c *runtime.Config) { c.ReconnectWait = 20 * time.Millisecond })
	_, err := rt.Subscribe(ctx5(t), hostileTopic, got.add)
	require.NoError(t, err)
	first := f.stream()
	time.Sleep(1100 * time.Millisecond)
	_ = first.Conn.Close()
	require.Eventually(t, func() bool { return len(got.got()) == defaultPage }, 5*time.Second, 5*time.Millisecond, "the page replayed")
	assert.Equal(t, int32(1), verified.Load(), "the cursor was verified")
	assert.Equal(t, int32(2), streams.Load())
}

const defaultPage = 50 // defaults.MAMPageSize

// A lean rejoin skips the pinned nick's checks (the nick was verified as ours,
// and a ghost of our lost link may still hold it). When the rejoin meets a
// conflict, someone else holds the nick now: the next attempt checks it again
// (the probe), as a first join does.
func TestRejoinAfterANickConflictChecksTheNickAgain(t *testing.T) {
	var streams, conflicts atomic.Int32
	var mu sync.Mutex
	probes := map[int32]int{}
	f := &fakeMUC{onStream: func() { streams.Add(1) }}
	f.onIQ = func(st *xmpptest.Stream, iq xmpptest.Element) bool {
		if !strings.Contains(iq.Inner, "nick-probe") {
			return false
		}
		mu.Lock()
		probes[streams.Load()]++
		mu.Unlock()
		st.Send(`<iq type='get' id='routed' from='%s' to='%s'>%s</iq>`, iq.Get("to"), st.JID, iq.Inner)
		st.Send(`<iq type='result' id='%s' from='%s' to='%s'/>`, iq.Get("id"), iq.Get("to"), st.JID)
		return true
	}
	f.onJoin = func(st *xmpptest.Stream, p xmpptest.Element) bool {
		if streams.Load() == 2 && conflicts.Add(1) == 1 {
			joinError(st, p, "conflict")
			return true
		}
		return false
	}
	var ev events
	rt := hostileRuntime(t, f, func(c *runtime.Config) {
		c.Nick = "pinned"
		c.OnRoomEvent = ev.add
		c.ReconnectWait = 20 * time.Millisecond
	})
	_, err := rt.Subscribe(ctx5(t), hostileTopic, func(seam.Message) {})
	require.NoError(t, err)
	first := f.stream()
	time.Sleep(1100 * time.Millisecond)
	_ = first.Conn.Close()
	require.Eventually(t, func() bool { return ev.has(runtime.RoomRejoined) }, 5*time.Second, 5*time.Millisecond)
	assert.True(t, ev.has(runtime.RoomRejoinFailed), "the conflict failed the first rejoin")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, map[int32]int{1: 1, 2: 1}, probes, "probed on the first join, and again after the conflict")
}

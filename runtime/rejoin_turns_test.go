package runtime_test

import (
	"context"
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

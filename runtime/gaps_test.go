package runtime_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/metrics"
	"github.com/parley-go/parley-xmpp/runtime"
)

// A history gap (RoomHistoryGap) is counted in
// parley_xmpp_history_gaps_total{topic}: once per event. A destroyed room
// gives one on a server that lets its name be used again (ejabberd: the new
// room's archive doesn't know the old cursor); Prosody keeps the name blocked
// and reports the failed rejoin instead, with no gap to count.
func TestHistoryGapIsCounted(t *testing.T) {
	s := xmpptest.Require(t)
	owner, err := xmpptest.Dial(s, 0)
	require.NoError(t, err)
	t.Cleanup(owner.Close)
	topic := freshTopic()
	room := roomOf(t, s, topic)
	require.NoError(t, owner.Join(room, "owner"))
	ev := &events{}
	m := metrics.New()
	rt := connected(t, newRuntime(t, s, 1, func(c *runtime.Config) {
		c.OnRoomEvent = ev.add
		c.Metrics = m
		c.Nick = "guest"
	}))
	got := &collector{}
	_, err = rt.Subscribe(ctx5(t), topic, got.add)
	require.NoError(t, err)
	_, err = owner.Post(room, "history that goes with the room", "")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(got.got()) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, owner.Admin(room, nsOwner, `<destroy><reason>gone</reason></destroy>`))
	require.Eventually(t, func() bool { return ev.has(runtime.RoomRejoinFailed) || ev.has(runtime.RoomHistoryGap) }, 10*time.Second, 10*time.Millisecond)
	if s.Name == "ejabberd" {
		require.Eventually(t, func() bool { return ev.has(runtime.RoomHistoryGap) }, 10*time.Second, 10*time.Millisecond,
			"ejabberd lets the destroyed room's name be used again: a gap")
	}
	gaps := 0
	ev.mu.Lock()
	for _, e := range ev.es {
		if e.Kind == runtime.RoomHistoryGap {
			gaps++
		}
	}
	ev.mu.Unlock()
	assert.Equal(t, float64(gaps), counted(t, m, "parley_xmpp_history_gaps_total", string(topic)), "one count per gap event")
}

// counted is the value of a counter family's series for topic (0: none).
func counted(t *testing.T, m *metrics.Prometheus, family, topic string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != family {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "topic" && l.GetValue() == topic {
					return s.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

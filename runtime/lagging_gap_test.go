package runtime_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/metrics"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// A lagging subscriber whose next messages the archive never supplies, though
// the room fanned them out (it saw them live: a server that reflects and then
// fails to store, as ejabberd does at mnesia's table limit), and whose ring no
// longer holds their content: the subscriber reads again for ArchiveWait,
// then the room reports a RoomHistoryGap naming exactly the ids skipped, counts
// it in parley_xmpp_history_gaps_total, and feeds the subscriber on from the
// ring. Never a silent skip.
func TestHostileArchiveNeverSuppliesKnownRowsIsAReportedGap(t *testing.T) {
	var mu sync.Mutex
	archived := []string{} // what the archive holds: m1…m10 of m1…m14
	var reads int
	f := &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		mu.Lock()
		ids := slices.Clone(archived)
		mu.Unlock()
		switch {
		case q.last: // the tail, while joining: an empty room
			fin(st, q, true, "", "")
		case q.before != "": // the check that a cursor exists: the row before
			if i := slices.Index(ids, q.before); i > 0 {
				mamPage(st, q, false, ids[i-1])
				return
			}
			fin(st, q, true, "", "")
		case q.after != "":
			mu.Lock()
			reads++
			mu.Unlock()
			i := slices.Index(ids, q.after)
			if rest := ids[i+1:]; len(rest) > 0 {
				mamPage(st, q, true, rest[:min(len(rest), q.max)]...)
				return
			}
			fin(st, q, true, "", "")
		default:
			fin(st, q, true, "", "")
		}
	}}
	ev := &events{}
	m := metrics.New()
	rt := hostileRuntime(t, f, func(c *runtime.Config) {
		c.SubscriberBuffer = 8
		c.RingBytes = 1 // the ring holds only the newest message's content
		c.ArchiveWait = 500 * time.Millisecond
		c.OnRoomEvent = ev.add
		c.Metrics = m
	})
	release := make(chan struct{})
	got := make(chan seam.Message, 20)
	sub, err := rt.Subscribe(ctx5(t), hostileTopic, func(m seam.Message) {
		<-release
		got <- m
	})
	require.NoError(t, err)
	defer sub.Close()
	st := f.stream()
	for i := 1; i <= 14; i++ {
		id := fmt.Sprintf("m%d", i)
		if i <= 10 {
			mu.Lock()
			archived = append(archived, id)
			mu.Unlock()
		}
		st.Send(`<message type='groupchat' from='%s/alice' to='%s'><body>%s</body><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='%s'/></message>`, hostileRoom, st.JID, id, hostileRoom, id)
	}
	time.Sleep(300 * time.Millisecond) // m9…m14 find the queue full
	start := time.Now()
	close(release)

	deliveredOnce(t, got, "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10", "m14")
	assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond, "it waited ArchiveWait for the archive first")
	mu.Lock()
	assert.Greater(t, reads, 2, "it read the archive again while waiting")
	mu.Unlock()
	var gaps []runtime.RoomEvent
	ev.mu.Lock()
	for _, e := range ev.es {
		if e.Kind == runtime.RoomHistoryGap {
			gaps = append(gaps, e)
		}
	}
	ev.mu.Unlock()
	require.Len(t, gaps, 1, "one gap reported")
	assert.Equal(t, []seam.BackendMsgID{"m11", "m12", "m13"}, gaps[0].Skipped, "naming exactly the ids skipped")
	assert.True(t, errors.Is(gaps[0].Err, runtime.ErrArchiveGap), "%v", gaps[0].Err)
	assert.Equal(t, 1.0, counted(t, m, "parley_xmpp_history_gaps_total", string(hostileTopic)), "counted")
}

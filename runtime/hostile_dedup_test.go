package runtime_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// droppedMetrics counts the archive rows a runtime dropped as sent again.
type droppedMetrics struct {
	observe.Nop
	dropped atomic.Int64
}

func (d *droppedMetrics) Room(string) observe.Room { return droppedRoom{d: d} }

type droppedRoom struct {
	observe.NopRoom
	d *droppedMetrics
}

func (r droppedRoom) ArchiveRowsDropped(n int) { r.d.dropped.Add(int64(n)) }

// ejabberd, under concurrent writes, sometimes answers the same archive row two
// to four times in one MAM page, and a page may hold the cursor it was asked to
// read after. A read takes each row once, in the server's order: repeats within
// a page, across pages, and the cursor itself are dropped and counted, and the
// NextCursor is the last message's. Forward (Since) and backward (newest) reads.
func TestHostileRepeatedArchiveRowsAreTakenOnce(t *testing.T) {
	f := &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		switch {
		case q.before == "a1": // the runtime checks that c0, its cursor, is just before a1
			mamPage(st, q, false, "c0")
		case q.after == "c0":
			mamPage(st, q, false, "c0", "a1", "a1", "a2", "a2", "a2")
		case q.after == "a2":
			mamPage(st, q, true, "a2", "a3", "a1", "a3")
		case q.last && q.max > 1: // the newest messages
			mamPage(st, q, true, "a2", "a2", "a3", "a3")
		default:
			fin(st, q, true, "", "")
		}
	}}
	var m droppedMetrics
	rt := hostileRuntime(t, f, func(c *runtime.Config) { c.Metrics = &m })

	since := seam.Cursor("c0")
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic, Since: &since, Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{"a1", "a2", "a3"}, contents(res.Messages), "each message once, in order")
	assert.Equal(t, seam.Cursor("a3"), res.NextCursor)
	// Page one: c0 (the cursor), a1 once, a2 twice; page two: a2 (its cursor),
	// a1 (an earlier page's), a3 once.
	assert.Equal(t, int64(7), m.dropped.Load(), "every dropped row counted")

	res, err = rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic, Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{"a2", "a3"}, contents(res.Messages), "each message once, in order")
	assert.Equal(t, seam.Cursor("a3"), res.NextCursor)
	assert.Equal(t, int64(9), m.dropped.Load())
}

// The same on a subscriber's path: a reflection that can't be taken at its word
// is read back from the archive, whose page repeats rows and holds the read's
// cursor. The subscriber gets each message once, in order (on this path the
// room's dedup ring also catches repeats of a row it delivered, but not the
// cursor's row, which came before the subscription), and the drops are counted.
func TestHostileRepeatedArchiveRowsReachSubscribersOnce(t *testing.T) {
	f := &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		switch {
		case q.last: // the tail read while joining
			mamPage(st, q, true, "t0")
		case q.after == "t0":
			mamPage(st, q, true, "t0", "real-1", "real-1", "t0", "real-1")
		default:
			fin(st, q, true, "", "")
		}
	}}
	var m droppedMetrics
	rt := hostileRuntime(t, f, func(c *runtime.Config) { c.Metrics = &m })
	got := make(chan seam.Message, 10)
	sub, err := rt.Subscribe(ctx5(t), hostileTopic, func(m seam.Message) { got <- m })
	require.NoError(t, err)
	defer sub.Close()

	st := f.stream()
	// No stanza-id by the room (only another entity's): read from the archive.
	st.Send(`<message type='groupchat' from='%s/alice' to='%s'><body>real-1</body><stanza-id xmlns='urn:xmpp:sid:0' by='mallory@parley.local' id='forged'/></message>`, hostileRoom, st.JID)
	st.Send(`<message type='groupchat' from='%s/alice' to='%s'><body>real-2</body><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='real-2'/></message>`, hostileRoom, st.JID, hostileRoom)

	deliveredOnce(t, got, "real-1", "real-2")
	assert.Equal(t, int64(4), m.dropped.Load(), "every dropped row counted")
}

// deliveredOnce checks that got delivers the messages with ids want, in order,
// and nothing more for a moment.
func deliveredOnce(t *testing.T, got <-chan seam.Message, want ...string) {
	t.Helper()
	var ids []string
	for len(ids) < len(want) {
		select {
		case m := <-got:
			ids = append(ids, string(m.BackendMsgID))
		case <-time.After(5 * time.Second):
			t.Fatalf("delivered so far: %v", ids)
		}
	}
	assert.Equal(t, want, ids)
	select {
	case m := <-got:
		t.Fatalf("delivered twice or forged: %+v", m)
	case <-time.After(200 * time.Millisecond):
	}
}

// mamPage answers q with rows of the given ids, each from alice with its id as
// body, and a <fin/> from the first id to the last.
func mamPage(st *xmpptest.Stream, q mamQuery, complete bool, ids ...string) {
	for _, id := range ids {
		row(st, hostileRoom, q.queryID, id, "alice", "<body>"+id+"</body>")
	}
	fin(st, q, complete, ids[0], ids[len(ids)-1])
}

// A lagging subscriber (a small buffer, a blocked handler) is fed from the
// archive, which repeats every row and holds each read's cursor: it gets each
// message once, in order.
func TestHostileRepeatedArchiveRowsReachLaggingSubscribersOnce(t *testing.T) {
	archived := []string{"t0"}
	for i := range 24 {
		archived = append(archived, fmt.Sprintf("m%d", i+1))
	}
	f := &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		switch {
		case q.last:
			mamPage(st, q, true, "t0")
		case q.before != "": // the runtime checks its cursor: the row before
			i := slices.Index(archived, q.before)
			if i < 1 {
				fin(st, q, true, "", "")
				return
			}
			mamPage(st, q, false, archived[i-1])
		case q.after != "":
			ids := []string{q.after} // the cursor itself, then every row twice
			for _, id := range archived[slices.Index(archived, q.after)+1:] {
				ids = append(ids, id, id)
			}
			mamPage(st, q, true, ids...)
		default:
			fin(st, q, true, "", "")
		}
	}}
	// A ring of one byte holds only the newest message's content: the rest is
	// read from the archive.
	rt := hostileRuntime(t, f, func(c *runtime.Config) { c.SubscriberBuffer = 8; c.RingBytes = 1 })
	got := make(chan seam.Message, 30)
	gate := make(chan struct{})
	sub, err := rt.Subscribe(ctx5(t), hostileTopic, func(m seam.Message) {
		<-gate
		got <- m
	})
	require.NoError(t, err)
	defer sub.Close()

	st := f.stream()
	for _, id := range archived[1:] {
		st.Send(`<message type='groupchat' from='%s/alice' to='%s'><body>%s</body><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='%s'/></message>`, hostileRoom, st.JID, id, hostileRoom, id)
	}
	time.Sleep(300 * time.Millisecond) // the subscriber falls behind
	close(gate)
	deliveredOnce(t, got, archived[1:]...)
}

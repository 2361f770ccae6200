package runtime_test

import (
	"sync/atomic"
	"testing"

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
	bodies := map[string]string{"c0": "zero", "a1": "one", "a2": "two", "a3": "three"}
	page := func(st *xmpptest.Stream, q mamQuery, complete bool, ids ...string) {
		for _, id := range ids {
			row(st, hostileRoom, q.queryID, id, "alice", "<body>"+bodies[id]+"</body>")
		}
		fin(st, q, complete, ids[0], ids[len(ids)-1])
	}
	f := &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		switch {
		case q.before == "a1": // the runtime checks that c0, its cursor, is just before a1
			page(st, q, false, "c0")
		case q.after == "c0":
			page(st, q, false, "c0", "a1", "a1", "a2", "a2", "a2")
		case q.after == "a2":
			page(st, q, true, "a2", "a3", "a1", "a3")
		case q.last && q.max > 1: // the newest messages
			page(st, q, true, "a2", "a2", "a3", "a3")
		default:
			fin(st, q, true, "", "")
		}
	}}
	var m droppedMetrics
	rt := hostileRuntime(t, f, func(c *runtime.Config) { c.Metrics = &m })

	since := seam.Cursor("c0")
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic, Since: &since, Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{"one", "two", "three"}, contents(res.Messages), "each message once, in order")
	assert.Equal(t, seam.Cursor("a3"), res.NextCursor)
	// Page one: c0 (the cursor), a1 once, a2 twice; page two: a2 (its cursor),
	// a1 (an earlier page's), a3 once.
	assert.Equal(t, int64(7), m.dropped.Load(), "every dropped row counted")

	res, err = rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic, Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{"two", "three"}, contents(res.Messages), "each message once, in order")
	assert.Equal(t, seam.Cursor("a3"), res.NextCursor)
	assert.Equal(t, int64(9), m.dropped.Load())
}

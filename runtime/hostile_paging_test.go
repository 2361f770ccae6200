package runtime_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Paging that never ends: a hostile server answers every MAM page with "more to
// come". Reads are bounded, and stop as soon as nobody waits for them.

// fromStart reads forward from the archive's start: no cursor to verify first.
var fromStart = seam.Cursor("")

// settle waits a little for queries the runtime should not send, then returns
// how many the server saw.
func settle(queries *atomic.Int32) int {
	time.Sleep(300 * time.Millisecond)
	return int(queries.Load())
}

// Empty pages, each with a fresh RSM <last/> and complete=false: the read ends
// with ErrArchiveRunaway after MaxArchiveIdlePages of them.
func TestHostileEndlessEmptyPagesEndTheRead(t *testing.T) {
	var queries atomic.Int32
	rt := hostileRuntime(t, &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		n := queries.Add(1)
		fin(st, q, false, "", fmt.Sprintf("fresh-%d", n))
	}}, nil)
	_, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic, Since: &fromStart})
	require.ErrorIs(t, err, runtime.ErrArchiveRunaway)
	assert.ErrorContains(t, err, "empty pages")
	assert.Equal(t, defaults.MaxArchiveIdlePages, settle(&queries), "queries the server saw")
}

// A flood of rows that aren't messages (chat states), page after page, each
// saying there is more: the read ends with ErrArchiveRunaway once it has
// passed over MaxArchiveNonMessageRows of them.
func TestHostileFloodOfNonMessageRowsEndsTheRead(t *testing.T) {
	const perPage = 900 // under MaxMAMResults: each page alone is accepted
	var queries atomic.Int32
	rt := hostileRuntime(t, &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		n := queries.Add(1)
		var last string
		for i := range perPage {
			last = fmt.Sprintf("s%d-%d", n, i)
			row(st, hostileRoom, q.queryID, last, "alice", "<active xmlns='http://jabber.org/protocol/chatstates'/>")
		}
		fin(st, q, false, fmt.Sprintf("s%d-0", n), last)
	}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // 10,800 rows under -race on a shared machine
	defer cancel()
	_, err := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: hostileTopic, Since: &fromStart})
	require.ErrorIs(t, err, runtime.ErrArchiveRunaway)
	assert.ErrorContains(t, err, "aren't messages")
	want := defaults.MaxArchiveNonMessageRows/perPage + 1
	assert.Equal(t, want, settle(&queries), "queries the server saw")
}

// The caller gives up while the server pages on (one message a page, always
// more): the server sees no query after the one in flight when ctx ended.
func TestHostileCancelledFetchStopsPaging(t *testing.T) {
	const inFlight = 3 // the query in flight when the caller cancels
	var queries atomic.Int32
	asked := make(chan struct{})
	cancelled := make(chan struct{})
	rt := hostileRuntime(t, &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		n := queries.Add(1)
		if n == inFlight {
			close(asked)
			<-cancelled // answer only once the caller has gone
		}
		id := fmt.Sprintf("m%d", n)
		row(st, hostileRoom, q.queryID, id, "alice", "<body>"+id+"</body>")
		fin(st, q, false, id, id)
	}}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 1)
	go func() {
		_, err := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: hostileTopic, Since: &fromStart, Limit: 1000})
		errs <- err
	}()
	select {
	case <-asked:
	case <-time.After(5 * time.Second):
		t.Fatal("the server was not asked for a third page")
	}
	cancel()
	select {
	case err := <-errs:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("FetchRecent did not return when its ctx ended")
	}
	close(cancelled)
	assert.Equal(t, inFlight, settle(&queries), "queries the server saw")

	// The runtime is still of use: a read that ends is answered.
	queries.Store(-1000) // the next pages are m-999, ...: fresh ids
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic, Since: &fromStart, Limit: 2})
	require.NoError(t, err)
	assert.Len(t, res.Messages, 2)
	assert.True(t, strings.HasPrefix(string(res.NextCursor), "m-"))
}

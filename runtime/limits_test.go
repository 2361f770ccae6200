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

	"github.com/parley-go/parley-xmpp/chaos"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Size limits and backpressure against the real servers (make test runs the
// package once per server): nothing a post carries, and no number of posts,
// makes the runtime lose its link, and every post resolves exactly once.

// linkWatch counts the runtime's lost links (Online to Reconnecting) and keeps
// their reasons.
type linkWatch struct {
	drops atomic.Int32
	mu    sync.Mutex
	errs  []error
}

func (w *linkWatch) on(sc runtime.StateChange) {
	if sc.From == runtime.Online && sc.To == runtime.Reconnecting {
		w.drops.Add(1)
		w.mu.Lock()
		w.errs = append(w.errs, sc.Err)
		w.mu.Unlock()
	}
}

func (w *linkWatch) reasons() []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]error(nil), w.errs...)
}

// quoteHeavy is content just under the 64 KiB content cap made of the
// characters XML escaping turns into 5 bytes each: about 320 KiB on the wire,
// over both servers' 256 KiB stanza limit.
func quoteHeavy() string {
	s := strings.Repeat("\"'\n&", 64*1024/4)
	return s[:64*1024-8] + "the end."
}

func ctxN(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A quote-heavy post near the content cap is refused up front with
// seam.ErrContentTooLarge (also seam.ErrInvalidContent), nothing is sent, and
// the link stays up: the next post lands.
func TestQuoteHeavyPostIsRefusedWithoutLinkLoss(t *testing.T) {
	s := xmpptest.Require(t)
	var w linkWatch
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) { c.OnStateChange = w.on }))
	topic := freshTopic()
	_, err := rt.Post(ctx5(t), topic, "me", "before", seam.PostOptions{})
	require.NoError(t, err)

	_, err = rt.Post(ctx5(t), topic, "me", quoteHeavy(), seam.PostOptions{})
	require.ErrorIs(t, err, seam.ErrContentTooLarge)
	assert.ErrorIs(t, err, seam.ErrInvalidContent)
	assert.ErrorContains(t, err, "MaxStanzaBytes")
	_, err = rt.PostOnce(ctx5(t), topic, "quote-heavy-once", quoteHeavy(), nil)
	require.ErrorIs(t, err, seam.ErrContentTooLarge)

	after, err := rt.Post(ctx5(t), topic, "me", "after", seam.PostOptions{})
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond) // a stream the server closed would show by now
	assert.Zero(t, w.drops.Load(), "link drops: %v", w.reasons())
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic})
	require.NoError(t, err)
	assert.Equal(t, []string{"before", "after"}, contents(res.Messages), "nothing of the refused post landed")
	assert.Equal(t, after, res.Messages[1].BackendMsgID)
}

// A poison message: with MaxStanzaBytes set above what the server takes, the
// quote-heavy post reaches the server, which closes the stream on it. The
// runtime resends it once on the next link; when the server closes that one
// too, the post fails with seam.ErrPoisonMessage and is not sent again: two
// lost links, not a storm, and the link then stays up.
func TestPoisonMessageFailsAfterKillingTheLinkTwice(t *testing.T) {
	s := xmpptest.Require(t)
	var w linkWatch
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.OnStateChange = w.on
		c.MaxStanzaBytes = 1 << 20 // above the servers' 256 KiB: the runtime's own check passes
	}))
	topic := freshTopic()
	_, err := rt.Post(ctx5(t), topic, "me", "before", seam.PostOptions{})
	require.NoError(t, err)

	start := time.Now()
	_, err = rt.Post(ctxN(t, 30*time.Second), topic, "me", quoteHeavy(), seam.PostOptions{})
	require.ErrorIs(t, err, seam.ErrPoisonMessage)
	t.Logf("failed after %s: %v", time.Since(start), err)
	assert.Equal(t, int32(2), w.drops.Load(), "link drops: %v", w.reasons())

	id, err := rt.Post(ctxN(t, 15*time.Second), topic, "me", "after", seam.PostOptions{})
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, int32(2), w.drops.Load(), "no drop after the poison failed: %v", w.reasons())
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic})
	require.NoError(t, err)
	assert.Equal(t, []string{"before", "after"}, contents(res.Messages))
	assert.Equal(t, id, res.Messages[1].BackendMsgID)
}

// burst posts n messages to topic at once, each with its own ctx, and returns
// each post's id or error by index.
func burst(rt *runtime.Runtime, topic seam.Topic, n int, prefix string, d time.Duration) ([]seam.BackendMsgID, []error) {
	ids, errs := make([]seam.BackendMsgID, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			ids[i], errs[i] = rt.Post(ctx, topic, "me", fmt.Sprintf("%s %d", prefix, i), seam.PostOptions{})
		})
	}
	wg.Wait()
	return ids, errs
}

// checkResolved: every post resolved with an id, and the archive after since
// holds each of them exactly once, with its own content.
func checkResolved(t *testing.T, rt *runtime.Runtime, topic seam.Topic, since seam.Cursor, prefix string, ids []seam.BackendMsgID, errs []error) {
	t.Helper()
	failed := 0
	for i, err := range errs {
		if err != nil {
			if failed < 5 {
				t.Errorf("post %d: %v", i, err)
			}
			failed++
		}
	}
	require.Zero(t, failed, "posts failed")
	byID := map[seam.BackendMsgID]int{}
	for i, id := range ids {
		require.NotEmpty(t, id, "post %d", i)
		_, dup := byID[id]
		require.False(t, dup, "two posts resolved with one id %s", id)
		byID[id] = i
	}
	seen := map[seam.BackendMsgID]bool{}
	cur := since
	for len(seen) < len(ids) {
		res, err := rt.FetchRecent(ctxN(t, 60*time.Second), seam.FetchRecentArgs{Topic: topic, Since: &cur, Limit: 10000})
		require.NoError(t, err)
		if len(res.Messages) == 0 {
			break
		}
		for _, m := range res.Messages {
			i, ours := byID[m.BackendMsgID]
			require.True(t, ours, "the archive holds %s (%q), which no post resolved with", m.BackendMsgID, m.Content)
			require.False(t, seen[m.BackendMsgID], "the archive holds %s twice", m.BackendMsgID)
			seen[m.BackendMsgID] = true
			assert.Equal(t, fmt.Sprintf("%s %d", prefix, i), m.Content)
		}
		cur = res.NextCursor
	}
	assert.Len(t, seen, len(ids), "every resolved post is in the archive")
}

// 8,000 concurrent posts through one runtime: no link drop, and every post
// resolves exactly once, with the id the archive holds once.
func TestBurstOf8000PostsKeepsTheLink(t *testing.T) {
	s := xmpptest.Require(t)
	var w linkWatch
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.OnStateChange = w.on
		c.MAMPageSize = 50
	}))
	topic := freshTopic()
	first, err := rt.Post(ctx5(t), topic, "me", "start", seam.PostOptions{})
	require.NoError(t, err)
	start := time.Now()
	ids, errs := burst(rt, topic, 8000, "burst", 50*time.Second)
	t.Logf("8000 posts resolved in %s", time.Since(start))
	assert.Zero(t, w.drops.Load(), "link drops: %v", w.reasons())
	checkResolved(t, rt, topic, seam.Cursor(first), "burst", ids, errs)
}

// Posts made during an outage wait for the link and go out after the reconnect
// at the window's pace: one lost link (the outage), no more, and every post
// resolves exactly once.
func TestOutageBacklogFlushesWithoutLinkLoss(t *testing.T) {
	s := xmpptest.Require(t)
	proxy, err := chaos.NewProxy(s.Addr)
	require.NoError(t, err)
	t.Cleanup(proxy.Close)
	var w linkWatch
	online := make(chan struct{}, 10)
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.Service = "xmpp://" + proxy.Addr()
		c.DialTimeout = time.Second
		c.ReconnectWait, c.MaxReconnectWait = 50*time.Millisecond, 300*time.Millisecond
		c.OnStateChange = func(sc runtime.StateChange) {
			w.on(sc)
			if sc.To == runtime.Online {
				online <- struct{}{}
			}
		}
	}))
	<-online
	topic := freshTopic()
	first, err := rt.Post(ctx5(t), topic, "me", "start", seam.PostOptions{})
	require.NoError(t, err)

	require.NoError(t, proxy.Blackhole())
	require.NoError(t, proxy.KillAll())
	require.Eventually(t, func() bool { return rt.State() == runtime.Reconnecting }, 5*time.Second, 5*time.Millisecond)
	const n = 6000
	var ids []seam.BackendMsgID
	var errs []error
	done := make(chan struct{})
	go func() {
		defer close(done)
		ids, errs = burst(rt, topic, n, "backlog", 50*time.Second)
	}()
	time.Sleep(time.Second) // the posts pile up in the room meanwhile
	require.Equal(t, runtime.Reconnecting, rt.State())
	time.Sleep(1200 * time.Millisecond) // the blackholed login times out (DialTimeout) before the heal
	proxy.Heal()
	<-done
	assert.Equal(t, int32(1), w.drops.Load(), "the outage and nothing else: %v", w.reasons())
	checkResolved(t, rt, topic, seam.Cursor(first), "backlog", ids, errs)
}

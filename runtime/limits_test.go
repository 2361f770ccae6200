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

// quoteHeavy is content just under the 64 KiB content cap made of quotes,
// apostrophes and line feeds, which xml.EscapeText made 5 bytes each (about
// 320 KiB on the wire, over both servers' 256 KiB stanza limit); the runtime
// sends them as they are.
func quoteHeavy() string {
	s := strings.Repeat("\"'\n", 64*1024/3)
	return s[:64*1024-8] + "the end."
}

// ampHeavy is content just under the cap that no escaping keeps small: every &
// is 5 bytes on the wire, about 320 KiB in all.
func ampHeavy() string { return strings.Repeat("&", 64*1024-8) + "the end." }

func ctxN(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A quote-heavy post near the content cap is posted and lands intact; an
// ampersand-heavy one, over the stanza limit however it is escaped, is refused
// up front with seam.ErrContentTooLarge (also seam.ErrInvalidContent) and
// nothing is sent. Either way the link stays up.
func TestHeavyEscapingPostsKeepTheLink(t *testing.T) {
	s := xmpptest.Require(t)
	var w linkWatch
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) { c.OnStateChange = w.on }))
	topic := freshTopic()
	_, err := rt.Post(ctx5(t), topic, "me", "before", seam.PostOptions{})
	require.NoError(t, err)

	quotes, err := rt.Post(ctxN(t, 15*time.Second), topic, "me", quoteHeavy(), seam.PostOptions{})
	require.NoError(t, err)
	_, err = rt.Post(ctx5(t), topic, "me", ampHeavy(), seam.PostOptions{})
	require.ErrorIs(t, err, seam.ErrContentTooLarge)
	assert.ErrorIs(t, err, seam.ErrInvalidContent)
	assert.ErrorContains(t, err, "MaxStanzaBytes")
	_, err = rt.PostOnce(ctx5(t), topic, "amp-heavy-once", ampHeavy(), nil)
	require.ErrorIs(t, err, seam.ErrContentTooLarge)

	after, err := rt.Post(ctx5(t), topic, "me", "after", seam.PostOptions{})
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond) // a stream the server closed would show by now
	assert.Zero(t, w.drops.Load(), "link drops: %v", w.reasons())
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic})
	require.NoError(t, err)
	require.Len(t, res.Messages, 3, "before, the quotes, after: nothing of the refused posts")
	assert.Equal(t, "before", res.Messages[0].Content)
	assert.Equal(t, quotes, res.Messages[1].BackendMsgID)
	assert.True(t, res.Messages[1].Content == quoteHeavy(), "the quote-heavy post arrives intact")
	assert.Equal(t, after, res.Messages[2].BackendMsgID)
}

// A poison message: with MaxStanzaBytes set above what the server takes, the
// ampersand-heavy post reaches the server, which closes the stream on it. The
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

	// Posts on the wire around it land, each once.
	var wg sync.WaitGroup
	others := make(map[string]seam.BackendMsgID)
	var mu sync.Mutex
	for i := range 10 {
		wg.Go(func() {
			c := fmt.Sprintf("around %d", i)
			id, err := rt.Post(ctxN(t, 30*time.Second), topic, "me", c, seam.PostOptions{})
			assert.NoError(t, err, c)
			mu.Lock()
			others[c] = id
			mu.Unlock()
		})
	}
	start := time.Now()
	_, err = rt.Post(ctxN(t, 30*time.Second), topic, "me", ampHeavy(), seam.PostOptions{})
	require.ErrorIs(t, err, seam.ErrPoisonMessage)
	t.Logf("failed after %s: %v", time.Since(start), err)
	wg.Wait()
	assert.Equal(t, int32(2), w.drops.Load(), "link drops: %v", w.reasons())

	id, err := rt.Post(ctxN(t, 15*time.Second), topic, "me", "after", seam.PostOptions{})
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, int32(2), w.drops.Load(), "no drop after the poison failed: %v", w.reasons())
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic})
	require.NoError(t, err)
	got := map[string]seam.BackendMsgID{}
	for _, m := range res.Messages {
		_, dup := got[m.Content]
		assert.False(t, dup, "%q twice in the archive", m.Content)
		got[m.Content] = m.BackendMsgID
	}
	others["after"] = id
	delete(got, "before")
	assert.Equal(t, others, got, "every other post once, the poison never")
}

// burst posts n messages at once, message i to topics[i%len(topics)], each with
// its own ctx, and returns each post's id or error by index.
func burst(rt *runtime.Runtime, topics []seam.Topic, n int, prefix string, d time.Duration) ([]seam.BackendMsgID, []error) {
	ids, errs := make([]seam.BackendMsgID, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			ids[i], errs[i] = rt.Post(ctx, topics[i%len(topics)], "me", body(prefix, i), seam.PostOptions{})
		})
	}
	wg.Wait()
	return ids, errs
}

// body is post i's content: 1 KiB, so the burst is 8 MiB, more than the
// socket buffers between the runtime and the server hold.
func body(prefix string, i int) string {
	s := fmt.Sprintf("%s %d ", prefix, i)
	return s + strings.Repeat("x", 1024-len(s))
}

// startTopics makes k fresh topics with one post each and returns them with
// the cursor of that first post.
func startTopics(t *testing.T, rt *runtime.Runtime, k int) ([]seam.Topic, []seam.Cursor) {
	topics, since := make([]seam.Topic, k), make([]seam.Cursor, k)
	for j := range topics {
		topics[j] = freshTopic()
		id, err := rt.Post(ctx5(t), topics[j], "me", "start", seam.PostOptions{})
		require.NoError(t, err)
		since[j] = seam.Cursor(id)
	}
	return topics, since
}

// key is a message's place: stanza-ids are unique per room only (ejabberd's are
// timestamps).
type key struct {
	topic seam.Topic
	id    seam.BackendMsgID
}

// watcher subscribes another account's runtime to every topic and collects what
// it receives.
type watcher struct {
	mu   sync.Mutex
	got  map[key]string
	dups []key
}

func watch(t *testing.T, s xmpptest.Server, topics []seam.Topic) *watcher {
	w := &watcher{got: map[key]string{}}
	rt := connected(t, newRuntime(t, s, 1, func(c *runtime.Config) { c.SubscriberBuffer = 10000 }))
	for _, topic := range topics {
		_, err := rt.Subscribe(ctxN(t, 15*time.Second), topic, func(m seam.Message) {
			w.mu.Lock()
			defer w.mu.Unlock()
			k := key{topic, m.BackendMsgID}
			if _, dup := w.got[k]; dup {
				w.dups = append(w.dups, k)
			}
			w.got[k] = m.Content
		})
		require.NoError(t, err)
	}
	return w
}

// checkResolved: every post resolved with an id of its own; another runtime
// subscribed to the rooms received each exactly once, with its content, and
// nothing else; and the first room's archive after since holds each of its
// posts exactly once, and nothing else.
func checkResolved(t *testing.T, rt *runtime.Runtime, w *watcher, topics []seam.Topic, since seam.Cursor, prefix string, ids []seam.BackendMsgID, errs []error) {
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
	want := map[key]string{}
	for i, id := range ids {
		require.NotEmpty(t, id, "post %d", i)
		k := key{topics[i%len(topics)], id}
		_, dup := want[k]
		require.False(t, dup, "two posts resolved with one id %s", id)
		want[k] = body(prefix, i)
	}
	require.Eventually(t, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.got) >= len(want) }, 30*time.Second, 10*time.Millisecond, "the subscriber received every post")
	time.Sleep(200 * time.Millisecond)
	w.mu.Lock()
	assert.Empty(t, w.dups, "received twice")
	assert.Equal(t, want, w.got)
	w.mu.Unlock()

	var archived []string
	cur := since
	for {
		res, err := rt.FetchRecent(ctxN(t, 30*time.Second), seam.FetchRecentArgs{Topic: topics[0], Since: &cur, Limit: 10000})
		require.NoError(t, err)
		if len(res.Messages) == 0 {
			break
		}
		for _, m := range res.Messages {
			require.Equal(t, want[key{topics[0], m.BackendMsgID}], m.Content, "the archive holds %s (%q) as no post resolved", m.BackendMsgID, m.Content)
			archived = append(archived, m.Content)
		}
		cur = res.NextCursor
	}
	var posted []string
	for k, c := range want {
		if k.topic == topics[0] {
			posted = append(posted, c)
		}
	}
	assert.ElementsMatch(t, posted, archived, "the archive holds each post of the room once")
}

// 8,000 concurrent posts through one runtime, over 40 rooms (200 each: ejabberd's
// mnesia archive slows down as one room's archive grows, see
// docs/performance.md): no link drop, and every post resolves exactly once,
// with the id the archive holds once. Before the post window, the burst
// overflowed the link's 4,096-stanza send queue and the runtime dropped its
// own link.
func TestBurstOf8000PostsKeepsTheLink(t *testing.T) {
	s := xmpptest.Require(t)
	var w linkWatch
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) { c.OnStateChange = w.on }))
	topics, since := startTopics(t, rt, 40)
	w2 := watch(t, s, topics)
	start := time.Now()
	ids, errs := burst(rt, topics, 8000, "burst", 90*time.Second)
	t.Logf("8000 posts resolved in %s", time.Since(start))
	assert.Zero(t, w.drops.Load(), "link drops: %v", w.reasons())
	checkResolved(t, rt, w2, topics, since[0], "burst", ids, errs)
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
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.Service = "xmpp://" + proxy.Addr()
		c.DialTimeout = time.Second
		c.ReconnectWait, c.MaxReconnectWait = 50*time.Millisecond, 300*time.Millisecond
		c.OnStateChange = w.on
	}))
	topics, since := startTopics(t, rt, 20)
	w2 := watch(t, s, topics)

	require.NoError(t, proxy.Blackhole())
	require.NoError(t, proxy.KillAll())
	require.Eventually(t, func() bool { return rt.State() == runtime.Reconnecting }, 5*time.Second, 5*time.Millisecond)
	const n = 8000
	var ids []seam.BackendMsgID
	var errs []error
	done := make(chan struct{})
	go func() {
		defer close(done)
		ids, errs = burst(rt, topics, n, "backlog", 90*time.Second)
	}()
	time.Sleep(time.Second) // the posts pile up in the room meanwhile
	require.Equal(t, runtime.Reconnecting, rt.State())
	time.Sleep(1200 * time.Millisecond) // the blackholed login times out (DialTimeout) before the heal
	proxy.Heal()
	<-done
	assert.Equal(t, int32(1), w.drops.Load(), "the outage and nothing else: %v", w.reasons())
	checkResolved(t, rt, w2, topics, since[0], "backlog", ids, errs)
}

// A server that ends every stream right after the login: each such link counts
// as a failed attempt, so the backoff grows and MaxReconnects gives up, instead
// of logging in again at once forever.
func TestLinkLostRightAfterLoginIsAFailedAttempt(t *testing.T) {
	srv := xmpptest.NewScripted(t, "parley.local", func(st *xmpptest.Stream) {
		time.Sleep(50 * time.Millisecond)
		st.Send(`<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
	})
	closed := make(chan error, 1)
	rt, err := runtime.New(runtime.Config{Service: "xmpp://" + srv.Addr, Domain: "parley.local", MUCService: "muc.parley.local",
		MaxReconnects: 3, ReconnectWait: 20 * time.Millisecond,
		OnStateChange: func(sc runtime.StateChange) {
			if sc.To == runtime.Closed {
				closed <- sc.Err
			}
		}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Disconnect(context.Background()) })
	require.NoError(t, rt.Connect(ctx5(t)))
	select {
	case err := <-closed:
		assert.ErrorContains(t, err, "gave up reconnecting after 3 attempts")
	case <-time.After(10 * time.Second):
		t.Fatalf("still logging in again after %d logins", srv.Auths())
	}
	assert.Equal(t, 3, srv.Auths(), "logins")
}

// A stanza over MaxInboundStanzaBytes closes the link, with a reason that says
// so, and the runtime reconnects; the read in flight completes on the new link.
func TestHostileHugeStanzaClosesTheLinkAndReconnects(t *testing.T) {
	var conns atomic.Int32
	f := &fakeMUC{}
	f.onStream = func() { conns.Add(1) }
	f.onMAM = func(st *xmpptest.Stream, q mamQuery) {
		if conns.Load() == 1 {
			st.Send(`<message from='%s/bob' type='groupchat'><body>%s</body></message>`, hostileRoom, strings.Repeat("z", 2<<20))
			return
		}
		row(st, hostileRoom, q.queryID, "g1", "alice", "<body>on the new link</body>")
		fin(st, q, true, "g1", "g1")
	}
	var w linkWatch
	rt := hostileRuntime(t, f, func(c *runtime.Config) {
		c.MaxInboundStanzaBytes = 1 << 20
		c.OnStateChange = w.on
	})
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic})
	require.NoError(t, err)
	assert.Equal(t, []string{"on the new link"}, contents(res.Messages))
	require.Eventually(t, func() bool { return len(w.reasons()) > 0 }, 5*time.Second, 5*time.Millisecond)
	reasons := w.reasons()
	require.Len(t, reasons, 1)
	assert.ErrorIs(t, reasons[0], runtime.ErrInboundTooLarge)
}

// A busy link is not a dead one: while stanzas keep coming in, a keepalive
// ping whose answer is late (behind a long send queue, on a loaded server)
// doesn't drop the link; the same ping unanswered on a silent link does
// (TestKeepAliveFindsAHalfOpenLink).
func TestKeepAliveSparesALinkThatDelivers(t *testing.T) {
	f := &fakeMUC{}
	f.onIQ = func(st *xmpptest.Stream, iq xmpptest.Element) bool {
		return strings.Contains(iq.Inner, "urn:xmpp:ping") // never answered
	}
	stop := make(chan struct{})
	f.onStream = func() {
		go func() {
			st := f.stream()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
					st.Send(`<message type='groupchat' from='%s/bob' to='%s'><body>busy %d</body></message>`, hostileRoom, st.JID, i)
				}
			}
		}()
	}
	var w linkWatch
	hostileRuntime(t, f, func(c *runtime.Config) {
		c.KeepAlive, c.KeepAliveTimeout = 100*time.Millisecond, 200*time.Millisecond
		c.OnStateChange = w.on
	})
	time.Sleep(1500 * time.Millisecond) // several unanswered pings
	close(stop)
	assert.Zero(t, w.drops.Load(), "link drops: %v", w.reasons())
}

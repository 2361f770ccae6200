package memory_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/seam/conformance"
	"github.com/parley-go/parley-xmpp/seam/memory"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func connected(t testing.TB, s *memory.Store) seam.Backend {
	t.Helper()
	b := s.NewBackend()
	require.NoError(t, b.Connect(context.Background()))
	t.Cleanup(func() { require.NoError(t, b.Disconnect(context.Background())) })
	return b
}

func TestConformance(t *testing.T) {
	store := memory.NewStore()
	var topics atomic.Int64
	conformance.Run(t, conformance.Fixture{
		Backend:    connected(t, store),
		FreshTopic: func() seam.Topic { return seam.Topic(fmt.Sprintf("topic-%d", topics.Add(1))) },
		NewBackend: func(t testing.TB) seam.Backend { return connected(t, store) },
		Say: func(_ context.Context, topic seam.Topic, person string, m seam.Message) (seam.BackendMsgID, error) {
			return store.Say(topic, seam.Handle(person), m), nil
		},
		Capabilities: conformance.Capabilities{
			BlockingFetch:         true,
			CarriesSenderIdentity: true,
			AbsentTopic:           conformance.AbsentTopicEmptyPage,
		},
	})
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	b := memory.NewStore().NewBackend()
	calls := func() map[string]error {
		_, post := b.Post(ctx, "t", "me", "hi", seam.PostOptions{})
		_, fetch := b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: "t"})
		_, sub := b.Subscribe(ctx, "t", func(seam.Message) {})
		_, resolve := b.ResolveIdentity(ctx, "me")
		return map[string]error{"Post": post, "FetchRecent": fetch, "Subscribe": sub, "ResolveIdentity": resolve}
	}
	for name, err := range calls() {
		assert.ErrorIs(t, err, seam.ErrNotConnected, "%s before Connect", name)
	}
	require.NoError(t, b.Connect(ctx))
	require.NoError(t, b.Connect(ctx), "Connect twice")
	require.NoError(t, b.Disconnect(ctx))
	require.NoError(t, b.Disconnect(ctx), "Disconnect is idempotent")
	for name, err := range calls() {
		assert.ErrorIs(t, err, seam.ErrDisconnected, "%s after Disconnect", name)
	}
	assert.ErrorIs(t, b.Connect(ctx), seam.ErrDisconnected, "no reconnect after Disconnect")
}

func TestContentValidation(t *testing.T) {
	ctx := context.Background()
	b := connected(t, memory.NewStore())
	for _, c := range []struct {
		content string
		ok      bool
	}{
		{"", false},
		{"plain", true},
		{"tab\t newline\n cr\r", true},
		{"DEL \x7f is legal XML 1.0", true},
		{"replacement \uFFFD", true},
		{"astral \U0001F99C and \U0010FFFF", true},
		{"private use \uE000", true},
		{"nul \x00", false},
		{"bell \x07", false},
		{"escape \x1b", false},
		{"unit separator \x1f", false},
		{"U+FFFE \uFFFE", false},
		{"U+FFFF \uFFFF", false},
		{"lone surrogate \xed\xa0\x80", false},
		{"truncated \xe2\x82", false},
		{"stray continuation \x80", false},
	} {
		_, err := b.Post(ctx, "validation", "me", c.content, seam.PostOptions{})
		if c.ok {
			assert.NoError(t, err, "%q", c.content)
		} else {
			assert.ErrorIs(t, err, seam.ErrInvalidContent, "%q", c.content)
		}
	}
}

func TestInvalidTopic(t *testing.T) {
	ctx := context.Background()
	b := connected(t, memory.NewStore())
	_, err := b.Post(ctx, "", "me", "hi", seam.PostOptions{})
	assert.ErrorIs(t, err, seam.ErrInvalidTopic, "Post")
	_, err = b.FetchRecent(ctx, seam.FetchRecentArgs{})
	assert.ErrorIs(t, err, seam.ErrInvalidTopic, "FetchRecent")
	_, err = b.Subscribe(ctx, "", func(seam.Message) {})
	assert.ErrorIs(t, err, seam.ErrInvalidTopic, "Subscribe")
}

func TestCursors(t *testing.T) {
	ctx := context.Background()
	store := memory.NewStore()
	b := connected(t, store)
	fetch := func(b seam.Backend, topic seam.Topic, since seam.Cursor) (seam.FetchRecentResult, error) {
		return b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Since: &since})
	}

	empty, err := b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: "a"})
	require.NoError(t, err)
	_, err = b.Post(ctx, "a", "me", "one", seam.PostOptions{})
	require.NoError(t, err)
	page, err := b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: "a"})
	require.NoError(t, err)
	c := page.NextCursor

	_, err = strconv.Atoi(string(c))
	assert.Error(t, err, "a cursor is not a plain number callers could compare")
	r, err := fetch(b, "a", empty.NextCursor)
	require.NoError(t, err, "the empty topic's cursor stays valid once the topic has posts")
	assert.Len(t, r.Messages, 1)

	unknown := map[string]struct {
		topic  seam.Topic
		cursor seam.Cursor
		b      seam.Backend
	}{
		"never issued":     {"a", "no-such-cursor", b},
		"other topic":      {"b", c, b},
		"other store":      {"a", c, connected(t, memory.NewStore())},
		"not yet reached":  {"a", seam.Cursor(string(c[:2]) + "000009" + string(c[8:])), b},
		"non-canonical":    {"a", seam.Cursor(string(c[:2]) + "1" + string(c[8:])), b},
		"empty":            {"a", "", b},
		"negative":         {"a", seam.Cursor(string(c[:2]) + "-00001" + string(c[8:])), b},
		"cursor as prefix": {"a", c + "0", b},
	}
	for name, u := range unknown {
		r, err := fetch(u.b, u.topic, u.cursor)
		assert.ErrorIs(t, err, seam.ErrUnknownCursor, "%s: %q", name, u.cursor)
		assert.Empty(t, r.Messages, name)
	}
}

func TestDefaultLimit(t *testing.T) {
	ctx := context.Background()
	b := connected(t, memory.NewStore())
	for i := range memory.DefaultLimit + 10 {
		_, err := b.Post(ctx, "t", "me", strconv.Itoa(i), seam.PostOptions{})
		require.NoError(t, err)
	}
	for _, limit := range []int{0, -1} {
		r, err := b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: "t", Limit: limit})
		require.NoError(t, err)
		require.Len(t, r.Messages, memory.DefaultLimit, "limit %d", limit)
		assert.Equal(t, "10", r.Messages[0].Content, "the newest page")
	}
}

func TestMentionsAndSender(t *testing.T) {
	ctx := context.Background()
	b := connected(t, memory.NewStore())
	_, err := b.Post(ctx, "t", "", "ping @bob and @carol.", seam.PostOptions{})
	require.NoError(t, err)
	r, err := b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: "t"})
	require.NoError(t, err)
	assert.Equal(t, []seam.Handle{"bob", "carol"}, r.Messages[0].Mentions)
	assert.NotEmpty(t, r.Messages[0].SenderHandle, "an empty identity falls back to the connection's name")

	r.Messages[0].Mentions[0] = "mallory" // callers get copies
	again, err := b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: "t"})
	require.NoError(t, err)
	assert.Equal(t, []seam.Handle{"bob", "carol"}, again.Messages[0].Mentions)
}

// A handler that blocks must not block Post; once released it gets every message
// in order.
func TestSlowHandlerDoesNotBlockPost(t *testing.T) {
	ctx := context.Background()
	b := connected(t, memory.NewStore())
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	all := make(chan struct{})
	sub, err := b.Subscribe(ctx, "t", func(m seam.Message) {
		<-release
		mu.Lock()
		defer mu.Unlock()
		if got = append(got, m.Content); len(got) == 100 {
			close(all)
		}
	})
	require.NoError(t, err)
	defer sub.Close()

	var want []string
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		for i := range 100 {
			want = append(want, strconv.Itoa(i))
			_, _ = b.Post(ctx, "t", "me", want[i], seam.PostOptions{})
		}
	}()
	select {
	case <-posted:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("Post blocked behind a slow handler")
	}
	close(release)
	select {
	case <-all:
	case <-time.After(5 * time.Second):
		t.Fatal("not every message was delivered")
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, want, got)
}

// After Close returns no new handler call starts, even with messages queued; a
// handler may close its own subscription.
func TestCloseStopsDelivery(t *testing.T) {
	ctx := context.Background()
	b := connected(t, memory.NewStore())
	inHandler, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	sub, err := b.Subscribe(ctx, "t", func(seam.Message) {
		if calls.Add(1) == 1 {
			close(inHandler)
			<-release
		}
	})
	require.NoError(t, err)
	for range 3 {
		_, err := b.Post(ctx, "t", "me", "queued", seam.PostOptions{})
		require.NoError(t, err)
	}
	<-inHandler
	require.NoError(t, sub.Close())
	close(release)
	require.NoError(t, b.Disconnect(ctx)) // waits for the handler to return
	assert.Equal(t, int32(1), calls.Load(), "queued messages are dropped by Close")

	b2 := connected(t, memory.NewStore())
	done := make(chan struct{})
	var self seam.Subscription
	var ready sync.WaitGroup
	ready.Add(1)
	self, err = b2.Subscribe(ctx, "t", func(seam.Message) {
		ready.Wait()
		assert.NoError(t, self.Close(), "Close from inside the handler")
		close(done)
	})
	ready.Done()
	require.NoError(t, err)
	_, err = b2.Post(ctx, "t", "me", "close yourself", seam.PostOptions{})
	require.NoError(t, err)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a handler closing its own subscription deadlocked")
	}
}

// A blocked fetch ends with its context, and with Disconnect.
func TestBlockedFetchEnds(t *testing.T) {
	store := memory.NewStore()
	b := connected(t, store)
	r, err := b.FetchRecent(context.Background(), seam.FetchRecentArgs{Topic: "t"})
	require.NoError(t, err)
	k := r.NextCursor
	args := seam.FetchRecentArgs{Topic: "t", Since: &k, Block: time.Minute}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = b.FetchRecent(ctx, args)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	b2 := store.NewBackend()
	require.NoError(t, b2.Connect(context.Background()))
	errc := make(chan error, 1)
	go func() {
		_, err := b2.FetchRecent(context.Background(), args)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the fetch block; either order ends the same way
	require.NoError(t, b2.Disconnect(context.Background()))
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, seam.ErrDisconnected)
	case <-time.After(5 * time.Second):
		t.Fatal("Disconnect did not end a blocked fetch")
	}
}

// Disconnect leaves no goroutine of the backend behind.
func TestDisconnectLeavesNoGoroutine(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ctx := context.Background()
	b := memory.NewStore().NewBackend()
	require.NoError(t, b.Connect(ctx))
	for i := range 5 {
		_, err := b.Subscribe(ctx, seam.Topic(fmt.Sprintf("t%d", i)), func(seam.Message) {})
		require.NoError(t, err)
		_, err = b.Post(ctx, seam.Topic(fmt.Sprintf("t%d", i)), "me", "hi", seam.PostOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, b.Disconnect(ctx))
	goleak.VerifyNone(t, ignore)
}

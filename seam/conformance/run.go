package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

const (
	// opTimeout bounds every call, so a hung backend fails the test instead of
	// hanging it.
	opTimeout = 20 * time.Second
	// liveTimeout bounds the wait for a live delivery.
	liveTimeout = 10 * time.Second
	// identity is what the suite posts as.
	identity = seam.Handle("conformance")
)

// clause is one numbered clause of the contract.
type clause struct {
	name string // "NN_slug": the subtest name
	run  func(s *suite, t *testing.T)
}

// clauses are the clauses that apply to f, in contract order: the generic ones,
// and the XMPP ones when f has XMPP hooks.
func clauses(f Fixture) []clause {
	all := []clause{
		{"01_three_posts_in_order", clause01},
		{"02_same_content_distinct_ids", clause02},
		{"03_since_is_exclusive", clause03},
		{"04_paging_is_lossless", clause04},
		{"05_newest_page_oldest_first", clause05},
		{"06_since_at_tail_is_empty", clause06},
		{"07_absent_topic", clause07},
		{"08_topics_isolated", clause08},
		{"09_content_round_trips", clause09},
		{"10_in_reply_to", clause10},
		{"11_resolve_identity", clause11},
		{"12_distinct_senders", clause12},
		{"13_live_matches_fetch", clause13},
		{"14_subscribe_delivers_new_once", clause14},
		{"15_independent_client_delivered", clause15},
		{"16_topics_isolated_live", clause16},
		{"17_disconnect_twice_then_silent", clause17},
		{"18_block_returns_window", clause18},
		{"19_block_wakes_on_post", clause19},
		{"20_block_waits_budget", clause20},
		{"21_block_post_race", clause21},
		{"22_no_native_block_returns", clause22},
		{"23_reader_alongside_writers", clause23},
		{"24_concurrent_unique_and_since", clause24},
		{"28_unknown_cursor_is_error", clause28},
	}
	if f.Say != nil {
		all = append(all,
			clause{"31_relation_reply", clause31},
			clause{"32_relation_correction_by_sender_only", clause32},
			clause{"33_relation_retraction_by_sender_only", clause33},
			clause{"34_relation_reactions_full_set", clause34},
			clause{"35_relation_attachments", clause35},
			clause{"36_relation_unknown_target_is_plain", clause36},
		)
	}
	if f.XMPP != nil {
		all = append(all,
			clause{"25_xmpp_cold_room_creation", clause25},
			clause{"26_xmpp_pinned_nick_conflict", clause26},
			clause{"27_xmpp_no_archive", clause27},
			clause{"29_xmpp_forged_stanza_id", clause29},
		)
		slices.SortFunc(all, func(a, b clause) int { return strings.Compare(a.name, b.name) })
	}
	return all
}

// Run runs the conformance suite against the backend of f: one subtest per clause,
// named "NN_slug" after the clause number.
func Run(t *testing.T, f Fixture) {
	require.NotNil(t, f.Backend, "Fixture.Backend")
	require.NotNil(t, f.FreshTopic, "Fixture.FreshTopic")
	if f.Cleanup != nil {
		t.Cleanup(f.Cleanup)
	}
	if f.XMPP == nil {
		t.Log("clauses 25, 26, 27 and 29 (XMPP) not applicable: Fixture.XMPP is nil")
	}
	if f.Say == nil {
		t.Log("clauses 31-36 (relations) not applicable: Fixture.Say is nil")
	}
	s := &suite{f: f}
	for _, c := range clauses(f) {
		t.Run(c.name, func(t *testing.T) { c.run(s, t) })
	}
}

// suite carries the fixture into the clauses.
type suite struct{ f Fixture }

// opCtx is a context for one call: opTimeout plus the call's own budget.
func opCtx(t testing.TB, extra time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), opTimeout+extra)
	t.Cleanup(cancel)
	return c
}

// tag is a random token that makes contents and nicks unique to one run.
func tag() string { return fmt.Sprintf("%08x", rand.Uint32()) }

func (s *suite) topic() seam.Topic { return s.f.FreshTopic() }

// post posts content as the suite's identity and requires success.
func (s *suite) post(t testing.TB, b seam.Backend, topic seam.Topic, content string) seam.BackendMsgID {
	t.Helper()
	id, err := b.Post(opCtx(t, 0), topic, identity, content, seam.PostOptions{})
	require.NoError(t, err, "Post(%q, %q)", topic, content)
	require.NotEmpty(t, id, "Post(%q, %q) returned an empty id", topic, content)
	return id
}

// postAll posts contents in order through the fixture's backend.
func (s *suite) postAll(t testing.TB, topic seam.Topic, contents ...string) []seam.BackendMsgID {
	t.Helper()
	ids := make([]seam.BackendMsgID, len(contents))
	for i, c := range contents {
		ids[i] = s.post(t, s.f.Backend, topic, c)
	}
	return ids
}

// fetch calls FetchRecent on the fixture's backend and requires success.
func (s *suite) fetch(t testing.TB, args seam.FetchRecentArgs) seam.FetchRecentResult {
	t.Helper()
	return fetchOn(t, s.f.Backend, args)
}

func fetchOn(t testing.TB, b seam.Backend, args seam.FetchRecentArgs) seam.FetchRecentResult {
	t.Helper()
	r, err := b.FetchRecent(opCtx(t, args.Block), args)
	require.NoError(t, err, "FetchRecent(%s)", describe(args))
	return r
}

func describe(a seam.FetchRecentArgs) string {
	since := "nil"
	if a.Since != nil {
		since = fmt.Sprintf("%q", *a.Since)
	}
	return fmt.Sprintf("topic %q, since %s, limit %d, block %v", a.Topic, since, a.Limit, a.Block)
}

// tail posts content and returns the cursor just after it: the start of a walk
// that sees only what is posted next.
func (s *suite) tail(t testing.TB, topic seam.Topic, content string) seam.Cursor {
	t.Helper()
	id := s.post(t, s.f.Backend, topic, content)
	r := s.fetch(t, seam.FetchRecentArgs{Topic: topic, Limit: 1})
	require.Len(t, r.Messages, 1, "newest page of Limit 1")
	require.Equal(t, id, r.Messages[0].BackendMsgID, "newest message is the one just posted")
	return r.NextCursor
}

// fetchAllSince walks the topic from since to its end, page by page, checking that
// each page ends on its NextCursor.
func fetchAllSince(t testing.TB, b seam.Backend, topic seam.Topic, since seam.Cursor) []seam.Message {
	t.Helper()
	var out []seam.Message
	cur := since
	for {
		r := fetchOn(t, b, seam.FetchRecentArgs{Topic: topic, Since: &cur})
		if len(r.Messages) == 0 {
			require.Equal(t, cur, r.NextCursor, "an empty page keeps the cursor")
			return out
		}
		require.Equal(t, r.Messages[len(r.Messages)-1].Cursor, r.NextCursor, "NextCursor is the page's last message")
		require.NotEqual(t, cur, r.NextCursor, "a non-empty page advances the cursor")
		out = append(out, r.Messages...)
		require.LessOrEqual(t, len(out), 100_000, "walk from %q does not end", since)
		cur = r.NextCursor
	}
}

func contents(ms []seam.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Content
	}
	return out
}

func ids(ms []seam.Message) []seam.BackendMsgID {
	out := make([]seam.BackendMsgID, len(ms))
	for i, m := range ms {
		out[i] = m.BackendMsgID
	}
	return out
}

func cursors(ms []seam.Message) []seam.Cursor {
	out := make([]seam.Cursor, len(ms))
	for i, m := range ms {
		out[i] = m.Cursor
	}
	return out
}

// requireUnique fails when vals holds a value twice.
func requireUnique[T comparable](t testing.TB, vals []T, what string) {
	t.Helper()
	seen := make(map[T]int, len(vals))
	for i, v := range vals {
		if j, ok := seen[v]; ok {
			require.Failf(t, what+" not unique", "%v at positions %d and %d", v, j, i)
		}
		seen[v] = i
	}
}

// mentions treats nil and empty alike.
func mentions(hs []seam.Handle) []seam.Handle {
	if len(hs) == 0 {
		return nil
	}
	return hs
}

// requireWellFormed checks clause 1's "well formed" on one message.
func requireWellFormed(t testing.TB, topic seam.Topic, m seam.Message) {
	t.Helper()
	require.Equal(t, topic, m.Topic, "message %q: topic", m.Content)
	require.NotEmpty(t, m.BackendMsgID, "message %q: id", m.Content)
	require.NotEmpty(t, m.Cursor, "message %q: cursor", m.Content)
	require.NotEmpty(t, m.SenderHandle, "message %q: sender", m.Content)
	// Non-zero is not enough: the Unix epoch is no real time for a message either.
	require.True(t, m.Timestamp.Year() >= 2000, "message %q: timestamp %v is not a real time", m.Content, m.Timestamp)
	require.Equal(t, mentions(seam.ParseMentions(m.Content)), mentions(m.Mentions), "message %q: Mentions", m.Content)
}

// collector gathers what a Subscribe handler receives; the handler runs on the
// backend's goroutine, so everything goes through mu.
type collector struct {
	mu      sync.Mutex
	msgs    []seam.Message
	changed chan struct{} // closed and replaced on every message
}

func (c *collector) handle(m seam.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *collector) snapshot() []seam.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// waitFor waits until done holds for what was received, up to liveTimeout.
func (c *collector) waitFor(t testing.TB, what string, done func([]seam.Message) bool) []seam.Message {
	t.Helper()
	deadline := time.NewTimer(liveTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		msgs, changed := slices.Clone(c.msgs), c.changed
		c.mu.Unlock()
		if done(msgs) {
			return msgs
		}
		select {
		case <-changed:
		case <-deadline.C:
			require.FailNowf(t, "live delivery timed out", "waited %v for %s; received %q", liveTimeout, what, contents(msgs))
		}
	}
}

// waitContent waits for the message with the given content and returns it.
func (c *collector) waitContent(t testing.TB, content string) seam.Message {
	t.Helper()
	msgs := c.waitFor(t, fmt.Sprintf("%q", content), func(ms []seam.Message) bool {
		return slices.ContainsFunc(ms, func(m seam.Message) bool { return m.Content == content })
	})
	i := slices.IndexFunc(msgs, func(m seam.Message) bool { return m.Content == content })
	return msgs[i]
}

// subscribe subscribes b to topic and closes the subscription when the test ends.
func subscribe(t testing.TB, b seam.Backend, topic seam.Topic) *collector {
	t.Helper()
	c := &collector{changed: make(chan struct{})}
	sub, err := b.Subscribe(opCtx(t, 0), topic, c.handle)
	require.NoError(t, err, "Subscribe(%q)", topic)
	require.NotNil(t, sub, "Subscribe(%q) returned no subscription", topic)
	// Close's error is not checked: after Disconnect a backend may report one.
	t.Cleanup(func() { _ = sub.Close() })
	return c
}

// newBackend is f.NewBackend, disconnected when the test ends.
func (s *suite) newBackend(t testing.TB) seam.Backend {
	t.Helper()
	require.NotNil(t, s.f.NewBackend, "Fixture.NewBackend is nil")
	b := s.f.NewBackend(t)
	require.NotNil(t, b, "Fixture.NewBackend returned nil")
	t.Cleanup(func() { disconnect(b) })
	return b
}

// disconnect is for cleanups: the test is over, its errors no longer matter.
func disconnect(b seam.Backend) {
	c, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_ = b.Disconnect(c)
}

// independentPost writes content through a client other than the fixture's backend.
func (s *suite) independentPost(t testing.TB, topic seam.Topic, content string) {
	t.Helper()
	if s.f.IndependentPost != nil {
		require.NoError(t, s.f.IndependentPost(opCtx(t, 0), topic, content), "IndependentPost(%q)", content)
		return
	}
	s.post(t, s.newBackend(t), topic, content)
}

// fetchResult is what a FetchRecent started by startFetch returned, and when.
type fetchResult struct {
	r       seam.FetchRecentResult
	err     error
	elapsed time.Duration
}

// startFetch runs a FetchRecent on another goroutine. wait returns its result
// once it is in, at most limit after the start, and fails the test past that.
// However the test ends, the call is cancelled and waited for.
func startFetch(t testing.TB, b seam.Backend, args seam.FetchRecentArgs) (wait func(limit time.Duration) fetchResult, started time.Time) {
	c, cancel := context.WithTimeout(context.Background(), opTimeout+args.Block)
	done, finished := make(chan fetchResult, 1), make(chan struct{})
	started = time.Now()
	go func() {
		defer close(finished)
		r, err := b.FetchRecent(c, args)
		done <- fetchResult{r, err, time.Since(started)}
	}()
	t.Cleanup(func() { cancel(); <-finished })
	return func(limit time.Duration) fetchResult {
		t.Helper()
		select {
		case res := <-done:
			return res
		case <-time.After(time.Until(started.Add(limit))):
			require.FailNowf(t, "fetch did not return in time", "FetchRecent(%s) still running after %v", describe(args), limit)
			return fetchResult{}
		}
	}, started
}

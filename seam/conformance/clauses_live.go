package conformance

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

// Live path (Subscribe): clauses 13-17.

// 13. The same message has the identical id and cursor via Subscribe and via
// FetchRecent, and Mentions on both paths.
func clause13(s *suite, t *testing.T) {
	topic := s.topic()
	live := subscribe(t, s.f.Backend, topic)
	content := "hi @alice and @bob-x, @alice again #" + tag()
	id := s.post(t, s.f.Backend, topic, content)

	got := live.waitContent(t, content)
	r := s.fetch(t, seam.FetchRecentArgs{Topic: topic})
	require.Len(t, r.Messages, 1)
	fetched := r.Messages[0]

	require.Equal(t, id, fetched.BackendMsgID, "fetched id is the id Post returned")
	require.Equal(t, fetched.BackendMsgID, got.BackendMsgID, "id via Subscribe and via FetchRecent")
	require.Equal(t, fetched.Cursor, got.Cursor, "cursor via Subscribe and via FetchRecent")
	require.Equal(t, fetched.Content, got.Content)
	require.NotEmpty(t, seam.ParseMentions(content), "the content mentions someone")
	requireWellFormed(t, topic, got)     // includes Mentions on the live path
	requireWellFormed(t, topic, fetched) // and on the fetch path
}

// 14. Subscribe delivers exactly the messages posted after it returned, once each,
// in order, own posts included; older messages are not replayed.
func clause14(s *suite, t *testing.T) {
	topic := s.topic()
	s.postAll(t, topic, "old 1", "old 2")
	live := subscribe(t, s.f.Backend, topic)
	want := []string{"new 1", "new 2", "new 3"}
	posted := s.postAll(t, topic, want...)

	// Delivery is in order, so once the last one is in, anything replayed,
	// duplicated or reordered before it is in too.
	live.waitContent(t, want[len(want)-1])
	got := live.snapshot()
	require.Equal(t, want, contents(got), "exactly the posts made after Subscribe, once each, in order")
	require.Equal(t, posted, ids(got))
}

// 15. A message written by an independent client is delivered.
func clause15(s *suite, t *testing.T) {
	topic := s.topic()
	live := subscribe(t, s.f.Backend, topic)
	content := "from an independent client #" + tag()
	s.independentPost(t, topic, content)

	m := live.waitContent(t, content)
	requireWellFormed(t, topic, m)
}

// 16. Topics are isolated on the live path: a subscriber to A gets A's posts only.
func clause16(s *suite, t *testing.T) {
	a, b := s.topic(), s.topic()
	liveA, liveB := subscribe(t, s.f.Backend, a), subscribe(t, s.f.Backend, b)
	s.post(t, s.f.Backend, a, "A 1")
	s.post(t, s.f.Backend, b, "B 1")
	s.post(t, s.f.Backend, a, "A 2")
	s.post(t, s.f.Backend, b, "B 2")

	// Waiting for both last posts lets a leak of the first ones arrive first.
	liveA.waitContent(t, "A 2")
	liveB.waitContent(t, "B 2")
	require.Equal(t, []string{"A 1", "A 2"}, contents(liveA.snapshot()), "subscriber of A")
	require.Equal(t, []string{"B 1", "B 2"}, contents(liveB.snapshot()), "subscriber of B")
}

// 17. Disconnect may be called twice; afterwards Post fails and no handler fires,
// watched for 500 ms while the topic goes on.
func clause17(s *suite, t *testing.T) {
	const watch = 500 * time.Millisecond
	topic := s.topic()
	b := s.newBackend(t)
	control := subscribe(t, s.f.Backend, topic) // proves the later post is live
	gone := subscribe(t, b, topic)
	before := "before disconnect #" + tag()
	s.post(t, b, topic, before)
	gone.waitContent(t, before) // the subscription worked while connected
	control.waitContent(t, before)

	require.NoError(t, b.Disconnect(opCtx(t, 0)), "Disconnect")
	require.NoError(t, b.Disconnect(opCtx(t, 0)), "Disconnect again")
	watchFrom := time.Now()
	_, err := b.Post(opCtx(t, 0), topic, identity, "from a disconnected backend", seam.PostOptions{})
	require.ErrorIs(t, err, seam.ErrDisconnected, "Post after Disconnect")

	after := "after disconnect #" + tag()
	s.post(t, s.f.Backend, topic, after)
	control.waitContent(t, after)
	time.Sleep(time.Until(watchFrom.Add(watch))) // the clause's own watch window
	require.Equal(t, []string{before}, contents(gone.snapshot()), "no handler fires after Disconnect")

	r := s.fetch(t, seam.FetchRecentArgs{Topic: topic})
	require.Equal(t, []string{before, after}, contents(r.Messages), "the refused post was not sent")
}

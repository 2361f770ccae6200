package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

// Blocking fetch (Block): clauses 18-22. 18-21 hold a backend with native
// long-poll, 22 one without.

func needBlocking(s *suite, t *testing.T, want bool) {
	if s.f.Capabilities.BlockingFetch != want {
		t.Skipf("not applicable: Capabilities.BlockingFetch is %v", s.f.Capabilities.BlockingFetch)
	}
}

// 18. With no Since and a 12 s budget, the existing window comes back in under 8 s.
func clause18(s *suite, t *testing.T) {
	needBlocking(s, t, true)
	topic := s.topic()
	posted := s.postAll(t, topic, "w1", "w2")

	wait, _ := startFetch(t, s.f.Backend, seam.FetchRecentArgs{Topic: topic, Block: 12 * time.Second})
	res := wait(8 * time.Second)
	require.NoError(t, res.err)
	require.Equal(t, posted, ids(res.r.Messages), "the existing window, not a wait for new posts")
}

// 19. A fetch blocked at the tail wakes on a post made 50 ms in, well under 4 s,
// with exactly that post and an advanced cursor.
func clause19(s *suite, t *testing.T) {
	needBlocking(s, t, true)
	topic := s.topic()
	k := s.tail(t, topic, "seed")

	wait, started := startFetch(t, s.f.Backend, seam.FetchRecentArgs{Topic: topic, Since: &k, Block: 10 * time.Second})
	time.Sleep(time.Until(started.Add(50 * time.Millisecond))) // the clause's own offset
	id := s.post(t, s.f.Backend, topic, "wake up")
	res := wait(4 * time.Second)
	require.NoError(t, res.err)
	require.Less(t, res.elapsed, 4*time.Second, "woke well under 4 s")
	require.Equal(t, []string{"wake up"}, contents(res.r.Messages), "exactly the post")
	require.Equal(t, id, res.r.Messages[0].BackendMsgID)
	require.Equal(t, res.r.Messages[0].Cursor, res.r.NextCursor, "NextCursor is the post's cursor")
	require.NotEqual(t, k, res.r.NextCursor, "the cursor advanced")
}

// 20. With nothing new, a 300 ms budget really waits (at least 150 ms) and returns
// an empty page with the same cursor.
func clause20(s *suite, t *testing.T) {
	needBlocking(s, t, true)
	topic := s.topic()
	k := s.tail(t, topic, "seed")

	start := time.Now()
	r := s.fetch(t, seam.FetchRecentArgs{Topic: topic, Since: &k, Block: 300 * time.Millisecond})
	waited := time.Since(start)
	require.GreaterOrEqual(t, waited, 150*time.Millisecond, "a 300 ms budget really waits")
	require.Empty(t, contents(r.Messages))
	require.Equal(t, k, r.NextCursor, "the same cursor")
}

// 21. A post landing 0 to 3 ms after a blocking fetch starts is not missed.
func clause21(s *suite, t *testing.T) {
	needBlocking(s, t, true)
	topic := s.topic()
	k := s.tail(t, topic, "seed")

	for _, offset := range []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond} {
		content := fmt.Sprintf("posted %v after the fetch started", offset)
		since := k
		wait, started := startFetch(t, s.f.Backend, seam.FetchRecentArgs{Topic: topic, Since: &since, Block: 10 * time.Second})
		time.Sleep(time.Until(started.Add(offset)))
		id := s.post(t, s.f.Backend, topic, content)
		res := wait(4 * time.Second) // a missed post would wait for the 10 s budget
		require.NoError(t, res.err, "offset %v", offset)
		require.Equal(t, []string{content}, contents(res.r.Messages), "offset %v: the post is not missed", offset)
		require.Equal(t, id, res.r.Messages[0].BackendMsgID, "offset %v", offset)
		k = res.r.NextCursor
	}
}

// 22. A backend without native long-poll ignores the budget and returns within 1 s.
func clause22(s *suite, t *testing.T) {
	needBlocking(s, t, false)
	topic := s.topic()
	k := s.tail(t, topic, "seed")

	wait, _ := startFetch(t, s.f.Backend, seam.FetchRecentArgs{Topic: topic, Since: &k, Block: 5 * time.Second})
	res := wait(time.Second)
	require.NoError(t, res.err)
	require.Empty(t, contents(res.r.Messages), "nothing after the tail")
	require.Equal(t, k, res.r.NextCursor, "the same cursor")
}

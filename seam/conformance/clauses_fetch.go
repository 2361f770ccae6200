package conformance

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

// Catch-up (FetchRecent): clauses 1-8.

// 1. Three posts come back in order, with the ids Post returned, unique ids and
// cursors, NextCursor on the last one, and every message well formed.
func clause01(s *suite, t *testing.T) {
	topic := s.topic()
	want := []string{"a", "b @bob", "c"} // one carries a mention, so Mentions is checked
	posted := s.postAll(t, topic, want...)

	r := s.fetch(t, seam.FetchRecentArgs{Topic: topic})
	require.Equal(t, want, contents(r.Messages), "contents, oldest first")
	require.Equal(t, posted, ids(r.Messages), "ids read back equal the ids Post returned")
	requireUnique(t, ids(r.Messages), "ids")
	requireUnique(t, cursors(r.Messages), "cursors")
	require.Equal(t, r.Messages[2].Cursor, r.NextCursor, "NextCursor is the last message's cursor")
	for _, m := range r.Messages {
		requireWellFormed(t, topic, m)
	}
}

// 2. The same content posted twice gets two distinct ids and cursors.
func clause02(s *suite, t *testing.T) {
	topic := s.topic()
	posted := s.postAll(t, topic, "same", "same")
	require.NotEqual(t, posted[0], posted[1], "Post returned the same id twice")

	r := s.fetch(t, seam.FetchRecentArgs{Topic: topic})
	require.Equal(t, []string{"same", "same"}, contents(r.Messages))
	require.Equal(t, posted, ids(r.Messages), "ids read back equal the ids Post returned")
	requireUnique(t, ids(r.Messages), "ids")
	requireUnique(t, cursors(r.Messages), "cursors")
}

// 3. Since is exclusive: after a, b, fetching since their NextCursor returns
// exactly the later c, d, ending on d's cursor.
func clause03(s *suite, t *testing.T) {
	topic := s.topic()
	s.postAll(t, topic, "a", "b")
	k := s.fetch(t, seam.FetchRecentArgs{Topic: topic}).NextCursor
	posted := s.postAll(t, topic, "c", "d")

	r := s.fetch(t, seam.FetchRecentArgs{Topic: topic, Since: &k})
	require.Equal(t, []string{"c", "d"}, contents(r.Messages), "messages strictly after the cursor")
	require.Equal(t, posted, ids(r.Messages))
	require.Equal(t, r.Messages[1].Cursor, r.NextCursor, "NextCursor is d's cursor")
}

// 4. Over 7 messages, walking with Limit 1, 2, 3, 6 and 7 yields every message
// once, in order; no page holds more than Limit; each page's NextCursor is its own
// last message, not the end of the topic.
func clause04(s *suite, t *testing.T) {
	topic := s.topic()
	start := s.tail(t, topic, "before the seven") // the walk starts after it
	want := []string{"m1", "m2", "m3", "m4", "m5", "m6", "m7"}
	posted := s.postAll(t, topic, want...)

	for _, limit := range []int{1, 2, 3, 6, 7} {
		var got []seam.Message
		cur := start
		for page := 0; ; page++ {
			// A lossless walk of 7 needs ceil(7/limit) pages and one empty page.
			require.LessOrEqual(t, page, (7+limit-1)/limit, "limit %d: the walk does not end", limit)
			r := s.fetch(t, seam.FetchRecentArgs{Topic: topic, Since: &cur, Limit: limit})
			require.LessOrEqual(t, len(r.Messages), limit, "limit %d: page %d holds more than Limit", limit, page)
			if len(r.Messages) == 0 {
				require.Equal(t, cur, r.NextCursor, "limit %d: the final empty page keeps the cursor", limit)
				break
			}
			require.Equal(t, r.Messages[len(r.Messages)-1].Cursor, r.NextCursor,
				"limit %d: page %d's NextCursor must be its last message, not the topic's end", limit, page)
			got = append(got, r.Messages...)
			cur = r.NextCursor
		}
		require.Equal(t, want, contents(got), "limit %d: every message once, in order", limit)
		require.Equal(t, posted, ids(got), "limit %d: ids", limit)
	}
}

// 5. No Since with Limit 2 returns the newest two messages, oldest first.
func clause05(s *suite, t *testing.T) {
	topic := s.topic()
	posted := s.postAll(t, topic, "one", "two", "three")

	r := s.fetch(t, seam.FetchRecentArgs{Topic: topic, Limit: 2})
	require.Equal(t, []string{"two", "three"}, contents(r.Messages), "the newest two, oldest first")
	require.Equal(t, posted[1:], ids(r.Messages))
	require.Equal(t, r.Messages[1].Cursor, r.NextCursor, "NextCursor is the newest message's cursor")
}

// 6. Since at the tail returns no messages and the same cursor.
func clause06(s *suite, t *testing.T) {
	topic := s.topic()
	k := s.tail(t, topic, "only")

	r := s.fetch(t, seam.FetchRecentArgs{Topic: topic, Since: &k})
	require.Empty(t, contents(r.Messages), "nothing after the tail")
	require.Equal(t, k, r.NextCursor, "the tail cursor comes back unchanged")
}

// 7. A never-posted topic answers as the backend declares: an empty page whose
// cursor replays to the same empty page and later to the topic's first posts, or a
// *seam.NoSuchTopicError naming it. Either way reading does not create the topic.
func clause07(s *suite, t *testing.T) {
	topic := s.topic()
	switch s.f.Capabilities.AbsentTopic {
	case AbsentTopicEmptyPage:
		r, err := s.f.Backend.FetchRecent(opCtx(t, 0), seam.FetchRecentArgs{Topic: topic})
		require.NoError(t, err, "a never-posted topic is an empty page (Capabilities.AbsentTopic)")
		require.Empty(t, contents(r.Messages), "a never-posted topic has no messages")
		k := r.NextCursor

		again := s.fetch(t, seam.FetchRecentArgs{Topic: topic, Since: &k})
		require.Empty(t, contents(again.Messages), "replaying the empty page's cursor")
		require.Equal(t, k, again.NextCursor, "replaying the empty page's cursor returns it unchanged")

		fresh := s.fetch(t, seam.FetchRecentArgs{Topic: topic})
		require.Empty(t, contents(fresh.Messages), "reading must not create the topic")

		posted := s.postAll(t, topic, "first", "second")
		later := s.fetch(t, seam.FetchRecentArgs{Topic: topic, Since: &k})
		require.Equal(t, []string{"first", "second"}, contents(later.Messages), "the empty page's cursor replays to the first posts, oldest first")
		require.Equal(t, posted, ids(later.Messages))
	case AbsentTopicError:
		for _, when := range []string{"first read", "second read: reading must not create the topic"} {
			_, err := s.f.Backend.FetchRecent(opCtx(t, 0), seam.FetchRecentArgs{Topic: topic})
			var nst *seam.NoSuchTopicError
			require.True(t, errors.As(err, &nst), "%s: want *seam.NoSuchTopicError, got %v", when, err)
			require.Equal(t, topic, nst.Topic, "%s: the error names the topic", when)
		}
		posted := s.postAll(t, topic, "first")
		r := s.fetch(t, seam.FetchRecentArgs{Topic: topic})
		require.Equal(t, posted, ids(r.Messages), "once posted, the topic reads normally")
	default:
		require.Failf(t, "bad fixture", "unknown Capabilities.AbsentTopic %d", s.f.Capabilities.AbsentTopic)
	}
}

// 8. A post to A never appears in B.
func clause08(s *suite, t *testing.T) {
	a, b := s.topic(), s.topic()
	inB := s.postAll(t, b, "only in B")
	inA := s.postAll(t, a, "only in A")

	rb := s.fetch(t, seam.FetchRecentArgs{Topic: b})
	require.Equal(t, []string{"only in B"}, contents(rb.Messages), "topic B holds only its own post")
	require.Equal(t, inB, ids(rb.Messages))
	k := rb.NextCursor
	require.Empty(t, contents(s.fetch(t, seam.FetchRecentArgs{Topic: b, Since: &k}).Messages), "nothing after B's post")

	ra := s.fetch(t, seam.FetchRecentArgs{Topic: a})
	require.Equal(t, []string{"only in A"}, contents(ra.Messages), "topic A holds only its own post")
	require.Equal(t, inA, ids(ra.Messages))
}

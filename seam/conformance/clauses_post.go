package conformance

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

// Post: clauses 9-12.

// 9. Legal content round-trips exactly or is refused; content XML 1.0 forbids is
// refused with seam.ErrInvalidContent, nothing is sent, and the next post works.
// CR is exempt (XMPP turns it into LF), so it is not tried.
func clause09(s *suite, t *testing.T) {
	topic := s.topic()
	legal := []string{
		"line one\nline two",
		"  leading and trailing spaces  ",
		"a\ttab",
		"astral emoji \U0001F99C",
		"combining e\u0301 and n\u0303",
	}
	illegal := []struct{ name, content string }{
		{"NUL", "nul \x00 byte"},
		{"U+0001", "control \x01"},
		{"ESC", "escape \x1b[31m"},
		{"lone surrogate", "surrogate \xed\xa0\x80"}, // U+D800 in UTF-8 bytes: invalid UTF-8 in Go
		{"U+FFFE", "noncharacter \uFFFE"},
		{"U+FFFF", "noncharacter \uFFFF"},
	}

	var want []string // what the topic must hold: the accepted legal contents, then "after"
	for _, c := range legal {
		if _, err := s.f.Backend.Post(opCtx(t, 0), topic, identity, c, seam.PostOptions{}); err != nil {
			t.Logf("legal content %q refused (allowed): %v", c, err)
			continue
		}
		want = append(want, c)
	}
	for _, c := range illegal {
		_, err := s.f.Backend.Post(opCtx(t, 0), topic, identity, c.content, seam.PostOptions{})
		assert.ErrorIs(t, err, seam.ErrInvalidContent, "content with %s must be refused", c.name)
	}
	after := "after the refusals"
	afterID := s.post(t, s.f.Backend, topic, after) // the connection stays healthy
	want = append(want, after)

	got := s.fetch(t, seam.FetchRecentArgs{Topic: topic}).Messages // the default page (>= 50) holds them all
	require.Equal(t, want, contents(got), "legal content round-trips exactly; refused content is not sent")
	require.Equal(t, afterID, got[len(got)-1].BackendMsgID)
	for _, m := range got {
		requireWellFormed(t, topic, m)
	}
}

// 10. InReplyTo is accepted, and the reply is durable and in order.
func clause10(s *suite, t *testing.T) {
	topic := s.topic()
	parent := s.post(t, s.f.Backend, topic, "parent")
	reply, err := s.f.Backend.Post(opCtx(t, 0), topic, identity, "reply", seam.PostOptions{InReplyTo: parent})
	require.NoError(t, err, "Post with InReplyTo")

	r := s.fetch(t, seam.FetchRecentArgs{Topic: topic})
	require.Equal(t, []string{"parent", "reply"}, contents(r.Messages), "the reply is stored after its parent")
	require.Equal(t, []seam.BackendMsgID{parent, reply}, ids(r.Messages))
}

// 11. ResolveIdentity(h) answers for h.
func clause11(s *suite, t *testing.T) {
	h := seam.Handle("someone-" + tag())
	got, err := s.f.Backend.ResolveIdentity(opCtx(t, 0), h)
	require.NoError(t, err, "ResolveIdentity(%q)", h)
	require.Equal(t, h, got.Handle, "ResolveIdentity answers for the handle asked")
}

// 12. Two senders are not collapsed into one; a backend that does not carry sender
// identity reports one stable non-empty sender, and the ids still differ.
func clause12(s *suite, t *testing.T) {
	topic := s.topic()
	alice, bob := seam.Handle("alice-"+tag()), seam.Handle("bob-"+tag())
	for _, p := range []struct {
		who     seam.Handle
		content string
	}{{alice, "from alice"}, {bob, "from bob"}} {
		_, err := s.f.Backend.Post(opCtx(t, 0), topic, p.who, p.content, seam.PostOptions{})
		require.NoError(t, err, "Post as %q", p.who)
	}

	r := s.fetch(t, seam.FetchRecentArgs{Topic: topic})
	require.Equal(t, []string{"from alice", "from bob"}, contents(r.Messages))
	require.NotEqual(t, r.Messages[0].BackendMsgID, r.Messages[1].BackendMsgID, "ids differ")
	senders := []seam.Handle{r.Messages[0].SenderHandle, r.Messages[1].SenderHandle}
	if s.f.Capabilities.CarriesSenderIdentity {
		require.Equal(t, []seam.Handle{alice, bob}, senders, "the backend carries the identity given to Post")
		return
	}
	require.NotEmpty(t, senders[0], "sender")
	require.Equal(t, senders[0], senders[1], "a backend that does not carry identity has one stable sender")
}

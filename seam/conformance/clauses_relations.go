package conformance

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

// The relation clauses (31-36, issue 23): people in a topic (Fixture.Say)
// correct, retract, react to and answer each other's messages, and share
// files; the backend delivers each as what it is, the same live and from
// FetchRecent, and refuses (delivers as a plain message, never drops) a
// correction or retraction by someone else than the target's sender.

// Two people (Fixture.Say's person names).
const (
	alice = "alice"
	bob   = "bob"
)

// relTopic subscribes to a fresh topic for a relation clause.
func (s *suite) relTopic(t *testing.T) (seam.Topic, *collector) {
	t.Helper()
	topic := s.topic()
	return topic, subscribe(t, s.f.Backend, topic)
}

// say has person write m to topic, and returns the message as delivered
// live and as FetchRecent reads it back, after requiring the two agree (all
// but the timestamp, which may differ within a second).
func (s *suite) say(t *testing.T, topic seam.Topic, live *collector, person string, m seam.Message) seam.Message {
	t.Helper()
	id, err := s.f.Say(opCtx(t, 0), topic, person, m)
	require.NoError(t, err, "Say(%s, %+v)", person, m)
	require.NotEmpty(t, id)
	msgs := live.waitFor(t, fmt.Sprintf("message %s", id), func(ms []seam.Message) bool {
		return slices.ContainsFunc(ms, func(m seam.Message) bool { return m.BackendMsgID == id })
	})
	got := msgs[slices.IndexFunc(msgs, func(m seam.Message) bool { return m.BackendMsgID == id })]
	requireWellFormed(t, topic, got)
	var fetched []seam.Message
	deadline := time.Now().Add(liveTimeout)
	for {
		fetched = s.fetch(t, seam.FetchRecentArgs{Topic: topic}).Messages // the newest page: these clauses write a handful
		if slices.ContainsFunc(fetched, func(m seam.Message) bool { return m.BackendMsgID == id }) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	i := slices.IndexFunc(fetched, func(m seam.Message) bool { return m.BackendMsgID == id })
	require.GreaterOrEqual(t, i, 0, "FetchRecent holds %s", id)
	a, l := fetched[i], got
	a.Timestamp, l.Timestamp = time.Time{}, time.Time{}
	require.Equal(t, l, a, "live and FetchRecent agree on %s", id)
	return got
}

// 31. A reply names its parent (InReplyTo), live and from FetchRecent; its
// Content is its own text.
func clause31(s *suite, t *testing.T) {
	topic, live := s.relTopic(t)
	parent := s.say(t, topic, live, alice, seam.Message{Content: "a question"})
	reply := s.say(t, topic, live, bob, seam.Message{Content: "an answer", InReplyTo: parent.BackendMsgID})
	require.Equal(t, parent.BackendMsgID, reply.InReplyTo)
	require.Equal(t, "an answer", reply.Content)
	require.False(t, reply.IsRelation(), "a reply is a new message")
	requirePlain(t, parent)
}

// 32. A correction names the message it replaces, by its sender only: the
// same correction by someone else is a plain message.
func clause32(s *suite, t *testing.T) {
	topic, live := s.relTopic(t)
	orig := s.say(t, topic, live, alice, seam.Message{Content: "teh original"})
	fix := s.say(t, topic, live, alice, seam.Message{Content: "the original", Replaces: orig.BackendMsgID})
	require.Equal(t, orig.BackendMsgID, fix.Replaces)
	require.Equal(t, "the original", fix.Content)
	forged := s.say(t, topic, live, bob, seam.Message{Content: "bob's version", Replaces: orig.BackendMsgID})
	require.Empty(t, forged.Replaces, "bob can't correct alice's message")
	require.Equal(t, "bob's version", forged.Content, "refused, delivered as a plain message")
}

// 33. A retraction names the message it withdraws, by its sender only, with
// an empty Content; someone else's is a plain message. The original stays in
// FetchRecent, and the retraction follows it.
func clause33(s *suite, t *testing.T) {
	topic, live := s.relTopic(t)
	orig := s.say(t, topic, live, alice, seam.Message{Content: "oops"})
	forged := s.say(t, topic, live, bob, seam.Message{Content: "bob tried to retract", Retracts: orig.BackendMsgID})
	require.Empty(t, forged.Retracts, "bob can't retract alice's message")
	ret := s.say(t, topic, live, alice, seam.Message{Retracts: orig.BackendMsgID, Content: "retracted"})
	require.Equal(t, orig.BackendMsgID, ret.Retracts)
	require.Empty(t, ret.Content, "a retraction's text is not a message")
	require.False(t, ret.Moderated)
	all := s.fetch(t, seam.FetchRecentArgs{Topic: topic})
	require.Equal(t, []seam.BackendMsgID{orig.BackendMsgID, forged.BackendMsgID, ret.BackendMsgID}, ids(all.Messages),
		"the original stays, the retraction follows it")
}

// 34. Reactions are the full set the sender now holds on the target; an
// empty set withdraws them. Anyone may react to anyone's message.
func clause34(s *suite, t *testing.T) {
	topic, live := s.relTopic(t)
	orig := s.say(t, topic, live, alice, seam.Message{Content: "nice weather"})
	r := s.say(t, topic, live, bob, seam.Message{ReactsTo: orig.BackendMsgID, Reactions: []string{"👍", "☀️"}})
	require.Equal(t, orig.BackendMsgID, r.ReactsTo)
	require.Equal(t, []string{"👍", "☀️"}, r.Reactions)
	require.Empty(t, r.Content)
	r = s.say(t, topic, live, bob, seam.Message{ReactsTo: orig.BackendMsgID})
	require.Equal(t, orig.BackendMsgID, r.ReactsTo)
	require.Empty(t, r.Reactions, "all withdrawn")
}

// 35. Attachments come back as shared.
func clause35(s *suite, t *testing.T) {
	topic, live := s.relTopic(t)
	url := "https://files.example/" + tag() + ".png"
	m := s.say(t, topic, live, alice, seam.Message{Content: url, Attachments: []seam.Attachment{{URL: url}}})
	require.Len(t, m.Attachments, 1)
	require.Equal(t, url, m.Attachments[0].URL)
	require.False(t, m.IsRelation())
}

// 36. A relation to a message the topic doesn't hold is not honoured: the
// message is delivered as a plain one, its text whole.
func clause36(s *suite, t *testing.T) {
	topic, live := s.relTopic(t)
	s.say(t, topic, live, alice, seam.Message{Content: "something"})
	// An id of another topic: never a target here.
	other := s.topic()
	elsewhere := s.post(t, s.f.Backend, other, "elsewhere")
	for _, m := range []seam.Message{
		{Content: "fix of nothing", Replaces: elsewhere},
		{Content: "answer to nothing", InReplyTo: elsewhere},
		{Content: "retraction of nothing", Retracts: elsewhere},
	} {
		got := s.say(t, topic, live, alice, m)
		requirePlain(t, got)
		require.Equal(t, m.Content, got.Content)
	}
}

// requirePlain: m carries no relation.
func requirePlain(t *testing.T, m seam.Message) {
	t.Helper()
	require.Empty(t, m.InReplyTo, "%q: InReplyTo", m.Content)
	require.Empty(t, m.Replaces, "%q: Replaces", m.Content)
	require.Empty(t, m.Retracts, "%q: Retracts", m.Content)
	require.Empty(t, m.ReactsTo, "%q: ReactsTo", m.Content)
	require.Empty(t, m.Reactions, "%q: Reactions", m.Content)
	require.False(t, m.Moderated, "%q: Moderated", m.Content)
}

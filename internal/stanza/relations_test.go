package stanza

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

const relRoom = "general@muc.parley.local"

func relMsg(t *testing.T, nick, children string) Message {
	t.Helper()
	from := relRoom
	if nick != "" {
		from += "/" + nick
	}
	return parsed(t, `<message xmlns='jabber:client' from='`+from+`' type='groupchat' id='m9'>`+children+
		`<stanza-id xmlns='urn:xmpp:sid:0' by='`+relRoom+`' id='s9'/></message>`).(Message)
}

// Every relation is read by its namespace; the same element in another
// namespace is nothing.
func TestParseRelations(t *testing.T) {
	r := relMsg(t, "alice", `<body>new</body><replace xmlns='urn:xmpp:message-correct:0' id='o1'/>`+
		`<occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ-a'/>`).Rel
	assert.Equal(t, "o1", r.Replace)
	assert.Equal(t, "occ-a", r.OccupantID)

	r = relMsg(t, "alice", `<body>&gt; bob: hi&#10;yes</body><reply xmlns='urn:xmpp:reply:0' to='`+relRoom+`/bob' id='s1'/>`+
		`<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='10'/></fallback>`).Rel
	assert.True(t, r.HasReply)
	assert.Equal(t, "s1", r.ReplyID)
	assert.Equal(t, []Fallback{{For: NSReply, Ranges: [][2]int{{0, 10}}}}, r.Fallbacks)

	r = relMsg(t, "alice", `<reactions xmlns='urn:xmpp:reactions:0' id='s1'><reaction>👍</reaction><reaction>👍</reaction><reaction> ❤ </reaction></reactions>`).Rel
	assert.Equal(t, "s1", r.ReactTo)
	assert.Equal(t, []string{"👍", "❤"}, r.Reactions)

	r = relMsg(t, "alice", `<body>fallback</body><fallback xmlns='urn:xmpp:fallback:0'/><apply-to xmlns='urn:xmpp:fasten:0' id='o1'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to>`).Rel
	assert.Equal(t, "o1", r.Retract, "XEP-0424 v0.3, as slixmpp 1.8.3 sends it")
	r = relMsg(t, "alice", `<retract xmlns='urn:xmpp:message-retract:1' id='s1'/>`).Rel
	assert.Equal(t, "s1", r.Retract, "XEP-0424 v0.4")

	r = relMsg(t, "", `<apply-to xmlns='urn:xmpp:fasten:0' id='s1'><moderated xmlns='urn:xmpp:message-moderate:0' by='`+relRoom+`/mod'><retract xmlns='urn:xmpp:message-retract:0'/><reason>spam</reason></moderated></apply-to>`).Rel
	assert.Equal(t, &Moderation{Target: "s1", By: relRoom + "/mod", Reason: "spam"}, r.Moderation)
	r = relMsg(t, "", `<retract xmlns='urn:xmpp:message-retract:1' id='s1'><moderated xmlns='urn:xmpp:message-moderate:1' by='`+relRoom+`/mod'/><reason>spam</reason></retract>`).Rel
	assert.Equal(t, &Moderation{Target: "s1", By: relRoom + "/mod", Reason: "spam"}, r.Moderation)
	assert.Empty(t, r.Retract)

	r = relMsg(t, "alice", `<body>https://x/y.png</body><x xmlns='jabber:x:oob'><url>https://x/y.png</url><desc>a cat</desc></x>`+
		`<file-sharing xmlns='urn:xmpp:sfs:0'><file xmlns='urn:xmpp:file:metadata:0'><name>z.pdf</name><media-type>application/pdf</media-type><size>42</size></file>`+
		`<sources><url-data xmlns='http://jabber.org/protocol/url-data' target='https://x/z.pdf'/></sources></file-sharing>`).Rel
	assert.Equal(t, []Attachment{{URL: "https://x/y.png", Desc: "a cat"}, {URL: "https://x/z.pdf", Name: "z.pdf", MediaType: "application/pdf", Size: 42}}, r.Attachments)

	r = relMsg(t, "alice", `<body>x</body><replace xmlns='urn:example' id='o1'/><reply id='s1'/><reactions xmlns='urn:xmpp:reactions:1' id='s1'/>`+
		`<retract xmlns='urn:xmpp:message-retract:0' id='s1'/><x xmlns='jabber:x:oob:2'><url>u</url></x>`).Rel
	assert.True(t, r.IsZero(), "elements of other namespaces are no relations: %+v", r)
	assert.True(t, relMsg(t, "alice", `<body>plain</body>`).Rel.IsZero())
}

// XEP-0428 ranges count code points, not bytes or UTF-16 units; a range out
// of the body, or unreadable, leaves the body whole.
func TestStripFallback(t *testing.T) {
	fb := func(ranges ...[2]int) []Fallback { return []Fallback{{For: NSReply, Ranges: ranges}} }
	body := "> 👍 émile: ça\nok 🎉"
	quote := len([]rune("> 👍 émile: ça\n"))
	assert.Equal(t, "ok 🎉", StripFallback(body, fb([2]int{0, quote}), NSReply))
	assert.Equal(t, body, StripFallback(body, fb([2]int{0, quote}), "urn:other"), "a fallback for a relation not honoured stays")
	assert.Equal(t, body, StripFallback(body, fb([2]int{0, 999}), NSReply))
	assert.Equal(t, body, StripFallback(body, fb([2]int{-1, -1}), NSReply))
	assert.Equal(t, body, StripFallback(body, fb([2]int{0, 5}, [2]int{3, 8}), NSReply))
	assert.Equal(t, "ab", StripFallback("aXbY", fb([2]int{3, 4}, [2]int{1, 2}), NSReply))
	assert.Equal(t, "", StripFallback(body, fb(), NSReply), "no range: the whole body")
}

// Apply maps every target through what the room has seen, honours a
// correction or retraction only from the target's sender and a moderation
// only from the room, and delivers whatever it can't honour as a plain
// message with its whole body.
func TestApply(t *testing.T) {
	seen := NewSeen(8)
	alice := Sender{Nick: "alice", OccupantID: "occ-a"}
	seen.Remember("s1", alice, "o1", "m1")
	seen.Remember("s2", Sender{Nick: "bob", OccupantID: "occ-b"}, "o2")
	apply := func(nick, occ, children string) (seam.Message, string) {
		m := relMsg(t, nick, children)
		m.Rel.OccupantID = occ
		return Apply(m.Seam("t", relRoom), m.Body, m.Rel, Sender{Nick: nick, OccupantID: occ}, seen)
	}
	m, un := apply("alice", "occ-a", `<body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/>`)
	assert.Equal(t, RelNone, un)
	assert.Equal(t, seam.BackendMsgID("s1"), m.Replaces)
	assert.Equal(t, "fixed", m.Content)

	m, un = apply("alice", "occ-x", `<body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='o1'/>`)
	assert.Equal(t, RelCorrection, un, "another occupant under alice's nick")
	assert.Empty(t, m.Replaces)
	assert.Equal(t, "fixed", m.Content)

	m, un = apply("mallory", "occ-m", `<body>gone</body><apply-to xmlns='urn:xmpp:fasten:0' id='o1'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to>`)
	assert.Equal(t, RelRetraction, un)
	assert.Equal(t, "gone", m.Content, "refused: a plain message, body whole")
	assert.Empty(t, m.Retracts)

	m, un = apply("alice", "occ-a", `<body>gone</body><fallback xmlns='urn:xmpp:fallback:0'/><apply-to xmlns='urn:xmpp:fasten:0' id='o1'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to>`)
	assert.Equal(t, RelNone, un)
	assert.Equal(t, seam.BackendMsgID("s1"), m.Retracts)
	assert.Equal(t, "", m.Content, "a retraction's fallback is not a message")

	m, un = apply("bob", "occ-b", `<reactions xmlns='urn:xmpp:reactions:0' id='s1'><reaction>👍</reaction></reactions>`)
	assert.Equal(t, RelNone, un)
	assert.Equal(t, seam.BackendMsgID("s1"), m.ReactsTo)
	assert.Equal(t, []string{"👍"}, m.Reactions)

	m, un = apply("bob", "occ-b", `<reactions xmlns='urn:xmpp:reactions:0' id='nope'><reaction>👍</reaction></reactions>`)
	assert.Equal(t, RelReactions, un)
	assert.Empty(t, m.ReactsTo)

	m, un = apply("bob", "occ-b", `<body>&gt; alice: hi&#10;@alice yes</body><reply xmlns='urn:xmpp:reply:0' to='`+relRoom+`/alice' id='s1'/>`+
		`<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='12'/></fallback>`)
	assert.Equal(t, RelNone, un)
	assert.Equal(t, seam.BackendMsgID("s1"), m.InReplyTo)
	assert.Equal(t, "@alice yes", m.Content)
	assert.Equal(t, []seam.Handle{"alice"}, m.Mentions)

	m, un = apply("bob", "occ-b", `<body>&gt; alice: hi&#10;yes</body><reply xmlns='urn:xmpp:reply:0' id='unknown'/>`+
		`<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='12'/></fallback>`)
	assert.Equal(t, RelReply, un)
	assert.Equal(t, "> alice: hi\nyes", m.Content, "a reply not honoured keeps its quote")

	m, un = apply("", "", `<apply-to xmlns='urn:xmpp:fasten:0' id='s2'><moderated xmlns='urn:xmpp:message-moderate:0' by='`+relRoom+`/mod'><retract xmlns='urn:xmpp:message-retract:0'/></moderated></apply-to>`)
	assert.Equal(t, RelNone, un)
	assert.Equal(t, seam.BackendMsgID("s2"), m.Retracts)
	assert.True(t, m.Moderated)
	_, un = apply("mod", "occ-m", `<apply-to xmlns='urn:xmpp:fasten:0' id='s2'><moderated xmlns='urn:xmpp:message-moderate:0' by='`+relRoom+`/mod'><retract xmlns='urn:xmpp:message-retract:0'/></moderated></apply-to>`)
	assert.Equal(t, RelModeration, un, "a moderation from an occupant is forged")

	m, un = apply("alice", "occ-a", `<body>https://x/y</body><x xmlns='jabber:x:oob'><url>https://x/y</url></x>`)
	assert.Equal(t, RelNone, un)
	assert.Equal(t, []seam.Attachment{{URL: "https://x/y"}}, m.Attachments)
	assert.Equal(t, "https://x/y", m.Content)

	m, un = apply("alice", "occ-a", `<body>plain</body>`)
	assert.Equal(t, RelNone, un)
	assert.Equal(t, relMsg(t, "alice", `<body>plain</body>`).Seam("t", relRoom).Content, m.Content)
}

// Sender.Same: occupant-id where both have it, then real JID, then nick.
func TestSenderSame(t *testing.T) {
	assert.True(t, Sender{Nick: "a", OccupantID: "1"}.Same(Sender{Nick: "b", OccupantID: "1"}))
	assert.False(t, Sender{Nick: "a", OccupantID: "1"}.Same(Sender{Nick: "a", OccupantID: "2"}))
	assert.False(t, Sender{Nick: "a", OccupantID: "1", JID: "x@y"}.Same(Sender{Nick: "a", OccupantID: "1", JID: "z@y"}))
	assert.True(t, Sender{Nick: "a", JID: "X@y"}.Same(Sender{Nick: "b", JID: "x@Y"}))
	assert.True(t, Sender{Nick: "a"}.Same(Sender{Nick: "a", OccupantID: "1"}))
	assert.False(t, Sender{Nick: "a"}.Same(Sender{Nick: "b"}))
	assert.False(t, Sender{}.Same(Sender{}))
}

// Seen forgets its oldest first, and an id two senders chose names neither.
func TestSeen(t *testing.T) {
	s := NewSeen(2)
	s.Remember("s1", Sender{Nick: "a"}, "o")
	s.Remember("s2", Sender{Nick: "b"}, "o")
	_, ok := s.Find("o", nil)
	assert.False(t, ok, "ambiguous")
	id, ok := s.Find("o", &Sender{Nick: "b"})
	require.True(t, ok)
	assert.Equal(t, seam.BackendMsgID("s2"), id)
	s.Remember("s3", Sender{Nick: "c"}, "p")
	_, ok = s.Find("s1", nil)
	assert.False(t, ok, "forgotten")
	id, ok = s.Find("o", nil)
	assert.True(t, ok, "s1 forgotten, s2 is the only one left")
	assert.Equal(t, seam.BackendMsgID("s2"), id)
	assert.Equal(t, 2, s.Len())
}

// A message learned as a possible target is found like one remembered, but
// its own relations count as not applied until Remember says so.
func TestSeenLearnAndKnows(t *testing.T) {
	s := NewSeen(4)
	s.Learn("s1", Sender{Nick: "a"}, "m1", "o1")
	assert.True(t, s.Knows("s1"))
	assert.True(t, s.Knows("o1"))
	assert.False(t, s.Knows("o2"))
	assert.False(t, s.Applied("s1"), "learned, not applied")
	id, ok := s.Find("m1", &Sender{Nick: "a"})
	require.True(t, ok)
	assert.Equal(t, seam.BackendMsgID("s1"), id)
	s.Remember("s1", Sender{Nick: "a"}, "m1", "o1")
	assert.True(t, s.Applied("s1"))
	s.Learn("s1", Sender{Nick: "a"})
	assert.True(t, s.Applied("s1"), "learning it again takes nothing back")
	assert.False(t, s.Applied("s9"))
}

// TargetIDs lists every id a message's relations name.
func TestTargetIDs(t *testing.T) {
	assert.Empty(t, Relations{Attachments: []Attachment{{URL: "u"}}}.TargetIDs())
	assert.Equal(t, []string{"a", "b"}, Relations{Replace: "a", ReplyID: "b", HasReply: true}.TargetIDs())
	assert.Equal(t, []string{"r"}, Relations{Retract: "r"}.TargetIDs())
	assert.Equal(t, []string{"x"}, Relations{ReactTo: "x", HasReactions: true}.TargetIDs())
	assert.Equal(t, []string{"m"}, Relations{Moderation: &Moderation{Target: "m"}}.TargetIDs())
}

package stanza

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parsed(t *testing.T, x string) any {
	t.Helper()
	e, err := ParseElement([]byte(x))
	require.NoError(t, err)
	v, _ := Parse(e)
	return v
}

// A message's fields come from their namespaces only: the first jabber:client
// body and subject, the room's own stanza-id among several, the origin-id;
// no <delay/> is read (a sender can add one); error conditions from the
// stanzas namespace, whatever order <text/> comes in.
func TestParseMessage(t *testing.T) {
	const room = "general@muc.parley.local"
	m := parsed(t, `<message xmlns='jabber:client' from='`+room+`/alice' to='me@parley.local/r' id='m1' type='groupchat'>`+
		`<body xmlns='urn:example:hidden'>hidden</body><body>shown</body><body>second</body>`+
		`<subject xmlns='urn:example:x'>no</subject>`+
		`<stanza-id xmlns='urn:xmpp:sid:0' by='mallory@parley.local' id='forged'/>`+
		`<stanza-id xmlns='urn:xmpp:sid:0' by='GENERAL@muc.parley.local' id='real'/>`+
		`<origin-id xmlns='urn:xmpp:sid:0' id='o1'/>`+
		`<delay xmlns='urn:xmpp:delay' from='`+room+`' stamp='2001-01-01T00:00:00Z'/></message>`).(Message)
	assert.Equal(t, "shown", m.Body)
	assert.True(t, m.HasBody)
	assert.False(t, m.HasSubject, "a subject in another namespace is no subject")
	assert.Equal(t, StanzaID{ID: "real", By: "GENERAL@muc.parley.local"}, m.StanzaID)
	assert.Len(t, m.StanzaIDs, 2)
	assert.Equal(t, "o1", m.OriginID)
	assert.Equal(t, "m1", m.ID)
	assert.Equal(t, "me@parley.local/r", m.To)

	none := parsed(t, `<message xmlns='jabber:client' from='`+room+`/alice' type='groupchat'><body>x</body><stanza-id xmlns='urn:xmpp:sid:0' by='someone@else' id='f'/></message>`).(Message)
	assert.Zero(t, none.StanzaID, "no id by the room: none")
	two := parsed(t, `<message xmlns='jabber:client' from='`+room+`/alice' type='groupchat'><body>x</body>`+
		`<stanza-id xmlns='urn:xmpp:sid:0' by='`+room+`' id='forged'/><stanza-id xmlns='urn:xmpp:sid:0' by='`+room+`' id='real'/></message>`).(Message)
	assert.Zero(t, two.StanzaID, "two ids by the room: which is the room's can't be told")

	e := parsed(t, `<message xmlns='jabber:client' from='`+room+`' id='p1' type='error'><error type='modify'>`+
		`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>too big</text><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`).(Message)
	require.NotNil(t, e.Error)
	assert.Equal(t, Error{Type: "modify", Condition: "not-acceptable", Text: "too big"}, *e.Error)
	bare := parsed(t, `<message xmlns='jabber:client' from='`+room+`' type='error'/>`).(Message)
	require.NotNil(t, bare.Error, "an error without its <error/> is still one")
}

// A presence's real JID is the one every muc#user item agrees on; an item
// without a jid (an anonymous room's) or a disagreeing one leaves none.
// Items in other namespaces are not the room's.
func TestParsePresenceRealJID(t *testing.T) {
	p := func(xs string) Presence {
		return parsed(t, `<presence xmlns='jabber:client' from='r@muc/n'>`+xs+`</presence>`).(Presence)
	}
	room := func(jid string) string {
		a := ""
		if jid != "" {
			a = ` jid='` + jid + `'`
		}
		return `<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant'` + a + `/><status code='110'/></x>`
	}
	assert.Equal(t, "alice@parley.local", p(room("alice@parley.local/res")).JID)
	assert.Equal(t, "", p(room("")).JID, "an anonymous room shows none")
	assert.Equal(t, "", p(`<x xmlns='http://jabber.org/protocol/muc#user'><item jid='boss@parley.local'/></x>`+room("")).JID)
	assert.Equal(t, "", p(room("alice@parley.local")+`<x xmlns='http://jabber.org/protocol/muc#user'><item jid='boss@parley.local'/></x>`).JID)
	assert.Equal(t, "", p(`<x xmlns='urn:example:forged'><item jid='boss@parley.local'/></x>`+room("")).JID)
	assert.Equal(t, "", p(`<x><item jid='boss@parley.local'/></x>`+room("")).JID)
	got := p(room(""))
	assert.Equal(t, "member", got.Affiliation)
	assert.Equal(t, []string{"110"}, got.StatusCodes)
}

// An IQ's payload is its first child other than <error/>, well-formed on its
// own; disco answers give their features and items.
func TestParseIQ(t *testing.T) {
	iq := parsed(t, `<iq xmlns='jabber:client' type='result' id='d' from='muc.parley.local'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text' xml:lang='en'/><feature var='urn:xmpp:mam:2'/><feature var='x'/></query></iq>`).(IQ)
	assert.Equal(t, []string{"urn:xmpp:mam:2", "x"}, iq.Features)
	assert.True(t, HasFeature(iq.Payload, "urn:xmpp:mam:2"))
	again, err := ParseElement(iq.Payload)
	require.NoError(t, err)
	assert.True(t, again.Is(NSDiscoInfo, "query"))
	assert.Equal(t, "en", again.Children[0].Lang())

	items := parsed(t, `<iq xmlns='jabber:client' type='result' id='i'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='a@muc'/><item jid='b@muc'/></query></iq>`).(IQ)
	assert.Equal(t, []string{"a@muc", "b@muc"}, items.Items)

	errIQ := parsed(t, `<iq xmlns='jabber:client' type='error' id='e'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error><query xmlns='urn:xmpp:mam:2'/></iq>`).(IQ)
	assert.Equal(t, "item-not-found", errIQ.Error.Condition)
	assert.Equal(t, NSMAM, errIQ.PayloadName.Space, "the payload is not the <error/>")

	v, kind := Parse(&Element{Name: xmlName("urn:xmpp:sm:3", "r")})
	assert.Nil(t, v)
	assert.Equal(t, "element:r", kind)
}

// A stanza over the tree limits is read to its end and refused; the decoder
// is then ready for the next element.
func TestReadElementLimits(t *testing.T) {
	deep := strings.Repeat("<a>", MaxDepth+2) + strings.Repeat("</a>", MaxDepth+2)
	wide := "<a>" + strings.Repeat("<b/>", MaxElements) + "</a>"
	for name, x := range map[string]string{"deep": deep, "wide": wide} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseElement([]byte(x))
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrTooDeep) || errors.Is(err, ErrTooManyElements), "%v", err)
		})
	}
	ok := strings.Repeat("<a>", MaxDepth) + strings.Repeat("</a>", MaxDepth)
	_, err := ParseElement([]byte(ok))
	assert.NoError(t, err, "at the limit")
}

func xmlName(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }

// Text around elements nested deeper than the reader's first guess of depth
// is kept, at every level (the per-level text buffers grow without losing
// or corrupting what they hold).
func TestReadElementTextAroundDeepNesting(t *testing.T) {
	const depth = 20
	var b strings.Builder
	for i := range depth {
		fmt.Fprintf(&b, "<e%d>before%d", i, i)
	}
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "after%d</e%d>", i, i)
	}
	e, err := ParseElement([]byte(b.String()))
	require.NoError(t, err)
	for i := range depth {
		assert.Equal(t, fmt.Sprintf("before%dafter%d", i, i), e.Text, "level %d", i)
		if i < depth-1 {
			e = e.Children[0]
		}
	}
}

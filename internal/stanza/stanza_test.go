package stanza

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wellFormed fails unless b parses as one XML element.
func wellFormed(t *testing.T, b []byte) {
	t.Helper()
	var v struct{ XMLName xml.Name }
	require.NoError(t, xml.Unmarshal(b, &v), string(b))
}

func TestJoinPresenceAsksForNoHistory(t *testing.T) {
	b := JoinPresence("room@muc.example", "n'ck<&>", "id1")
	wellFormed(t, b)
	var v struct {
		To string `xml:"to,attr"`
		X  struct {
			History struct {
				MaxStanzas string `xml:"maxstanzas,attr"`
			} `xml:"http://jabber.org/protocol/muc history"`
		} `xml:"http://jabber.org/protocol/muc x"`
	}
	require.NoError(t, xml.Unmarshal(b, &v))
	assert.Equal(t, "room@muc.example/n'ck<&>", v.To)
	assert.Equal(t, "0", v.X.History.MaxStanzas)
}

func TestGroupchatMessageRoundTripsBodyAndCarriesOriginID(t *testing.T) {
	body := "a\nb \t<tag> & 'q' \"dq\" 🎉 e\u0301 \r\n ]]> end"
	b := GroupchatMessage("room@muc", "orig-1", body, Reply{ID: "reply-to-7"})
	wellFormed(t, b)
	var v struct {
		Type   string `xml:"type,attr"`
		ID     string `xml:"id,attr"`
		Body   string `xml:"body"`
		Origin struct {
			ID string `xml:"id,attr"`
		} `xml:"urn:xmpp:sid:0 origin-id"`
		Reply struct {
			ID string `xml:"id,attr"`
		} `xml:"urn:xmpp:reply:0 reply"`
	}
	require.NoError(t, xml.Unmarshal(b, &v))
	assert.Equal(t, "groupchat", v.Type)
	assert.Equal(t, body, v.Body)
	assert.Equal(t, "orig-1", v.ID)
	assert.Equal(t, "orig-1", v.Origin.ID)
	assert.Equal(t, "reply-to-7", v.Reply.ID)
	assert.NotContains(t, string(GroupchatMessage("r", "o", "x", Reply{})), "reply")
}

// A reply to a message the room has seen carries its sender's occupant JID
// and a quote marked as XEP-0428 fallback, in code points; the runtime's own
// reader strips it again.
func TestGroupchatReplyCarriesToAndFallbackQuote(t *testing.T) {
	quote := ReplyQuote("émile 🎉", "first line\nsecond 👍")
	assert.Equal(t, "> émile 🎉: first line\n> second 👍\n", quote)
	b := GroupchatMessage("room@muc", "o1", "the answer", Reply{ID: "s1", To: "room@muc/émile 🎉", Quote: quote})
	wellFormed(t, b)
	e, err := ParseElement(b)
	require.NoError(t, err)
	e.Name.Space = NSClient
	e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: "from"}, Value: "room@muc/bridge"})
	for _, c := range e.Children {
		if c.Name.Space == "" {
			c.Name.Space = NSClient
		}
	}
	m := ParseMessage(e)
	assert.Equal(t, quote+"the answer", m.Body)
	assert.Equal(t, "room@muc/émile 🎉", m.Rel.ReplyTo)
	assert.Equal(t, "s1", m.Rel.ReplyID)
	assert.Equal(t, "the answer", StripFallback(m.Body, m.Rel.Fallbacks, NSReply))
	long := ReplyQuote("n", strings.Repeat("é", MaxQuoteRunes+5))
	assert.Equal(t, "> n: "+strings.Repeat("é", MaxQuoteRunes)+"…\n", long)
	assert.NotContains(t, string(GroupchatMessage("r", "o", "x", Reply{ID: "s1"})), "fallback", "no quote, no fallback")
}

// Quotes, apostrophes and line feeds stay one byte each in a body (xml.EscapeText
// makes them five): a post of them doesn't outgrow the server's stanza limit.
func TestGroupchatMessageBodyStaysItsSize(t *testing.T) {
	body := strings.Repeat("\"'\n\t", 4096)
	b := GroupchatMessage("room@muc", "orig-1", body, Reply{})
	assert.Less(t, len(b), len(body)+200)
	var v struct {
		Body string `xml:"body"`
	}
	require.NoError(t, xml.Unmarshal(b, &v))
	assert.Equal(t, body, v.Body)
	// What XML can't carry raw still can't make it through unescaped.
	assert.Contains(t, string(GroupchatMessage("r", "o", "a\x00b", Reply{})), "\uFFFD")
}

func TestMAMQueryPaging(t *testing.T) {
	for name, tc := range map[string]struct {
		p    Page
		want string
		not  []string
	}{
		"after":  {Page{Max: 7, After: "a<1>"}, "<after>a&lt;1&gt;</after>", []string{"<before"}},
		"before": {Page{Max: 7, Before: "b1"}, "<before>b1</before>", []string{"<after"}},
		"last":   {Page{Max: 7, Last: true}, "<before/>", []string{"<after"}},
		"first":  {Page{Max: 7}, "<max>7</max>", []string{"<after", "<before"}},
	} {
		t.Run(name, func(t *testing.T) {
			b := MAMQueryIQ("room@muc", "iq1", "q1", tc.p)
			wellFormed(t, b)
			s := string(b)
			assert.Contains(t, s, tc.want)
			assert.Contains(t, s, `queryid="q1"`)
			assert.Contains(t, s, `<max>7</max>`)
			for _, n := range tc.not {
				assert.NotContains(t, s, n)
			}
		})
	}
}

func TestParseFin(t *testing.T) {
	// What go-xmpp hands over: its re-serialisation repeats the xmlns attribute.
	payload := `<fin xmlns="urn:xmpp:mam:2" xmlns="urn:xmpp:mam:2" complete="true"><set xmlns='http://jabber.org/protocol/rsm'><first index='0'>A</first><last>B</last><count>12</count></set></fin>`
	f, err := ParseFin([]byte(payload))
	require.NoError(t, err)
	assert.Equal(t, Fin{Complete: true, First: "A", Last: "B", Count: 12}, f)

	f, err = ParseFin([]byte(`<fin xmlns="urn:xmpp:mam:2"><set xmlns="http://jabber.org/protocol/rsm"/></fin>`))
	require.NoError(t, err)
	assert.Equal(t, Fin{Count: -1}, f)

	_, err = ParseFin([]byte(`<query xmlns="urn:xmpp:mam:2"/>`))
	assert.ErrorContains(t, err, "not <fin/>")
	_, err = ParseFin([]byte(`<fin xmlns="urn:xmpp:mam:1"/>`))
	assert.Error(t, err, "a fin of another namespace is not ours")
	_, err = ParseFin([]byte(`<fin`))
	assert.Error(t, err)
}

func TestParseForwarded(t *testing.T) {
	inner := `<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-11-21T05:30:12.123456Z'/>` +
		`<message xmlns='jabber:client' type='groupchat' from='room@muc/alice'><body>hi &amp; bye</body>` +
		`<origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message></forwarded>`
	f, err := ParseForwarded(inner)
	require.NoError(t, err)
	assert.Equal(t, "room@muc/alice", f.From)
	assert.Equal(t, "hi & bye", f.Body)
	assert.True(t, f.HasBody)
	assert.Equal(t, "o1", f.OriginID)
	assert.Equal(t, time.Date(2026, 11, 21, 5, 30, 12, 123456000, time.UTC), f.Stamp)

	f, err = ParseForwarded(`<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='r@m/x'><active xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded>`)
	require.NoError(t, err)
	assert.False(t, f.HasBody, "a bodyless row is not a message")

	_, err = ParseForwarded(`<forwarded xmlns='urn:xmpp:forward:0'/>`)
	assert.ErrorContains(t, err, "without a <message/>")
	_, err = ParseForwarded(`<other/>`)
	assert.Error(t, err)
	_, err = ParseForwarded(`<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='yesterday'/><message xmlns='jabber:client'/></forwarded>`)
	assert.ErrorContains(t, err, "bad timestamp")
}

func TestParseError(t *testing.T) {
	e := ParseError("cancel", `<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text>`)
	assert.Equal(t, &Error{Type: "cancel", Condition: "item-not-found", Text: "gone"}, e)
	assert.Equal(t, "cancel/item-not-found: gone", e.Error())
	assert.Equal(t, "undefined-condition", ParseError("", "").Error())
}

func TestCheckText(t *testing.T) {
	for _, ok := range []string{"", "plain", "tab\tnl\ncr\r", "🎉", "e\u0301", "\u007f\u0085", "\uFFFD", "\U0010FFFF"} {
		assert.NoError(t, CheckText(ok), "%q", ok)
	}
	for _, bad := range []string{"\x00", "a\x01b", "\x1b[0m", "\xed\xa0\x80", "\xff", "\uFFFE", "x\uFFFF"} {
		assert.Error(t, CheckText(bad), "%q", bad)
	}
}

func TestJIDHelpers(t *testing.T) {
	assert.Equal(t, "room@muc", Bare("room@muc/nick/with/slash"))
	assert.Equal(t, "nick/with/slash", Resource("room@muc/nick/with/slash"))
	assert.Equal(t, "", Resource("room@muc"))
	assert.True(t, SameBare("Room@MUC.example/a", "room@muc.example"))
	assert.False(t, SameBare("room@muc.example", "room2@muc.example"))
	assert.True(t, strings.HasPrefix(string(InstantRoomIQ("r@m", "i")), "<iq"))
}

// The sender's real JID, as Prosody (non-anonymous room: the sender's own
// forged <x/> kept beside the server's) and ejabberd (full JID) archive it.
func TestParseForwardedRealJIDs(t *testing.T) {
	prosody := `<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-12-01T16:07:08Z'/>` +
		`<message xml:lang='en' type='groupchat' id='Z' from='r@muc/bob' xmlns='jabber:client'><body>forged</body>` +
		`<origin-id xmlns='urn:xmpp:sid:0' id='k'/><x xmlns='http://jabber.org/protocol/muc#user'><item jid='parley@parley.local'/></x>` +
		`<occupant-id xmlns='urn:xmpp:occupant-id:0' id='Y9'/><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant' jid='parley2@parley.local'/></x></message></forwarded>`
	f, err := ParseForwarded(prosody)
	require.NoError(t, err)
	assert.Equal(t, []string{"parley@parley.local", "parley2@parley.local"}, f.RealJIDs)
	assert.Equal(t, "", SenderJID(f.RealJIDs), "disagreeing JIDs name nobody")

	ejabberd := `<forwarded xmlns='urn:xmpp:forward:0'><message xml:lang='en' from='r@muc/alice' type='groupchat' id='J' xmlns='jabber:client'>` +
		`<x xmlns='http://jabber.org/protocol/muc#user'><item jid='Parley@parley.local/rawclient-ZYY3MQKC'/></x>` +
		`<origin-id xmlns='urn:xmpp:sid:0' id='k'/><body>mine</body></message><delay from='muc.parley.local' stamp='2026-12-01T16:07:16.042597Z' xmlns='urn:xmpp:delay'/></forwarded>`
	f, err = ParseForwarded(ejabberd)
	require.NoError(t, err)
	assert.Equal(t, "Parley@parley.local", SenderJID(f.RealJIDs))
	assert.Equal(t, "", SenderJID(nil), "an anonymous room shows none")
	assert.Equal(t, "", SenderJID([]string{"a@b", ""}), "an empty jid names nobody")
	assert.Equal(t, "a@b", SenderJID([]string{"a@b/x", "A@B/y"}))
}

package xmppconn

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-go/parley-xmpp/internal/stanza"
)

// What a server (or, through it, a stranger or an occupant) sends after login,
// fuzzed through the path a connection reads it by: readOne, with package
// stanza's parser. Nothing may panic (a panic on the reader goroutine would
// end the process); the link survives every element of a well-formed stream:
// only a decoder error (the input is not well-formed XML), the end of the
// input, a stream error or </stream:stream> end it; every error stanza carries
// an error; payloads handed on are well-formed XML; what a message says
// survives a round trip through XML built from it; and every write made while
// reading (the answers to pings, version and disco requests) is captured and
// checked: one well-formed IQ result per request answered, to its sender,
// with its id.
//
// Seeds in testdata/fuzz/<target> are stanzas captured from the dev servers
// (Prosody 0.12, ejabberd 23.01) while posting, fetching and joining, plus
// hostile shapes no server sends; each target starts from its kind. The
// captured-<server>-<step> seeds are what a client receives when others send
// it things (pubsub events as private messages and headlines, IQ gets from an
// occupant, error messages and the rooms' bounces and kicks, presences with
// payloads from other namespaces, MAM results, reflections, a stream error),
// byte for byte, and captured-<server>-session the whole stream after bind;
// TestCaptureSeeds (capture_seeds_test.go) records them over a plain socket
// and rewrites them, here and in internal/stanza's testdata, with the dev
// servers running (scripts/devserver.sh start):
//
//	PARLEY_CAPTURE_SEEDS=1 go test -count=1 -run '^TestCaptureSeeds$' -v ./internal/xmppconn/

// streamHeader is what the decoder has consumed by the time login ends.
const streamHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='parley.local' id='x' version='1.0'>`

// readerConn is a connection whose stream is body (after the header), read by
// the same readOne as a logged-in one; its writer doesn't run, so what it
// queues (its answers) stays in c.out for the test to check.
func readerConn(t testing.TB, body []byte) *Conn {
	d := xml.NewDecoder(io.MultiReader(strings.NewReader(streamHeader), bytes.NewReader(body)))
	for { // past the stream header, as login leaves it
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("stream header: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	in := newInboundLimit(0)
	in.loggedIn()
	c := &Conn{limit: DefaultMaxStanzaBytes, out: make(chan outStanza, 1<<16), stop: make(chan struct{})}
	c.sm.init(Options{})
	c.t.Store(&transport{dec: d, in: in})
	return c
}

// read is what a stream yielded: the stanzas handed on, the kinds skipped, the
// answers written, and the error that ended it.
type read struct {
	out     []any
	skipped []string
	written [][]byte
	end     error
}

// readAll reads body as readLoop does, until the error that ends the stream.
func readAll(t testing.TB, body []byte) read {
	c := readerConn(t, body)
	var r read
	for range 100000 {
		v, skip, _, err := c.readOne()
		switch {
		case err != nil:
			r.end = err
			for len(c.out) > 0 {
				r.written = append(r.written, (<-c.out).b)
			}
			return r
		case v != nil:
			r.out = append(r.out, v)
		case skip != "":
			r.skipped = append(r.skipped, skip)
		}
	}
	t.Fatal("no end after 100000 reads")
	return r
}

// linkEnding reports whether err may end the link for this input: the input
// ran out or is not well-formed (the decoder's errors), or the server ended
// the stream.
func linkEnding(err error) bool {
	var syntax *xml.SyntaxError
	return errors.Is(err, io.EOF) || errors.As(err, &syntax) ||
		strings.HasPrefix(err.Error(), "stream error") || err.Error() == "server closed stream"
}

func xmlText(s string) bool {
	return stanza.CheckText(s) == nil && !strings.ContainsAny(s, "\r\n\t")
}

func xesc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// checkStream holds the invariants every target checks.
func checkStream(t *testing.T, body []byte) {
	r := readAll(t, body)
	out, end := r.out, r.end
	if end == nil {
		t.Fatal("the stream ended without an error")
	}
	if !linkEnding(end) {
		t.Fatalf("the link ended on something other than the stream: %v", end)
	}
	checkWritten(t, r.written)
	for _, v := range out {
		switch s := v.(type) {
		case stanza.Message:
			if s.Type == "error" && s.Error == nil {
				t.Fatalf("an error message without its error: %+v", s)
			}
			if s.Error != nil && s.Error.Condition == "text" {
				t.Fatalf("<text/> taken for the condition: %+v", s.Error)
			}
			if s.MAM != nil && s.MAM.Archive != s.From {
				t.Fatalf("a MAM result from %q filed under %q", s.From, s.MAM.Archive)
			}
			if s.MAM == nil {
				checkMessageRoundTrip(t, s)
			}
		case stanza.Presence:
			if s.Type == "error" && s.Error == nil {
				t.Fatalf("an error presence without its error: %+v", s)
			}
		case stanza.IQ:
			if s.Type == "error" && s.Error == nil {
				t.Fatalf("an error IQ without its error: %+v", s)
			}
			if s.Error != nil && s.Error.Condition == "text" {
				t.Fatalf("<text/> taken for the condition: %+v", s.Error)
			}
			if len(s.Payload) > 0 {
				var any struct{}
				if err := xml.Unmarshal(s.Payload, &any); err != nil {
					t.Fatalf("payload handed on is not XML (%v): %q", err, s.Payload)
				}
			}
		default:
			t.Fatalf("readOne returned %T", v)
		}
	}
	// A stream error read as the first element ends the stream as one.
	var syntax *xml.SyntaxError
	first := bytes.TrimLeft(body, " \t\r\n")
	if len(out) == 0 && (bytes.HasPrefix(first, []byte("<stream:error>")) || bytes.HasPrefix(first, []byte("<stream:error "))) &&
		!errors.As(end, &syntax) && !errors.Is(end, io.EOF) && !strings.HasPrefix(end.Error(), "stream error") {
		t.Fatalf("a stream error read as %v", end)
	}
}

// checkWritten: every write made while reading is an IQ result or error that
// reads back with our own parser.
func checkWritten(t *testing.T, written [][]byte) {
	for _, w := range written {
		e, err := stanza.ParseElement([]byte("<r xmlns='jabber:client'>" + string(w) + "</r>"))
		if err != nil || len(e.Children) != 1 {
			t.Fatalf("written while reading, not one element (%v): %q", err, w)
		}
		iq, ok := e.Children[0], true
		if !iq.Is(stanza.NSClient, "iq") || (iq.Attribute("type") != "result" && iq.Attribute("type") != "error") {
			ok = false
		}
		if !ok {
			t.Fatalf("written while reading, not an IQ answer: %q", w)
		}
	}
}

// checkMessageRoundTrip: a message built from what was read reads the same.
func checkMessageRoundTrip(t *testing.T, m stanza.Message) {
	if m.Type == "error" || m.Type == "roster" {
		return
	}
	for _, s := range []string{m.From, m.Type, m.Body, m.Subject, m.OriginID, m.StanzaID.ID, m.StanzaID.By} {
		if !xmlText(s) {
			return
		}
	}
	var b strings.Builder
	b.WriteString(`<message from='` + xesc(m.From) + `' type='` + xesc(m.Type) + `'>`)
	if m.Body != "" {
		b.WriteString("<body>" + xesc(m.Body) + "</body>")
	}
	if m.Subject != "" {
		b.WriteString("<subject>" + xesc(m.Subject) + "</subject>")
	}
	if m.OriginID != "" {
		b.WriteString(`<origin-id xmlns='urn:xmpp:sid:0' id='` + xesc(m.OriginID) + `'/>`)
	}
	if m.StanzaID != (stanza.StanzaID{}) {
		b.WriteString(`<stanza-id xmlns='urn:xmpp:sid:0' by='` + xesc(m.StanzaID.By) + `' id='` + xesc(m.StanzaID.ID) + `'/>`)
	}
	b.WriteString("</message>")
	out := readAll(t, []byte(b.String())).out
	if len(out) != 1 {
		t.Fatalf("round trip of %+v: %d stanzas from %s", m, len(out), b.String())
	}
	again, ok := out[0].(stanza.Message)
	if !ok {
		t.Fatalf("round trip of %+v: %+v", m, out[0])
	}
	if again.From != m.From || again.Type != m.Type || again.Body != m.Body || again.Subject != m.Subject ||
		again.OriginID != m.OriginID || again.StanzaID != m.StanzaID {
		t.Fatalf("round trip: %+v → %+v", m, again)
	}
}

func fuzzStream(f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkStream)
}

// FuzzReflection: a room's groupchat messages (a post's reflection).
func FuzzReflection(f *testing.F) {
	fuzzStream(f,
		`<message from='general@muc.parley.local/alice' type='groupchat' id='a'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='general@muc.parley.local' id='s1'/><stanza-id xmlns='urn:xmpp:sid:0' by='parley@parley.local' id='forged'/></message>`,
		`<message from='general@muc.parley.local/alice' type='error'><error type='cancel'><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>x</text></error></message>`,
		`<message from='general@muc.parley.local' type='error'/>`,
		`<message type='groupchat'><body>`+strings.Repeat("&lt;", 10)+`</body><delay xmlns='urn:xmpp:delay' stamp='2026-11-21T05:43:01Z'/></message>`,
	)
}

// FuzzPresence: occupant presences, join errors, removals.
func FuzzPresence(f *testing.F) {
	fuzzStream(f,
		`<presence from='general@muc.parley.local/nick' type='error'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`,
		`<presence from='general@muc.parley.local/nick' type='error'/>`,
		`<presence from='general@muc.parley.local/nick' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><status code='307'/><status code='110'/></x></presence>`,
	)
}

// FuzzMAMResult: the rows of a MAM query (<message><result><forwarded/>).
func FuzzMAMResult(f *testing.F) {
	fuzzStream(f,
		`<message from='general@muc.parley.local'><result xmlns='urn:xmpp:mam:2' queryid='q' id='r1'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='bad'/><message xmlns='jabber:client' type='groupchat'><body>x</body></message></forwarded></result></message>`,
		`<message from='general@muc.parley.local'><result xmlns='urn:xmpp:mam:2'/></message>`,
	)
}

// FuzzIQ: IQ answers: a MAM query's <fin/> (RSM), IQ errors, pings, and what
// go-xmpp has its own types for.
func FuzzIQ(f *testing.F) {
	fuzzStream(f,
		`<iq type='result' id='q1' from='room@muc'><fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><count>-1</count></set></fin></iq>`,
		`<iq type='error' id='q2' from='room@muc'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text></error></iq>`,
		`<iq type='error' id='q3'/>`,
		`<iq type='get' id='p' from='parley.local'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq type='get' id='v' from='x@y/z'><query xmlns='jabber:iq:version'/></iq>`,
		`<iq type='set' id='r'><query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>`,
	)
}

// FuzzDiscoInfo: disco#info and disco#items answers (go-xmpp decodes them).
func FuzzDiscoInfo(f *testing.F) {
	fuzzStream(f,
		`<iq type='result' id='d' from='muc.parley.local'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text'/><feature var='urn:xmpp:mam:2'/></query></iq>`,
		`<iq type='result' id='i' from='muc.parley.local'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='a@muc.parley.local'/></query></iq>`,
		`<iq type='error' id='d' from='nowhere'><query xmlns='http://jabber.org/protocol/disco#info'/><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
	)
}

// FuzzStreamError: <stream:error/> and the end of a stream.
func FuzzStreamError(f *testing.F) {
	fuzzStream(f,
		`<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`,
		`<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>stanza too big</text></stream:error></stream:stream>`,
		`<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>[2001:db8::1]:5222</see-other-host></stream:error>`,
		`<message><body>x</body></message></stream:stream>`,
		`<message><body>cut mid-sta`,
	)
}

// The harness itself reads what it is given: a reflection, a stream error.
func TestFuzzHarnessReads(t *testing.T) {
	r := readAll(t, []byte(`<message from='r@m/a' type='groupchat'><body>hi</body></message><stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`))
	out, end := r.out, r.end
	if len(out) != 1 || out[0].(stanza.Message).Body != "hi" {
		t.Fatalf("%+v", out)
	}
	if end == nil || !strings.HasPrefix(end.Error(), "stream error") {
		t.Fatalf("ended with %v", end)
	}
}

// FuzzLiveEqualsArchive feeds one message, as a room sends it live and as its
// archive returns it, through the reader, and requires the same seam message
// (all but the timestamp: live delivery has no server stamp of its own) and
// the same sender identity from both paths. children is what the sender put in
// the message; the room adds its stanza-id (live) or the archive wraps it.
func FuzzLiveEqualsArchive(f *testing.F) {
	for _, c := range []string{
		`<body>hi</body>`,
		`<body>shown</body><body xmlns='urn:example:hidden'>hidden</body>`,
		`<body xmlns='urn:example:hidden'>hidden</body><body>shown</body>`,
		`<body xml:lang='en'>one</body><body xml:lang='fr'>deux</body>`,
		`<body>x</body><delay xmlns='urn:xmpp:delay' stamp='2001-01-01T00:00:00Z' from='someone@else'/>`,
		`<body>x</body><delay xmlns='urn:xmpp:delay' stamp='2001-01-01T00:00:00Z' from='general@muc.parley.local'/>`,
		`<body>x</body><x xmlns='http://jabber.org/protocol/muc#user'><item jid='boss@parley.local'/></x>`,
		`<body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/><subject>s</subject>`,
		`<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>rich</body></html><body>plain</body>`,
		// Relations (issue 23), as slixmpp 1.8.3 and the XEPs shape them.
		`<body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='o-t'/><origin-id xmlns='urn:xmpp:sid:0' id='o2'/>`,
		`<body>&gt; alice: hi&#10;yes 👍</body><reply xmlns='urn:xmpp:reply:0' to='general@muc.parley.local/alice' id='s-t'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='12'/></fallback>`,
		`<reactions xmlns='urn:xmpp:reactions:0' id='s-t'><reaction>👍</reaction></reactions><store xmlns='urn:xmpp:hints'/>`,
		`<body>This person attempted to retract a previous message, but your client does not support it.</body><fallback xmlns='urn:xmpp:fallback:0'/><apply-to xmlns='urn:xmpp:fasten:0' id='o-t'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to>`,
		`<retract xmlns='urn:xmpp:message-retract:1' id='s-t'/><body>retracted</body><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/>`,
		`<body>https://x/y.png</body><x xmlns='jabber:x:oob'><url>https://x/y.png</url></x><occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ'/>`,
		`<file-sharing xmlns='urn:xmpp:sfs:0'><file xmlns='urn:xmpp:file:metadata:0'><name>z</name><size>3</size></file><sources><url-data xmlns='http://jabber.org/protocol/url-data' target='https://x/z'/></sources></file-sharing>`,
	} {
		f.Add(c, "alice")
	}
	const room, sid = "general@muc.parley.local", "s-1"
	f.Fuzz(func(t *testing.T, children, nick string) {
		if !xmlText(nick) || nick == "" || strings.ContainsAny(nick, "'&<") {
			return
		}
		from := room + "/" + nick
		live := readAll(t, []byte(`<message from='`+from+`' type='groupchat' id='m1'>`+children+
			`<stanza-id xmlns='urn:xmpp:sid:0' by='`+room+`' id='`+sid+`'/></message>`))
		archived := readAll(t, []byte(`<message from='`+room+`'><result xmlns='urn:xmpp:mam:2' queryid='q' id='`+sid+`'>`+
			`<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-12-07T10:00:00Z'/>`+
			`<message xmlns='jabber:client' from='`+from+`' type='groupchat' id='m1'>`+children+`</message></forwarded></result></message>`))
		if len(live.out) != 1 || len(archived.out) != 1 {
			return // children not well-formed: neither path has a message
		}
		lm, ok1 := live.out[0].(stanza.Message)
		am, ok2 := archived.out[0].(stanza.Message)
		if !ok1 || !ok2 || am.MAM == nil {
			t.Fatalf("live %T, archived %T", live.out[0], archived.out[0])
		}
		byRoom := 0
		for _, id := range lm.StanzaIDs {
			if strings.EqualFold(id.By, room) {
				byRoom++
			}
		}
		if byRoom != 1 || am.MAM.Unreadable != "" {
			return // a sender's own stanza-id by the room: the room strips it (XEP-0359)
		}
		if lm.HasBody != am.MAM.Message.HasBody || lm.OriginID != am.MAM.Message.OriginID {
			t.Fatalf("live %+v, archived %+v", lm, am.MAM.Message)
		}
		ls, as := lm.Seam("t", room), am.MAM.Seam("t", room)
		if ls.OriginID != lm.OriginID {
			t.Fatalf("the seam message's origin-id %q, the stanza's %q", ls.OriginID, lm.OriginID)
		}
		if time.Since(ls.Timestamp) > time.Minute {
			t.Fatalf("a live stamp from the sender's own <delay/>: %v", ls.Timestamp)
		}
		ls.Timestamp, as.Timestamp = time.Time{}, time.Time{}
		if !reflect.DeepEqual(ls, as) {
			t.Fatalf("live and archive disagree:\nlive     %+v\narchived %+v", ls, as)
		}
		// The relations, read and applied by the one function both paths use,
		// against the same record of the room (a target "s-t", origin-id
		// "o-t", sent by alice), agree too: every field of the seam message.
		if !reflect.DeepEqual(lm.Rel, am.MAM.Message.Rel) || lm.ID != am.MAM.Message.ID || lm.Subject != am.MAM.Message.Subject {
			t.Fatalf("relations live %+v, archived %+v", lm.Rel, am.MAM.Message.Rel)
		}
		seen := func() *stanza.Seen {
			s := stanza.NewSeen(4)
			s.Remember("s-t", stanza.Sender{Nick: "alice"}, "o-t")
			return s
		}
		lr, lu := stanza.Apply(ls, lm.Body, lm.Rel, stanza.Sender{Nick: nick, OccupantID: lm.Rel.OccupantID, JID: stanza.SenderJID(lm.RealJIDs)}, seen())
		ar, au := stanza.Apply(as, am.MAM.Message.Body, am.MAM.Message.Rel, stanza.Sender{Nick: nick, OccupantID: am.MAM.Message.Rel.OccupantID, JID: stanza.SenderJID(am.MAM.Message.RealJIDs)}, seen())
		if !reflect.DeepEqual(lr, ar) || lu != au {
			t.Fatalf("live and archive disagree on relations:\nlive     %+v (%s)\narchived %+v (%s)", lr, lu, ar, au)
		}
		if a, b := stanza.SenderJID(lm.RealJIDs), stanza.SenderJID(am.MAM.Message.RealJIDs); a != b {
			t.Fatalf("sender JID live %q, archived %q", a, b)
		}
	})
}

// FuzzDeepText: elements nested past the reader's first guess of depth,
// with text around them at every level (a strings.Builder copied as the
// levels grew once panicked here: on the reader goroutine, a crash any
// occupant could cause with one private message).
func FuzzDeepText(f *testing.F) {
	var b strings.Builder
	b.WriteString("<message from='r@muc/a' type='chat'>")
	for i := range 20 {
		b.WriteString("<x>t" + strconv.Itoa(i))
	}
	for range 20 {
		b.WriteString("u</x>")
	}
	b.WriteString("</message>")
	f.Add([]byte(b.String()))
	f.Fuzz(checkStream)
}

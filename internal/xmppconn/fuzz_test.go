package xmppconn

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	xmpp "github.com/xmppo/go-xmpp"

	"github.com/parley-go/parley-xmpp/internal/stanza"
)

// What a server sends after login, fuzzed through the path a connection reads
// it by: go-xmpp's Recv on its decoder, then convert. Nothing may panic (a
// panic on the reader goroutine would end the process), every error stanza
// carries an error, payloads handed on are well-formed XML, a stream error ends
// the stream as an error, and what a message says survives a round trip
// through XML built from it.
//
// Seeds in testdata/fuzz/<target> are stanzas captured from the dev servers
// (Prosody 0.12, ejabberd 23.01) while posting, fetching and joining, plus
// hostile shapes no server sends; each target starts from its kind.

// streamHeader is what go-xmpp's decoder has consumed by the time login ends.
const streamHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='parley.local' id='x' version='1.0'>`

// recvClient is a go-xmpp client whose stream is body (after the header): the
// same decoder and Recv as a logged-in client, with writes (go-xmpp answers
// pings itself) discarded.
func recvClient(t *testing.T, body []byte) *xmpp.Client {
	c := &xmpp.Client{Options: &xmpp.Options{}}
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
	setField(t, c, "p", d)
	setField(t, c, "stanzaWriter", io.Writer(io.Discard))
	return c
}

// setField sets go-xmpp's unexported field name (checked by type, as rawConn).
func setField[T any](t *testing.T, c *xmpp.Client, name string, v T) {
	f := reflect.ValueOf(c).Elem().FieldByName(name)
	if !f.IsValid() || f.Type() != reflect.TypeFor[T]() {
		t.Fatalf("go-xmpp's Client.%s changed type", name)
	}
	*(*T)(unsafe.Pointer(f.UnsafeAddr())) = v
}

// readAll reads body as readLoop does: every value converted, the skippable
// errors skipped, until the error that ends the stream.
func readAll(t *testing.T, body []byte) (out []any, end error) {
	c := recvClient(t, body)
	for range 10000 {
		v, err := c.Recv()
		if err != nil {
			if isSkippable(err) {
				continue
			}
			return out, err
		}
		if s := convert(v); s != nil {
			out = append(out, s)
		}
	}
	t.Fatal("no end after 10000 reads")
	return nil, nil
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
	out, end := readAll(t, body)
	if end == nil {
		t.Fatal("the stream ended without an error")
	}
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
			t.Fatalf("convert returned %T", v)
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
	if !m.Stamp.IsZero() {
		b.WriteString(`<delay xmlns='urn:xmpp:delay' stamp='` + m.Stamp.UTC().Format("2006-01-02T15:04:05Z") + `'/>`)
	}
	b.WriteString("</message>")
	out, _ := readAll(t, []byte(b.String()))
	if len(out) != 1 {
		t.Fatalf("round trip of %+v: %d stanzas from %s", m, len(out), b.String())
	}
	again, ok := out[0].(stanza.Message)
	if !ok || !again.Stamp.Equal(m.Stamp) {
		t.Fatalf("round trip of %+v: %+v", m, out[0])
	}
	again.Stamp, again.ID = m.Stamp, m.ID
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
	out, end := readAll(t, []byte(`<message from='r@m/a' type='groupchat'><body>hi</body></message><stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`))
	if len(out) != 1 || out[0].(stanza.Message).Body != "hi" {
		t.Fatalf("%+v", out)
	}
	if end == nil || !strings.HasPrefix(end.Error(), "stream error") {
		t.Fatalf("ended with %v", end)
	}
}

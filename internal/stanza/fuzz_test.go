package stanza

import (
	"encoding/xml"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The parsers of what a server sends, fuzzed: none may panic, a refusal is an
// error and never a half-filled value, and what a parser accepts is what a
// stanza carrying those values says (a round trip through XML built from them).
// Seeds are stanzas captured from Prosody 0.12 and ejabberd 23.01 (the dev
// servers) plus hostile shapes; testdata/fuzz holds what the fuzzers found,
// and the captured-<server>-<step> seeds, which internal/xmppconn's
// TestCaptureSeeds writes (PARLEY_CAPTURE_SEEDS=1; see its fuzz_test.go).

func xesc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// xmlText reports whether s survives as XML character data (CheckText, and no
// carriage return, which XML turns into a line feed).
func xmlText(s string) bool { return CheckText(s) == nil && !strings.Contains(s, "\r") }

// FuzzParseFin: the RSM <fin/> that ends a MAM query.
func FuzzParseFin(f *testing.F) {
	for _, s := range []string{
		// Prosody
		`<fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><first>Ye5EWJ7DAYpBlA5k0w6tOJV4</first><last>mA-2_y0uKc5wnC-_8O4Rp8wz</last><count>2</count></set></fin>`,
		// ejabberd
		`<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><count>12</count><first>1795235158074921</first><last>1795235158091102</last></set></fin>`,
		`<fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><count>0</count></set></fin>`,
		`<fin xmlns='urn:xmpp:mam:2' complete='1'/>`,
		`<fin xmlns='urn:xmpp:mam:1'/>`,
		`<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><count>-3</count></set></fin>`,
		`<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><count>99999999999999999999</count></set></fin>`,
		`<query xmlns='urn:xmpp:mam:2'/>`,
		``,
		`<fin`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fin, err := ParseFin(payload)
		if err != nil {
			if fin != (Fin{}) {
				t.Fatalf("refused with a value: %+v (%v)", fin, err)
			}
			return
		}
		if fin.Count < -1 {
			t.Fatalf("count %d: neither a count nor 'unknown'", fin.Count)
		}
		if !xmlText(fin.First) || !xmlText(fin.Last) {
			return // can't be written back as XML unchanged
		}
		var set strings.Builder
		set.WriteString(`<set xmlns='` + NSRSM + `'>`)
		if fin.First != "" {
			set.WriteString("<first>" + xesc(fin.First) + "</first>")
		}
		if fin.Last != "" {
			set.WriteString("<last>" + xesc(fin.Last) + "</last>")
		}
		if fin.Count >= 0 {
			set.WriteString("<count>" + itoa(fin.Count) + "</count>")
		}
		set.WriteString("</set>")
		complete := ""
		if fin.Complete {
			complete = ` complete='true'`
		}
		again, err := ParseFin([]byte(`<fin xmlns='` + NSMAM + `'` + complete + `>` + set.String() + `</fin>`))
		if err != nil || again != fin {
			t.Fatalf("round trip: %+v → %+v (%v)", fin, again, err)
		}
	})
}

func itoa(n int) string {
	b, _ := xml.Marshal(n)
	return strings.TrimSuffix(strings.TrimPrefix(string(b), "<int>"), "</int>")
}

// FuzzParseForwarded: a MAM result's <forwarded/> (an archived message).
func FuzzParseForwarded(f *testing.F) {
	for _, s := range []string{
		// Prosody
		`<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-11-21T05:43:01Z'/><message xmlns='jabber:client' from='general@muc.parley.local/parley-mjh4dudo' type='groupchat' id='a1'><body>hello @bob</body><origin-id xmlns='urn:xmpp:sid:0' id='TKXQ6Q'/><occupant-id xmlns='urn:xmpp:occupant-id:0' id='x'/></message></forwarded>`,
		// ejabberd
		`<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' xml:lang='en' to='parley@parley.local/r' from='general@muc.parley.local/nick' type='groupchat'><archived by='general@muc.parley.local' xmlns='urn:xmpp:mam:tmp' id='1795235158074921'/><stanza-id by='general@muc.parley.local' xmlns='urn:xmpp:sid:0' id='1795235158074921'/><body>hi</body><delay xmlns='urn:xmpp:delay' from='muc.parley.local' stamp='2026-11-21T05:43:01.074921Z'/></message></forwarded>`,
		`<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='r@m/n'><subject>topic</subject></message></forwarded>`,
		`<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body></body></message></forwarded>`,
		`<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='yesterday'/><message xmlns='jabber:client'><body>x</body></message></forwarded>`,
		`<forwarded xmlns='urn:xmpp:forward:0'/>`,
		`<message xmlns='jabber:client'><body>x</body></message>`,
		``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, inner string) {
		fwd, err := ParseForwarded(inner)
		if err != nil {
			if !reflect.DeepEqual(fwd, Forwarded{}) {
				t.Fatalf("refused with a value: %+v (%v)", fwd, err)
			}
			return
		}
		if !fwd.HasBody && fwd.Body != "" {
			t.Fatalf("a body without HasBody: %+v", fwd)
		}
		for _, s := range append([]string{fwd.From, fwd.ID, fwd.Type, fwd.Body, fwd.Subject, fwd.OriginID}, fwd.RealJIDs...) {
			if !xmlText(s) || strings.ContainsAny(s, "\n\t") {
				return
			}
		}
		var b strings.Builder
		b.WriteString(`<forwarded xmlns='` + NSForward + `'>`)
		if !fwd.Stamp.IsZero() {
			b.WriteString(`<delay xmlns='` + NSDelay + `' stamp='` + fwd.Stamp.Format(time.RFC3339Nano) + `'/>`)
		}
		b.WriteString(`<message xmlns='jabber:client' from='` + xesc(fwd.From) + `' id='` + xesc(fwd.ID) + `' type='` + xesc(fwd.Type) + `'>`)
		if fwd.HasBody {
			b.WriteString("<body>" + xesc(fwd.Body) + "</body>")
		}
		if fwd.HasSubject {
			b.WriteString("<subject>" + xesc(fwd.Subject) + "</subject>")
		}
		if fwd.OriginID != "" {
			b.WriteString(`<origin-id xmlns='` + NSSID + `' id='` + xesc(fwd.OriginID) + `'/>`)
		}
		if len(fwd.RealJIDs) > 0 {
			b.WriteString(`<x xmlns='http://jabber.org/protocol/muc#user'>`)
			for _, j := range fwd.RealJIDs {
				b.WriteString(`<item jid='` + xesc(j) + `'/>`)
			}
			b.WriteString(`</x>`)
		}
		b.WriteString("</message></forwarded>")
		again, err := ParseForwarded(b.String())
		if err != nil || !again.Stamp.Equal(fwd.Stamp) {
			t.Fatalf("round trip of %+v: %+v (%v)", fwd, again, err)
		}
		again.Stamp = fwd.Stamp
		// The relations are not rebuilt here: FuzzLiveEqualsArchive
		// (internal/xmppconn) and TestParseRelations check them.
		again.Rel, fwd.Rel = Relations{}, Relations{}
		if !reflect.DeepEqual(again, fwd) {
			t.Fatalf("round trip: %+v → %+v", fwd, again)
		}
	})
}

// FuzzParseError: a stanza <error/>'s children, as an IQ or message error
// carries them.
func FuzzParseError(f *testing.F) {
	for _, s := range [][2]string{
		{"cancel", `<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
		{"cancel", `<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>That nickname is already in use by another occupant</text>`},
		{"wait", `<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>slow down</text><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
		{"modify", `<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><x xmlns='urn:example'/>`},
		{"auth", `<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></forbidden>`},
		{"", `<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'><b>nested</b></text>`},
		{"", `</a><b xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
		{"", ``},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, typ, inner string) {
		e := ParseError(typ, inner)
		if e == nil {
			t.Fatal("nil error")
		}
		if e.Type != typ || e.Error() == "" {
			t.Fatalf("%+v", e)
		}
		if e.Condition == "text" {
			t.Fatalf("<text/> taken for the condition: %+v", e)
		}
		if e.Condition != "" && !isName(e.Condition) {
			t.Fatalf("condition %q is no element name", e.Condition)
		}
		if e.Condition == "" || !xmlText(e.Text) || strings.TrimSpace(e.Text) != e.Text {
			return
		}
		again := ParseError(typ, `<`+e.Condition+` xmlns='`+NSStanzas+`'/><text xmlns='`+NSStanzas+`'>`+xesc(e.Text)+`</text>`)
		if *again != *e {
			t.Fatalf("round trip: %+v → %+v", e, again)
		}
	})
}

func isName(s string) bool {
	var v struct{}
	return xml.Unmarshal([]byte("<"+s+"/>"), &v) == nil
}

// FuzzFormFields: the room configuration form a muc#owner query answers, and
// disco#info features (HasFeature).
func FuzzFormFields(f *testing.F) {
	for _, s := range []string{
		`<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='form'><title>Configuration for room</title><field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field type='boolean' var='muc#roomconfig_persistentroom' label='Persistent'><value>0</value></field><field var='muc#roomconfig_mam' type='boolean'/></x></query>`,
		`<query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text' name='general'/><feature var='http://jabber.org/protocol/muc'/><feature var='urn:xmpp:mam:2'/><feature var='urn:xmpp:sid:0'/></query>`,
		`<query><x><field/><field var=''/></x></query>`,
		``,
	} {
		f.Add([]byte(s), NSMAM)
	}
	f.Fuzz(func(t *testing.T, payload []byte, feature string) {
		for _, v := range FormFields(payload) {
			if v == "" {
				t.Fatal("an empty field var")
			}
		}
		has := HasFeature(payload, feature)
		if has && !strings.Contains(string(payload), "feature") {
			t.Fatalf("feature %q found in a payload without a <feature/>", feature)
		}
		if !xmlText(feature) || strings.ContainsAny(feature, "\n\t") {
			return
		}
		built := `<query xmlns='` + NSDiscoInfo + `'><feature var='urn:example'/><feature var='` + xesc(feature) + `'/></query>`
		if !HasFeature([]byte(built), feature) {
			t.Fatalf("%q not found in %s", feature, built)
		}
	})
}

package archive

import (
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/seam"
)

const fuzzRoom = "general@muc.parley.local"

// FuzzPage: a MAM page as the session hands it over (the IQ answer with its
// <fin/> or <error/>, and a row, already parsed from its <forwarded/> as the
// session does), through check and entry. A page is either refused with an
// error or every row has an id; a row becomes a message only when it is the
// room's and has a body, and then carries the row's id as id and cursor, a
// sender and a time.
func FuzzPage(f *testing.F) {
	for _, s := range []struct {
		fin         string
		forwarded   string
		id, errType string
		errInner    string
	}{
		{`<fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><first>a</first><last>a</last><count>1</count></set></fin>`,
			`<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-11-21T05:43:01Z'/><message xmlns='jabber:client' from='general@muc.parley.local/alice' type='groupchat'><body>hi @bob</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message></forwarded>`,
			"xmqZTCS2ghgT1Idd2SI5-T20", "", ""},
		{`<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><count>12</count><first>1795235158074921</first><last>1795235158091102</last></set></fin>`,
			`<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='GENERAL@muc.parley.local' type='groupchat'><body>from the room</body></message></forwarded>`,
			"1795235158074921", "", ""},
		{``, `<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='elsewhere@muc.parley.local/x'><body>not ours</body></message></forwarded>`,
			"", "cancel", `<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
		{``, ``, "", "cancel", `<feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`},
		{`<fin xmlns='urn:xmpp:mam:2' complete='true'/>`, `<forwarded/>`, "", "", ""},
		// A page whose last id can't be given back as a cursor.
		{`<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><last>a b</last></set></fin>`,
			`<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='general@muc.parley.local/a'><body>x</body></message></forwarded>`, "a", "", ""},
	} {
		f.Add([]byte(s.fin), s.forwarded, s.id, s.errType, s.errInner)
	}
	a := &Archive{cfg: Config{Room: fuzzRoom, Topic: "general"}, known: map[string]time.Time{}}
	f.Fuzz(func(t *testing.T, fin []byte, forwarded, id, errType, errInner string) {
		res := &session.IQResult{IQ: stanza.IQ{Type: "result", Payload: fin}}
		if errType != "" || errInner != "" {
			res.IQ.Type = "error"
			res.IQ.Error = stanza.ParseError(errType, errInner)
		}
		row := stanza.MAMResult{Archive: fuzzRoom, ID: id}
		if fwd, err := stanza.ParseForwarded(forwarded); err != nil {
			row.ID = "" // as the session files an unreadable row
		} else {
			row.Message = fwd
		}
		res.MAM = []stanza.MAMResult{row}

		rows, page, err := a.check(res)
		if err != nil {
			if rows != nil || page != (stanza.Fin{}) {
				t.Fatalf("refused (%v) with rows %v, fin %+v", err, rows, page)
			}
			if res.IQ.Error != nil && res.IQ.Error.Condition == "item-not-found" && !errors.Is(err, errMissing) {
				t.Fatalf("item-not-found read as %v", err)
			}
			return
		}
		if res.IQ.Type == "error" {
			t.Fatal("an error answer accepted")
		}
		if len(rows) != 1 || stanza.CheckID(rows[0].ID) != nil {
			t.Fatalf("accepted rows %+v: every id must be usable as a cursor", rows)
		}
		for _, id := range []string{page.First, page.Last} {
			if id != "" && stanza.CheckID(id) != nil {
				t.Fatalf("page bound %q can't be a cursor", id)
			}
		}
		if page.Count < -1 {
			t.Fatalf("count %d", page.Count)
		}
		e, ok := a.entry(rows[0])
		if !ok {
			if row.Message.HasBody && row.Message.Body != "" && stanza.SameBare(row.Message.From, fuzzRoom) {
				t.Fatalf("the room's message %+v dropped", row.Message)
			}
			return
		}
		m := e.Message
		switch {
		case !stanza.SameBare(row.Message.From, fuzzRoom):
			t.Fatalf("a message from %q taken for the room's", row.Message.From)
		case m.BackendMsgID != seam.BackendMsgID(id) || m.Cursor != seam.Cursor(id):
			t.Fatalf("id %q, cursor %q for row %q", m.BackendMsgID, m.Cursor, id)
		case m.Content == "" || m.Content != row.Message.Body:
			t.Fatalf("content %q for body %q", m.Content, row.Message.Body)
		case m.SenderHandle == "":
			t.Fatal("no sender")
		case m.Timestamp.IsZero() || m.Timestamp.Location() != time.UTC:
			t.Fatalf("timestamp %v", m.Timestamp)
		case m.Topic != "general" || e.OriginID != row.Message.OriginID:
			t.Fatalf("%+v", e)
		}
		for _, h := range m.Mentions {
			if h == "" || !utf8.ValidString(string(h)) {
				t.Fatalf("mention %q", h)
			}
		}
	})
}

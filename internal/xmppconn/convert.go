package xmppconn

import (
	xmpp "github.com/xmppo/go-xmpp"

	"github.com/parley-go/parley-xmpp/internal/stanza"
)

// convert turns what go-xmpp's Recv returned into a stanza type, or nil for what
// the runtime has no use for (roster, pubsub, avatars).
func convert(v any) any {
	switch s := v.(type) {
	case xmpp.Chat:
		if s.Type == "roster" {
			return nil
		}
		m := stanza.Message{
			From:     s.Remote,
			Type:     s.Type,
			Body:     s.Text,
			Subject:  s.Subject,
			OriginID: s.OriginID,
			StanzaID: stanza.StanzaID{ID: s.StanzaID.ID, By: s.StanzaID.By},
			Stamp:    s.Stamp,
		}
		for _, e := range s.OtherElem {
			switch {
			case e.XMLName.Space == stanza.NSMAM && e.XMLName.Local == "result":
				r := &stanza.MAMResult{Archive: s.Remote, QueryID: attrOf(e, "queryid"), ID: attrOf(e, "id")}
				fwd, err := stanza.ParseForwarded(e.InnerXML)
				if err != nil {
					// Keep it: the archive actor counts an unreadable row as a fault of
					// the page rather than silently skipping it.
					r.Message = stanza.Forwarded{}
					m.Error = &stanza.Error{Condition: "bad-mam-result", Text: err.Error()}
				} else {
					r.Message = fwd
				}
				m.MAM = r
			case e.XMLName.Local == "error" && s.Type == "error":
				m.Error = stanza.ParseError(attrOf(e, "type"), e.InnerXML)
			}
		}
		if s.Type == "error" && m.Error == nil {
			// An error without its <error/> is still an error (a bounced post).
			m.Error = &stanza.Error{Condition: "undefined-condition"}
		}
		return m
	case xmpp.Presence:
		p := stanza.Presence{
			From: s.From, ID: s.ID, Type: s.Type, Status: s.Status,
			Affiliation: s.Affiliation, Role: s.Role, JID: s.JID,
		}
		if s.Type == "error" {
			p.Error = &stanza.Error{Condition: condition(s.Error)}
		}
		return p
	case xmpp.IQ:
		iq := stanza.IQ{ID: s.ID, From: s.From, To: s.To, Type: s.Type}
		if len(s.Query) > 0 && string(s.Query) != "<XMLElement></XMLElement>" {
			iq.Payload = s.Query
		}
		if s.Type == "error" {
			iq.Error = &stanza.Error{Type: s.Error.Type, Condition: condition(s.Error.Condition), Text: s.Error.Text}
		}
		return iq
	case xmpp.DiscoItems:
		// go-xmpp decodes disco#items answers itself; keep the item JIDs.
		iq := stanza.IQ{ID: s.ID, From: s.Jid, Type: "result"}
		for _, it := range s.Items {
			iq.Items = append(iq.Items, it.Jid)
		}
		return iq
	case xmpp.DiscoResult:
		// go-xmpp decodes disco#info answers itself; keep the features.
		return stanza.IQ{ID: s.ID, From: s.From, To: s.To, Type: "result", Features: s.Features}
	}
	return nil
}

func attrOf(e xmpp.XMLElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// condition mends go-xmpp's reading of an <error/>: it takes the last child
// element as the condition, so an error that carries a <text/> reports "text".
// The real condition is then unknown; say so rather than guess.
func condition(c string) string {
	if c == "text" {
		return "undefined-condition"
	}
	return c
}

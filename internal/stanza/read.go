package stanza

import "strings"

// NSClient is the namespace of a client stream's stanzas.
const NSClient = "jabber:client"

// Parse says what a top-level element of the client stream is: a Message,
// Presence or IQ, or nil for anything else, with kind naming what it was
// (for the count of skipped elements). It never fails: a stanza is well-formed
// XML by the time it is an Element, and whatever in it the runtime doesn't
// understand is left out of the value, never an error that ends the link.
func Parse(e *Element) (v any, kind string) {
	if e.Name.Space != NSClient {
		return nil, "element:" + e.Name.Local
	}
	switch e.Name.Local {
	case "message":
		return ParseMessage(e), "message"
	case "presence":
		return ParsePresence(e), "presence"
	case "iq":
		return ParseIQ(e), "iq"
	}
	return nil, "element:" + e.Name.Local
}

// ParseMessage reads a <message/>, live or archived (the archive's forwarded
// copy is read by this same function, so both paths agree on every field).
//
//   - Body and Subject are the first jabber:client <body/> and <subject/>;
//     elements of the same local name in any other namespace are not the
//     message's text (no client shows them).
//   - StanzaID is the <stanza-id/> whose by is the sender's bare JID (the
//     room, for a room's message), none when there are several such; ids by
//     anyone else are in StanzaIDs only.
//   - No <delay/> is read: a sender can put one in its message, with any
//     from, and the room passes it on. The only stamp trusted is the
//     archive's, on the <forwarded/> of a MAM result.
//   - RealJIDs are every muc#user <item/>'s jid, "" for an item without one.
//   - Rel are the relations (parseRelations): XEP-0308 <replace/>, XEP-0461
//     <reply/>, XEP-0444 <reactions/>, XEP-0424 retractions (v0.3's
//     <apply-to><retract/></apply-to> as slixmpp 1.8.3 sends, and v0.4's
//     <retract id/>), XEP-0425 moderation, XEP-0066 and XEP-0447
//     attachments, XEP-0428 fallbacks and the XEP-0421 occupant-id, each by
//     its namespace.
func ParseMessage(e *Element) Message {
	m := Message{
		From: e.Attribute("from"),
		To:   e.Attribute("to"),
		ID:   e.Attribute("id"),
		Type: e.Attribute("type"),
	}
	if b := e.Child(NSClient, "body"); b != nil {
		m.Body, m.HasBody = b.Text, true
	}
	if s := e.Child(NSClient, "subject"); s != nil {
		m.Subject, m.HasSubject = s.Text, true
	}
	room := Bare(m.From)
	byRoom := 0
	for _, s := range e.All(NSSID, "stanza-id") {
		id := StanzaID{ID: s.Attribute("id"), By: s.Attribute("by")}
		m.StanzaIDs = append(m.StanzaIDs, id)
		if room != "" && strings.EqualFold(id.By, room) {
			m.StanzaID = id
			byRoom++
		}
	}
	if byRoom > 1 {
		// A sender's own beside the room's (a server must strip it, XEP-0359):
		// which is the room's can't be told; the archive's id decides.
		m.StanzaID = StanzaID{}
	}
	if o := e.Child(NSSID, "origin-id"); o != nil {
		m.OriginID = o.Attribute("id")
	}
	m.RealJIDs = mucUserJIDs(e)
	m.Rel = parseRelations(e)
	if m.Type == "error" {
		m.Error = &Error{Condition: "undefined-condition"} // an error without its <error/> is still one
		if er := e.Child(NSClient, "error"); er != nil {
			m.Error = parseError(er)
		}
	}
	if r := e.Child(NSMAM, "result"); r != nil {
		m.MAM = parseMAMResult(m.From, r)
	}
	return m
}

// mucUserJIDs lists the jid of every <item/> of every muc#user <x/> of e.
func mucUserJIDs(e *Element) []string {
	var out []string
	for _, x := range e.All(NSMUCUser, "x") {
		for _, it := range x.All(NSMUCUser, "item") {
			out = append(out, it.Attribute("jid"))
		}
	}
	return out
}

// parseMAMResult reads a MAM <result/>: its query id, the archive id, and the
// forwarded message with the archive's <delay/>.
func parseMAMResult(archive string, r *Element) *MAMResult {
	res := &MAMResult{Archive: archive, QueryID: r.Attribute("queryid"), ID: r.Attribute("id")}
	fwd := r.Child(NSForward, "forwarded")
	var msg *Element
	if fwd != nil {
		msg = fwd.Child(NSClient, "message")
	}
	if msg == nil {
		res.Unreadable = "a MAM result without a <message/>"
		return res
	}
	inner := ParseMessage(msg)
	f := Forwarded{From: inner.From, ID: inner.ID, Type: inner.Type, Body: inner.Body, HasBody: inner.HasBody,
		Subject: inner.Subject, HasSubject: inner.HasSubject, OriginID: inner.OriginID, Rel: inner.Rel, RealJIDs: inner.RealJIDs}
	// The archive's own stamp, on <forwarded/>, is the server's word (the
	// result came from the archive asked); the inner message's delay is the
	// sender's (ParseMessage reads none).
	if d := fwd.Child(NSDelay, "delay"); d != nil {
		t, err := ParseStamp(d.Attribute("stamp"))
		if err != nil {
			res.Unreadable = err.Error()
			return res
		}
		f.Stamp = t
	}
	res.Message = f
	return res
}

// ParsePresence reads a <presence/>. The muc#user payload is the room's word
// only where the room's and any the occupant added agree: JID is the real JID
// every item names ("" when any item names none or they disagree, which is
// what an anonymous room shows beside a forged item), Affiliation and Role
// are the last item's, and StatusCodes are every <status code/>.
func ParsePresence(e *Element) Presence {
	p := Presence{From: e.Attribute("from"), ID: e.Attribute("id"), Type: e.Attribute("type")}
	if s := e.Child(NSClient, "status"); s != nil {
		p.Status = s.Text
	}
	for _, x := range e.All(NSMUCUser, "x") {
		for _, it := range x.All(NSMUCUser, "item") {
			p.Affiliation, p.Role = it.Attribute("affiliation"), it.Attribute("role")
		}
		for _, st := range x.All(NSMUCUser, "status") {
			p.StatusCodes = append(p.StatusCodes, st.Attribute("code"))
		}
	}
	if jids := mucUserJIDs(e); len(jids) > 0 {
		p.JID = SenderJID(jids)
	}
	if p.Type == "error" {
		p.Error = &Error{Condition: "undefined-condition"}
		if er := e.Child(NSClient, "error"); er != nil {
			p.Error = parseError(er)
		}
	}
	return p
}

// ParseIQ reads an <iq/>: its first child element is the payload (serialised
// again, namespaces declared), and for disco answers the features or items.
func ParseIQ(e *Element) IQ {
	iq := IQ{ID: e.Attribute("id"), From: e.Attribute("from"), To: e.Attribute("to"), Type: e.Attribute("type")}
	if c := firstPayload(e); c != nil {
		iq.Payload = c.XML()
		iq.PayloadName = c.Name
		switch {
		case c.Is(NSDiscoInfo, "query"):
			for _, f := range c.All(NSDiscoInfo, "feature") {
				iq.Features = append(iq.Features, f.Attribute("var"))
			}
		case c.Is(NSDiscoItems, "query"):
			for _, it := range c.All(NSDiscoItems, "item") {
				iq.Items = append(iq.Items, it.Attribute("jid"))
			}
		}
	}
	if iq.Type == "error" {
		iq.Error = &Error{Condition: "undefined-condition"}
		if er := e.Child(NSClient, "error"); er != nil {
			iq.Error = parseError(er)
		}
	}
	return iq
}

// firstPayload is an IQ's first child that is not its <error/>.
func firstPayload(e *Element) *Element {
	for _, c := range e.Children {
		if !c.Is(NSClient, "error") {
			return c
		}
	}
	return nil
}

// parseError reads an <error/>: its type, the first condition element of the
// stanzas namespace, and its <text/>.
func parseError(e *Element) *Error {
	out := &Error{Type: e.Attribute("type")}
	for _, c := range e.Children {
		if c.Name.Space != NSStanzas {
			continue
		}
		if c.Name.Local == "text" {
			if out.Text == "" {
				out.Text = c.Text
			}
		} else if out.Condition == "" {
			out.Condition = c.Name.Local
		}
	}
	if out.Condition == "" {
		out.Condition = "undefined-condition"
	}
	return out
}

package stanza

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"strings"
	"unicode/utf8"
)

// esc XML-escapes s for text or a quoted attribute value.
func esc(b *bytes.Buffer, s string) { _ = xml.EscapeText(b, []byte(s)) }

func attr(b *bytes.Buffer, name, value string) {
	b.WriteByte(' ')
	b.WriteString(name)
	b.WriteString(`="`)
	esc(b, value)
	b.WriteByte('"')
}

// JoinPresence asks to join room as nick, without history: the runtime catches up
// from the archive, never from the room's history.
func JoinPresence(room, nick, id string) []byte {
	var b bytes.Buffer
	b.WriteString("<presence")
	attr(&b, "to", Occupant(room, nick))
	attr(&b, "id", id)
	b.WriteString(`><x xmlns="` + NSMUC + `"><history maxstanzas="0"/></x></presence>`)
	return b.Bytes()
}

// LeavePresence leaves room.
func LeavePresence(room, nick string) []byte {
	var b bytes.Buffer
	b.WriteString("<presence")
	attr(&b, "to", Occupant(room, nick))
	b.WriteString(` type="unavailable"/>`)
	return b.Bytes()
}

// escBody escapes s for a text node with as few bytes as XML allows: only & < >
// and carriage returns (which XML would turn into line feeds) become
// references; quotes, apostrophes, tabs and line feeds stay as they are, where
// xml.EscapeText makes each 5 bytes, so a post of quotes and lines doesn't
// become a stanza five times its size. Text that XML can't carry at all (the
// runtime refuses it before this) takes xml.EscapeText's path.
func escBody(b *bytes.Buffer, s string) {
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF
	}) {
		esc(b, s)
		return
	}
	last := 0
	for i := 0; i < len(s); i++ {
		var ref string
		switch s[i] {
		case '&':
			ref = "&amp;"
		case '<':
			ref = "&lt;"
		case '>':
			ref = "&gt;"
		case '\r':
			ref = "&#xD;"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(ref)
		last = i + 1
	}
	b.WriteString(s[last:])
}

// Reply is what a post says of the message it answers (XEP-0461): the
// parent's id (its stanza-id), and, where the room knows the parent, its
// sender's occupant JID (To) and the quote (ReplyQuote) shown by clients
// without replies, marked as XEP-0428 fallback. The zero value: no reply.
type Reply struct {
	ID, To, Quote string
}

// GroupchatMessage is a post to room. The stanza id and the XEP-0359 origin-id are
// both originID, so the reflection and any error bounce can be matched to the post.
// reply.ID, when set, is carried as an XEP-0461 reply reference, with its to
// and its quote (before the body, marked as fallback in code points) when
// the reply has them.
func GroupchatMessage(room, originID, body string, reply Reply) []byte {
	var b bytes.Buffer
	b.Grow(len(body) + len(reply.Quote) + 256)
	b.WriteString("<message")
	attr(&b, "to", room)
	attr(&b, "type", "groupchat")
	attr(&b, "id", originID)
	b.WriteString("><body>")
	quote := reply.ID != "" && reply.Quote != ""
	if quote {
		escBody(&b, reply.Quote)
	}
	escBody(&b, body)
	b.WriteString(`</body><origin-id xmlns="` + NSSID + `"`)
	attr(&b, "id", originID)
	b.WriteString("/>")
	if reply.ID != "" {
		b.WriteString(`<reply xmlns="` + NSReply + `"`)
		if reply.To != "" {
			attr(&b, "to", reply.To)
		}
		attr(&b, "id", reply.ID)
		b.WriteString("/>")
		if quote {
			b.WriteString(`<fallback xmlns="` + NSFallback + `"`)
			attr(&b, "for", NSReply)
			b.WriteString(`><body start="0"`)
			attr(&b, "end", strconv.Itoa(utf8.RuneCountInString(reply.Quote)))
			b.WriteString("/></fallback>")
		}
	}
	b.WriteString("</message>")
	return b.Bytes()
}

// Act is a relation the runtime sends about a message (its target's ids
// resolved by the room): exactly one of Replace (a correction: the target's
// origin-id, with Body the new text), Retract (the target's origin-id) or
// React (the target's stanza-id, with Reactions the full set).
type Act struct {
	Replace, Retract, React string
	// RetractSID: the target's stanza-id, for v0.4's <retract id/> (in a
	// room, the room's id; "" to name Retract there too).
	RetractSID string
	Reactions  []string
}

// RetractFallback is the body of a retraction, for clients without XEP-0424.
const RetractFallback = "This message was retracted."

// ActMessage is a relation posted to room, with origin-id and id originID as
// GroupchatMessage: an XEP-0308 correction, an XEP-0424 retraction (v0.3, as
// slixmpp 1.8.3 and Prosody 0.12's clients read it, and v0.4's <retract id/>
// beside it, both naming the same message; a fallback body marked as
// XEP-0428), or XEP-0444 reactions (no body; a store hint, so the room
// archives it).
func ActMessage(room, originID, body string, a Act) []byte {
	var b bytes.Buffer
	b.WriteString("<message")
	attr(&b, "to", room)
	attr(&b, "type", "groupchat")
	attr(&b, "id", originID)
	b.WriteByte('>')
	switch {
	case a.Replace != "":
		b.WriteString("<body>")
		escBody(&b, body)
		b.WriteString(`</body><replace xmlns="` + NSCorrect + `"`)
		attr(&b, "id", a.Replace)
		b.WriteString("/>")
	case a.Retract != "":
		b.WriteString("<body>")
		escBody(&b, RetractFallback)
		b.WriteString(`</body><apply-to xmlns="` + NSFasten + `"`)
		attr(&b, "id", a.Retract)
		b.WriteString(`><retract xmlns="` + NSRetract0 + `"/></apply-to><retract xmlns="` + NSRetract1 + `"`)
		sid := a.RetractSID
		if sid == "" {
			sid = a.Retract
		}
		attr(&b, "id", sid)
		b.WriteString(`/><fallback xmlns="` + NSFallback + `"/><store xmlns="` + NSHints + `"/>`)
	case a.React != "":
		b.WriteString(`<reactions xmlns="` + NSReactions + `"`)
		attr(&b, "id", a.React)
		b.WriteByte('>')
		for _, r := range a.Reactions {
			b.WriteString("<reaction>")
			escBody(&b, r)
			b.WriteString("</reaction>")
		}
		b.WriteString(`</reactions><store xmlns="` + NSHints + `"/>`)
	}
	b.WriteString(`<origin-id xmlns="` + NSSID + `"`)
	attr(&b, "id", originID)
	b.WriteString("/></message>")
	return b.Bytes()
}

// MaxQuoteRunes bounds the parent's text a reply quotes.
const MaxQuoteRunes = 100

// ReplyQuote is the fallback quote of a reply to nick's text: "> nick: text"
// and a newline, each line of text quoted, text cut at MaxQuoteRunes (with
// an ellipsis).
func ReplyQuote(nick, text string) string {
	r := []rune(text)
	if len(r) > MaxQuoteRunes {
		text = string(r[:MaxQuoteRunes]) + "…"
	}
	return "> " + nick + ": " + strings.ReplaceAll(strings.TrimRight(text, "\n"), "\n", "\n> ") + "\n"
}

func iqOpen(b *bytes.Buffer, typ, to, id string) {
	b.WriteString("<iq")
	attr(b, "type", typ)
	if to != "" {
		attr(b, "to", to)
	}
	attr(b, "id", id)
	b.WriteByte('>')
}

// InstantRoomIQ submits an empty room configuration form: it unlocks a room this
// connection just created (XEP-0045 instant room) and changes nothing on a room
// that already exists, so it is safe to send after every join.
func InstantRoomIQ(room, id string) []byte {
	var b bytes.Buffer
	iqOpen(&b, "set", room, id)
	b.WriteString(`<query xmlns="` + NSMUCOwner + `"><x xmlns="` + NSDataForm + `" type="submit"/></query></iq>`)
	return b.Bytes()
}

// RoomConfigFormIQ asks an owner's room configuration form.
func RoomConfigFormIQ(room, id string) []byte {
	var b bytes.Buffer
	iqOpen(&b, "get", room, id)
	b.WriteString(`<query xmlns="` + NSMUCOwner + `"/></iq>`)
	return b.Bytes()
}

// RoomConfigSubmitIQ submits a room configuration with the given field values
// (var → value), in the order of vars.
func RoomConfigSubmitIQ(room, id string, vars []string, values map[string]string) []byte {
	var b bytes.Buffer
	iqOpen(&b, "set", room, id)
	b.WriteString(`<query xmlns="` + NSMUCOwner + `"><x xmlns="` + NSDataForm + `" type="submit">`)
	b.WriteString(`<field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field>`)
	for _, v := range vars {
		b.WriteString("<field")
		attr(&b, "var", v)
		b.WriteString("><value>")
		esc(&b, values[v])
		b.WriteString("</value></field>")
	}
	b.WriteString("</x></query></iq>")
	return b.Bytes()
}

// PingIQ is an XEP-0199 ping.
func PingIQ(to, id string) []byte {
	var b bytes.Buffer
	iqOpen(&b, "get", to, id)
	b.WriteString(`<ping xmlns="` + NSPing + `"/></iq>`)
	return b.Bytes()
}

// NickProbeIQ is a disco#info request to an occupant JID whose node carries
// token, so the connection that receives it can tell it is the probe it sent.
func NickProbeIQ(occupant, id, token string) []byte {
	var b bytes.Buffer
	iqOpen(&b, "get", occupant, id)
	b.WriteString(`<query xmlns="` + NSDiscoInfo + `"`)
	attr(&b, "node", nickProbeNode+token)
	b.WriteString("/></iq>")
	return b.Bytes()
}

const nickProbeNode = "urn:parley-xmpp:nick-probe:"

// IsNickProbe reports whether an IQ payload is the nick probe carrying token.
func IsNickProbe(payload []byte, token string) bool {
	var v struct {
		XMLName xml.Name
		Node    string `xml:"node,attr"`
	}
	return token != "" && xml.Unmarshal(payload, &v) == nil && v.XMLName.Space == NSDiscoInfo && v.Node == nickProbeNode+token
}

// DiscoInfoIQ asks for to's service discovery information.
func DiscoInfoIQ(to, id string) []byte {
	var b bytes.Buffer
	iqOpen(&b, "get", to, id)
	b.WriteString(`<query xmlns="` + NSDiscoInfo + `"/></iq>`)
	return b.Bytes()
}

// DiscoItemsIQ asks for to's service discovery items (a room's occupants, on
// servers that list them).
func DiscoItemsIQ(to, id string) []byte {
	var b bytes.Buffer
	iqOpen(&b, "get", to, id)
	b.WriteString(`<query xmlns="` + NSDiscoItems + `"/></iq>`)
	return b.Bytes()
}

// Page selects a page of a MAM query (XEP-0059 result set management).
type Page struct {
	Max int
	// After pages forward, strictly after an archive id.
	After string
	// Before pages backward, strictly before an archive id; with Last set and
	// Before empty the page is the archive's newest ("<before/>").
	Before string
	Last   bool
}

// MAMQueryIQ is an XEP-0313 query of archive (a room's bare JID).
func MAMQueryIQ(archive, id, queryID string, p Page) []byte {
	var b bytes.Buffer
	iqOpen(&b, "set", archive, id)
	b.WriteString(`<query xmlns="` + NSMAM + `"`)
	attr(&b, "queryid", queryID)
	b.WriteString(`><set xmlns="` + NSRSM + `"><max>`)
	b.WriteString(strconv.Itoa(p.Max))
	b.WriteString("</max>")
	switch {
	case p.After != "":
		b.WriteString("<after>")
		esc(&b, p.After)
		b.WriteString("</after>")
	case p.Before != "":
		b.WriteString("<before>")
		esc(&b, p.Before)
		b.WriteString("</before>")
	case p.Last:
		b.WriteString("<before/>")
	}
	b.WriteString("</set></query></iq>")
	return b.Bytes()
}

// ErrorReplyIQ answers an IQ get/set the runtime doesn't serve.
func ErrorReplyIQ(to, id, condition string) []byte {
	var b bytes.Buffer
	iqOpen(&b, "error", to, id)
	b.WriteString(`<error type="cancel"><` + condition + ` xmlns="` + NSStanzas + `"/></error></iq>`)
	return b.Bytes()
}

// ResultIQ is an empty result answering the request id from to (for a ping).
// to "" answers the server itself.
func ResultIQ(to, id string) []byte {
	var b bytes.Buffer
	iqOpen(&b, "result", to, id)
	b.Truncate(b.Len() - 1)
	b.WriteString("/>")
	return b.Bytes()
}

// VersionResultIQ answers an XEP-0092 version request.
func VersionResultIQ(to, id, name, version string) []byte {
	var b bytes.Buffer
	iqOpen(&b, "result", to, id)
	b.WriteString(`<query xmlns="` + NSVersion + `"><name>`)
	esc(&b, name)
	b.WriteString("</name><version>")
	esc(&b, version)
	b.WriteString("</version></query></iq>")
	return b.Bytes()
}

// DiscoInfoResultIQ answers an XEP-0030 disco#info request: an automated
// client with features.
func DiscoInfoResultIQ(to, id string, features ...string) []byte {
	var b bytes.Buffer
	iqOpen(&b, "result", to, id)
	b.WriteString(`<query xmlns="` + NSDiscoInfo + `"><identity category="client" type="bot" name="parley-xmpp"/>`)
	for _, f := range features {
		b.WriteString("<feature")
		attr(&b, "var", f)
		b.WriteString("/>")
	}
	b.WriteString("</query></iq>")
	return b.Bytes()
}

// StreamEnd closes the XML stream.
func StreamEnd() []byte { return []byte("</stream:stream>") }

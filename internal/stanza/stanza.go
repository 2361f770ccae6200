// Package stanza holds parley-xmpp's own view of the XMPP stanzas it exchanges:
// plain types for what arrives, builders for what it sends, and the one
// namespace-qualified parser (Element, Parse) that decides what every inbound
// stanza means, live or archived. Nothing here does I/O, so every parser and
// builder is unit-tested against literal XML.
package stanza

import (
	"encoding/xml"
	"fmt"
	"strings"
	"time"
)

// Namespaces used by the runtime.
const (
	NSMUC        = "http://jabber.org/protocol/muc"
	NSMUCUser    = "http://jabber.org/protocol/muc#user"
	NSMUCOwner   = "http://jabber.org/protocol/muc#owner"
	NSMAM        = "urn:xmpp:mam:2"
	NSRSM        = "http://jabber.org/protocol/rsm"
	NSSID        = "urn:xmpp:sid:0"
	NSForward    = "urn:xmpp:forward:0"
	NSDelay      = "urn:xmpp:delay"
	NSPing       = "urn:xmpp:ping"
	NSVersion    = "jabber:iq:version"
	NSDataForm   = "jabber:x:data"
	NSStanzas    = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSReply      = "urn:xmpp:reply:0"
	NSDiscoInfo  = "http://jabber.org/protocol/disco#info"
	NSDiscoItems = "http://jabber.org/protocol/disco#items"
)

// StanzaID is an XEP-0359 <stanza-id/>: the id an entity (By) assigned.
type StanzaID struct {
	ID string
	By string
}

// Error is a stanza-level <error/>.
type Error struct {
	Type      string // cancel, modify, auth, wait, continue
	Condition string // e.g. item-not-found
	Text      string
}

func (e *Error) Error() string {
	s := e.Condition
	if s == "" {
		s = "undefined-condition"
	}
	if e.Type != "" {
		s = e.Type + "/" + s
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Message is a <message/> as the runtime sees it (ParseMessage says how each
// field is read).
type Message struct {
	From       string
	To         string
	ID         string
	Type       string // groupchat, error, ...
	Body       string // the first jabber:client <body/>
	HasBody    bool
	Subject    string
	HasSubject bool
	OriginID   string
	// StanzaID is the <stanza-id/> by the sender's bare JID (the room's own id
	// for a room's message), zero when there is none; StanzaIDs are all of them.
	StanzaID  StanzaID
	StanzaIDs []StanzaID
	RealJIDs  []string // see Forwarded.RealJIDs
	// Rel: the relations the message carries (edits, replies, reactions,
	// retractions, attachments), as its sender wrote them.
	Rel   Relations
	Error *Error // for Type == "error"
	// Received is when the connection read it (zero for a message not read
	// off a stream).
	Received time.Time
	// MAM is set when the message is an XEP-0313 archive result.
	MAM *MAMResult
}

// MAMResult is one <result/> of a MAM query.
type MAMResult struct {
	Archive string // the JID the result came from (the archive owner)
	QueryID string
	ID      string // the archive id, equal to the room's stanza-id
	Message Forwarded
	// Unreadable says what is wrong with a result whose message can't be read
	// ("" for a good one): the archive counts it as a fault of its page.
	Unreadable string
}

// Forwarded is the archived message inside a MAM result.
type Forwarded struct {
	From       string
	ID         string // the sender's id attribute
	Type       string
	Body       string
	HasBody    bool
	Subject    string
	HasSubject bool
	OriginID   string
	Rel        Relations // as Message.Rel
	Stamp      time.Time
	// RealJIDs are the jid attributes of every <x xmlns='muc#user'><item/> of
	// the archived message ("" for an item without one): the sender's real
	// JID, where the room shows it (non-anonymous rooms; ejabberd also shows a
	// requester its own). A sender can put such an element in its own
	// message, and Prosody keeps it beside the one it adds, so a sender is
	// known only when they all agree (see SenderJID).
	RealJIDs []string
}

// SenderJID returns the bare real JID every one of jids names, or "" when
// there is none or they disagree (a forged element beside the server's).
func SenderJID(jids []string) string {
	who := ""
	for _, j := range jids {
		b := Bare(j)
		switch {
		case b == "":
			return ""
		case who == "":
			who = b
		case !strings.EqualFold(who, b):
			return ""
		}
	}
	return who
}

// Presence is a <presence/> (ParsePresence says how each field is read).
type Presence struct {
	From        string
	ID          string
	Type        string // "", unavailable, error, ...
	Status      string
	Affiliation string
	Role        string
	JID         string   // the real JID every muc#user <item/> agrees on, or ""
	StatusCodes []string // the muc#user <status code/>s
	Error       *Error
}

// IQ is an <iq/>.
type IQ struct {
	ID          string
	From        string
	To          string
	Type        string   // get, set, result, error
	Payload     []byte   // the first child element (not <error/>), re-serialised
	PayloadName xml.Name // its name
	Error       *Error
	// Features of a disco#info result, Items of a disco#items result.
	Features []string
	Items    []string
}

// Bare returns jid without its resource.
func Bare(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}

// Resource returns jid's resource ("" when none). For an occupant JID it is the nick.
func Resource(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[i+1:]
	}
	return ""
}

// SameBare reports whether two JIDs have the same bare JID. Local and domain parts
// compare case-insensitively: servers case-fold both (nodeprep, nameprep).
func SameBare(a, b string) bool { return strings.EqualFold(Bare(a), Bare(b)) }

// Occupant returns room/nick.
func Occupant(room, nick string) string { return room + "/" + nick }

// ParseStamp reads an XEP-0082 timestamp (with or without fractional seconds).
func ParseStamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stanza: bad timestamp %q: %w", s, err)
	}
	return t, nil
}

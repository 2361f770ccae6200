package stanza

import (
	"slices"
	"strconv"
	"strings"
)

// Namespaces of the relations a message can carry (issue 23).
const (
	NSCorrect      = "urn:xmpp:message-correct:0"  // XEP-0308
	NSFallback     = "urn:xmpp:fallback:0"         // XEP-0428
	NSReactions    = "urn:xmpp:reactions:0"        // XEP-0444
	NSRetract0     = "urn:xmpp:message-retract:0"  // XEP-0424 v0.3 (slixmpp 1.8.3, inside apply-to)
	NSRetract1     = "urn:xmpp:message-retract:1"  // XEP-0424 v0.4
	NSFasten       = "urn:xmpp:fasten:0"           // XEP-0422, XEP-0424 v0.3's wrapper
	NSModerate0    = "urn:xmpp:message-moderate:0" // XEP-0425 v0.2
	NSModerate1    = "urn:xmpp:message-moderate:1" // XEP-0425 v0.3
	NSOOB          = "jabber:x:oob"                // XEP-0066
	NSSFS          = "urn:xmpp:sfs:0"              // XEP-0447
	NSFileMeta     = "urn:xmpp:file:metadata:0"    // XEP-0446
	NSURLData      = "http://jabber.org/protocol/url-data"
	NSOccupantID   = "urn:xmpp:occupant-id:0" // XEP-0421
	NSHints        = "urn:xmpp:hints"
	maxReactions   = 64
	maxAttachments = 16
)

// Relations are what a message says about other messages, as its sender
// wrote them: the ids are the sender's words (an origin-id, a message id or
// the room's stanza-id), which the room maps to the target's BackendMsgID
// (actors/room's relations). ParseMessage reads them the same for a live
// message and an archived one. A plain message has the zero value.
type Relations struct {
	// Replace: XEP-0308 <replace id/>, the id of the message this corrects.
	Replace string
	// ReplyTo, ReplyID: XEP-0461 <reply to id/> (HasReply: the element is there).
	ReplyTo, ReplyID string
	HasReply         bool
	// ReactTo, Reactions: XEP-0444 <reactions id><reaction/>…</reactions>, the
	// full set the sender now holds on ReactTo (none: all withdrawn).
	ReactTo      string
	Reactions    []string
	HasReactions bool
	// Retract: XEP-0424, the id of the sender's message it retracts (v0.3's
	// <apply-to id><retract/></apply-to> or v0.4's <retract id/>).
	Retract string
	// Moderation: XEP-0425, a moderator's retraction, as the room sends it
	// (only the room's own message counts: see the room's relations).
	Moderation *Moderation
	// Attachments: XEP-0066 OOB and XEP-0447 stateless file sharing.
	Attachments []Attachment
	// Fallbacks: XEP-0428 <fallback/> elements.
	Fallbacks []Fallback
	// OccupantID: the XEP-0421 <occupant-id/> (the room adds it; a sender's
	// own is stripped by a server that supports it).
	OccupantID string
}

// Moderation is an XEP-0425 moderator retraction.
type Moderation struct {
	Target string // the retracted message's stanza-id
	By     string // the moderator's occupant JID, as the room says
	Reason string
}

// Attachment is a file shared as a link.
type Attachment struct {
	URL       string
	Desc      string
	Name      string
	MediaType string
	Size      int64
}

// Fallback is an XEP-0428 <fallback for/>: the ranges of the body, in
// Unicode code points, that are there only for clients that don't understand
// For; no range means the whole body.
type Fallback struct {
	For    string
	Ranges [][2]int
}

// IsZero reports whether r holds no relation at all (a plain message's).
func (r Relations) IsZero() bool {
	return r.Replace == "" && !r.HasReply && !r.HasReactions && r.Retract == "" && r.Moderation == nil && len(r.Attachments) == 0
}

// TargetIDs returns the ids r's relations name, as the sender wrote them
// (none for a plain message or one with attachments only).
func (r Relations) TargetIDs() []string {
	var ids []string
	for _, id := range []string{r.Replace, r.ReplyID, r.ReactTo, r.Retract} {
		if id != "" {
			ids = append(ids, id)
		}
	}
	if r.Moderation != nil && r.Moderation.Target != "" {
		ids = append(ids, r.Moderation.Target)
	}
	return ids
}

// parseRelations reads e's relations. Every element is read by its namespace
// and name; anything else is left out.
func parseRelations(e *Element) Relations {
	var r Relations
	if c := e.Child(NSCorrect, "replace"); c != nil {
		r.Replace = c.Attribute("id")
	}
	if c := e.Child(NSReply, "reply"); c != nil {
		r.ReplyTo, r.ReplyID, r.HasReply = c.Attribute("to"), c.Attribute("id"), c.Attribute("id") != ""
	}
	if c := e.Child(NSReactions, "reactions"); c != nil && c.Attribute("id") != "" {
		r.ReactTo, r.HasReactions = c.Attribute("id"), true
		for _, x := range c.All(NSReactions, "reaction") {
			v := strings.TrimSpace(x.Text)
			if v != "" && !slices.Contains(r.Reactions, v) && len(r.Reactions) < maxReactions {
				r.Reactions = append(r.Reactions, v)
			}
		}
	}
	if c := e.Child(NSRetract1, "retract"); c != nil {
		if m := c.Child(NSModerate1, "moderated"); m != nil {
			r.Moderation = &Moderation{Target: c.Attribute("id"), By: m.Attribute("by"), Reason: text(c.Child(NSRetract1, "reason"))}
		} else {
			r.Retract = c.Attribute("id")
		}
	}
	if a := e.Child(NSFasten, "apply-to"); a != nil && a.Attribute("id") != "" {
		switch {
		case a.Child(NSRetract0, "retract") != nil:
			r.Retract = a.Attribute("id")
		case a.Child(NSModerate0, "moderated") != nil:
			m := a.Child(NSModerate0, "moderated")
			if m.Child(NSRetract0, "retract") != nil {
				r.Moderation = &Moderation{Target: a.Attribute("id"), By: m.Attribute("by"), Reason: text(m.Child(NSModerate0, "reason"))}
			}
		}
	}
	if r.Moderation != nil && r.Moderation.Target == "" {
		r.Moderation = nil
	}
	for _, x := range e.All(NSOOB, "x") {
		if u := strings.TrimSpace(text(x.Child(NSOOB, "url"))); u != "" && len(r.Attachments) < maxAttachments {
			r.Attachments = append(r.Attachments, Attachment{URL: u, Desc: text(x.Child(NSOOB, "desc"))})
		}
	}
	for _, f := range e.All(NSSFS, "file-sharing") {
		a := Attachment{}
		if m := f.Child(NSFileMeta, "file"); m != nil {
			a.Name, a.MediaType, a.Desc = text(m.Child(NSFileMeta, "name")), text(m.Child(NSFileMeta, "media-type")), text(m.Child(NSFileMeta, "desc"))
			if n, err := strconv.ParseInt(strings.TrimSpace(text(m.Child(NSFileMeta, "size"))), 10, 64); err == nil && n >= 0 {
				a.Size = n
			}
		}
		if s := f.Child(NSSFS, "sources"); s != nil {
			if u := s.Child(NSURLData, "url-data"); u != nil {
				a.URL = strings.TrimSpace(u.Attribute("target"))
			}
		}
		if a.URL != "" && len(r.Attachments) < maxAttachments {
			r.Attachments = append(r.Attachments, a)
		}
	}
	for _, f := range e.All(NSFallback, "fallback") {
		fb := Fallback{For: f.Attribute("for")}
		for _, b := range f.All(NSFallback, "body") {
			start, err1 := strconv.Atoi(b.Attribute("start"))
			end, err2 := strconv.Atoi(b.Attribute("end"))
			if err1 != nil || err2 != nil {
				fb.Ranges = append(fb.Ranges, [2]int{-1, -1}) // unreadable: the fallback is ignored
				continue
			}
			fb.Ranges = append(fb.Ranges, [2]int{start, end})
		}
		r.Fallbacks = append(r.Fallbacks, fb)
	}
	if o := e.Child(NSOccupantID, "occupant-id"); o != nil {
		r.OccupantID = o.Attribute("id")
	}
	return r
}

func text(e *Element) string {
	if e == nil {
		return ""
	}
	return e.Text
}

// StripFallback returns body without the ranges the fallbacks for any of
// namespaces mark (XEP-0428; ranges count Unicode code points). A fallback
// whose ranges are unreadable, out of the body or overlapping is ignored: the
// body stays whole rather than losing text it may not mark.
func StripFallback(body string, fbs []Fallback, namespaces ...string) string {
	runes := []rune(body)
	var cut [][2]int
	for _, f := range fbs {
		if !slices.Contains(namespaces, f.For) {
			continue
		}
		if len(f.Ranges) == 0 {
			return "" // the whole body is the fallback
		}
		ok := true
		for _, rg := range f.Ranges {
			if rg[0] < 0 || rg[0] > rg[1] || rg[1] > len(runes) {
				ok = false
			}
		}
		if ok {
			cut = append(cut, f.Ranges...)
		}
	}
	if len(cut) == 0 {
		return body
	}
	slices.SortFunc(cut, func(a, b [2]int) int { return a[0] - b[0] })
	var b strings.Builder
	pos := 0
	for _, rg := range cut {
		if rg[0] < pos {
			return body // overlapping ranges: not trusted
		}
		b.WriteString(string(runes[pos:rg[0]]))
		pos = rg[1]
	}
	b.WriteString(string(runes[pos:]))
	return b.String()
}

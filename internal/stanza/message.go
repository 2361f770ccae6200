package stanza

import (
	"slices"
	"strings"
	"time"

	"github.com/parley-go/parley-xmpp/seam"
)

// SeamMessage builds a seam message from a room message, live or archived, so
// both paths agree on every field: the id and cursor are the room's stanza-id
// (which is the archive id), the sender is the occupant nick (the room's bare
// JID when the room itself speaks), the origin-id is the sender's (XEP-0359,
// "" without one), and a missing stamp is now.
func SeamMessage(topic seam.Topic, room, from, body, id, origin string, stamp time.Time) seam.Message {
	sender := Resource(from)
	if sender == "" {
		sender = Bare(room) // the room itself speaking
	}
	if stamp.IsZero() {
		stamp = time.Now()
	}
	return seam.Message{
		Topic:        topic,
		SenderHandle: seam.Handle(sender),
		Content:      body,
		Timestamp:    stamp.UTC(),
		BackendMsgID: seam.BackendMsgID(id),
		Cursor:       seam.Cursor(id),
		Mentions:     seam.ParseMentions(body),
		OriginID:     origin,
	}
}

// Seam is the seam message a room's live groupchat message stands for: the
// room's stanza-id, stamped now (a live message carries no stamp the runtime
// can trust: see ParseMessage).
func (m Message) Seam(topic seam.Topic, room string) seam.Message {
	return SeamMessage(topic, room, m.From, m.Body, m.StanzaID.ID, m.OriginID, time.Time{})
}

// Seam is the seam message an archived row stands for: the archive id, the
// archive's stamp.
func (r *MAMResult) Seam(topic seam.Topic, room string) seam.Message {
	return SeamMessage(topic, room, r.Message.From, r.Message.Body, r.ID, r.Message.OriginID, r.Message.Stamp)
}

// Sender is who sent a message, as far as the room can tell: the nick, the
// XEP-0421 occupant-id (where the server adds one), the bare real JID (where
// the room shows it).
type Sender struct{ Nick, OccupantID, JID string }

// Same reports whether a and b are the same occupant: by occupant-id where
// both have one (and by real JID too where both have that), else by real JID
// where both have one, else by nick.
func (a Sender) Same(b Sender) bool {
	if a.JID != "" && b.JID != "" && !strings.EqualFold(a.JID, b.JID) {
		return false
	}
	switch {
	case a.OccupantID != "" && b.OccupantID != "":
		return a.OccupantID == b.OccupantID
	case a.JID != "" && b.JID != "":
		return true
	}
	return a.Nick != "" && a.Nick == b.Nick
}

// Targets finds the message a relation names. by nil: any sender's message
// whose BackendMsgID is id, or, failing that, the only one whose sender's id
// (its id attribute or origin-id) is id; by non-nil: a message by the same
// occupant (Sender.Same) whose BackendMsgID or sender's id is id.
type Targets interface {
	Find(id string, by *Sender) (seam.BackendMsgID, bool)
}

// Relation kinds, as Apply reports them.
const (
	RelNone       = ""
	RelReply      = "reply"
	RelCorrection = "correction"
	RelRetraction = "retraction"
	RelModeration = "moderation"
	RelReactions  = "reactions"
)

// Apply gives m (a seam message built by Seam, Content the whole body) the
// relations rel carries, with each target mapped through t, and Content
// without the fallbacks of the relations honoured. It is the one function
// both the live path and the archive path use. from is the message's sender
// (Nick "" for the room itself). unmatched names a relation that was not
// honoured (its target unknown, or not the sender's): m is then delivered as
// a plain message, its body whole.
func Apply(m seam.Message, body string, rel Relations, from Sender, t Targets) (out seam.Message, unmatched string) {
	for _, a := range rel.Attachments {
		m.Attachments = append(m.Attachments, seam.Attachment{URL: a.URL, Name: a.Name, MediaType: a.MediaType, Size: a.Size, Desc: a.Desc})
	}
	content := func(c string) {
		m.Content, m.Mentions = c, seam.ParseMentions(c)
	}
	switch {
	case rel.Moderation != nil:
		if from.Nick != "" {
			return m, RelModeration // only the room itself moderates
		}
		id, ok := t.Find(rel.Moderation.Target, nil)
		if !ok || id != seam.BackendMsgID(rel.Moderation.Target) {
			return m, RelModeration // a moderation names the room's own id
		}
		m.Retracts, m.Moderated = id, true
		content("")
		return m, RelNone
	case rel.Retract != "":
		id, ok := t.Find(rel.Retract, &from)
		if !ok || from.Nick == "" {
			return m, RelRetraction
		}
		m.Retracts = id
		content("")
		return m, RelNone
	case rel.HasReactions:
		id, ok := t.Find(rel.ReactTo, nil)
		if !ok || from.Nick == "" {
			return m, RelReactions
		}
		m.ReactsTo, m.Reactions = id, slices.Clone(rel.Reactions)
		content("")
		return m, RelNone
	}
	if rel.Replace != "" {
		id, ok := t.Find(rel.Replace, &from)
		if !ok || from.Nick == "" {
			return m, RelCorrection
		}
		m.Replaces = id
	}
	if rel.HasReply {
		id, ok := t.Find(rel.ReplyID, nil)
		if !ok {
			if m.Replaces != "" {
				m.Replaces = "" // one relation not honoured: the message is plain
			}
			return m, RelReply
		}
		m.InReplyTo = id
		content(StripFallback(body, rel.Fallbacks, NSReply))
	}
	return m, RelNone
}

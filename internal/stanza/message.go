package stanza

import (
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

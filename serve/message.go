package serve

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/parley-go/parley-xmpp/seam"
)

// Message is the JSON shape of a message given to sinks (and printed by the
// command).
type Message struct {
	Topic     string    `json:"topic"`
	ID        string    `json:"id"`
	Cursor    string    `json:"cursor"`
	Sender    string    `json:"sender"`
	Timestamp time.Time `json:"timestamp"`
	Content   string    `json:"content"`
	Mentions  []string  `json:"mentions,omitempty"`
	// The relations (seam.Message's godoc), each left out when empty: a
	// plain message's line is what it was before they existed.
	InReplyTo   string       `json:"in_reply_to,omitempty"`
	Replaces    string       `json:"replaces,omitempty"`
	Retracts    string       `json:"retracts,omitempty"`
	Moderated   bool         `json:"moderated,omitempty"`
	ReactsTo    string       `json:"reacts_to,omitempty"`
	Reactions   *[]string    `json:"reactions,omitempty"` // present (maybe empty: all withdrawn) with reacts_to
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Attachment is the JSON shape of a seam.Attachment.
type Attachment struct {
	URL       string `json:"url"`
	Name      string `json:"name,omitempty"`
	MediaType string `json:"media_type,omitempty"`
	Size      int64  `json:"size,omitempty"`
	Desc      string `json:"desc,omitempty"`
}

// Encode gives m its JSON shape.
func Encode(m seam.Message) Message {
	ts := m.Timestamp.UTC()
	if ts.Year() < 0 || ts.Year() > 9999 {
		ts = time.Time{} // JSON (RFC 3339) can't write it; the timestamp is informational
	}
	out := Message{
		Topic:     string(m.Topic),
		ID:        string(m.BackendMsgID),
		Cursor:    string(m.Cursor),
		Sender:    string(m.SenderHandle),
		Timestamp: ts,
		Content:   m.Content,
	}
	for _, h := range m.Mentions {
		out.Mentions = append(out.Mentions, string(h))
	}
	out.InReplyTo, out.Replaces, out.Retracts, out.Moderated = string(m.InReplyTo), string(m.Replaces), string(m.Retracts), m.Moderated
	if m.ReactsTo != "" {
		out.ReactsTo = string(m.ReactsTo)
		r := append([]string{}, m.Reactions...)
		out.Reactions = &r
	}
	for _, a := range m.Attachments {
		out.Attachments = append(out.Attachments, Attachment{URL: a.URL, Name: a.Name, MediaType: a.MediaType, Size: a.Size, Desc: a.Desc})
	}
	return out
}

// marshalLine is m as one line of JSON, newline included. HTML characters stay
// as they are: the lines are read by programs and people, not browsers.
func marshalLine(m seam.Message) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(Encode(m)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

package serve

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/parley-go/parley-xmpp/seam"
)

// Message is the JSON shape of a message given to sinks (and printed by the
// command). Every field but the relations and dead_letter is always present:
// mentions is [] when there are none.
type Message struct {
	Topic     string    `json:"topic"`
	ID        string    `json:"id"`
	Cursor    string    `json:"cursor"`
	Sender    string    `json:"sender"`
	Timestamp time.Time `json:"timestamp"`
	Content   string    `json:"content"`
	Mentions  []string  `json:"mentions"`
	// The relations (seam.Message's godoc), each left out when empty: a
	// plain message's line is what it was before they existed.
	InReplyTo   string       `json:"in_reply_to,omitempty"`
	Replaces    string       `json:"replaces,omitempty"`
	Retracts    string       `json:"retracts,omitempty"`
	Moderated   bool         `json:"moderated,omitempty"`
	ReactsTo    string       `json:"reacts_to,omitempty"`
	Reactions   *[]string    `json:"reactions,omitempty"` // present (maybe empty: all withdrawn) with reacts_to
	Attachments []Attachment `json:"attachments,omitempty"`
	// DeadLetter is set on what a dead-letter sink receives: why the route
	// gave up on the message.
	DeadLetter *DeadLetter `json:"dead_letter,omitempty"`
}

// Attachment is the JSON shape of a seam.Attachment.
type Attachment struct {
	URL       string `json:"url"`
	Name      string `json:"name,omitempty"`
	MediaType string `json:"media_type,omitempty"`
	Size      int64  `json:"size,omitempty"`
	Desc      string `json:"desc,omitempty"`
}

// DeadLetter says why a route handed a message to its dead-letter sink.
type DeadLetter struct {
	Route    string `json:"route"`
	Reason   string `json:"reason"`   // refused (for good) or max_attempts
	Attempts int    `json:"attempts"` // at the route's sink
	Error    string `json:"error"`    // the sink's last error
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
		Mentions:  make([]string, 0, len(m.Mentions)),
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
func marshalLine(m seam.Message) ([]byte, error) { return marshal(Encode(m)) }

// marshalDeadLetter is m as a dead-letter sink receives it.
func marshalDeadLetter(m seam.Message, why DeadLetter) ([]byte, error) {
	out := Encode(m)
	out.DeadLetter = &why
	return marshal(out)
}

func marshal(m Message) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

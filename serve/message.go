package serve

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/parley-go/parley-xmpp/seam"
)

// Message is the JSON shape of a message given to sinks (and printed by the
// command). Every field is always present: mentions is [] when there are none.
type Message struct {
	Topic     string    `json:"topic"`
	ID        string    `json:"id"`
	Cursor    string    `json:"cursor"`
	Sender    string    `json:"sender"`
	Timestamp time.Time `json:"timestamp"`
	Content   string    `json:"content"`
	Mentions  []string  `json:"mentions"`
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

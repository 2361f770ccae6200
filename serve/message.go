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
	// DeadLetter is set on what a dead-letter sink receives: why the route
	// gave up on the message.
	DeadLetter *DeadLetter `json:"dead_letter,omitempty"`
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

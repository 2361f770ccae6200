package room

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/seam"
)

// Requests the runtime sends a room (through the session's ToRoom).
type (
	// Post sends a message and answers *Posted when the room reflects it.
	Post struct {
		Content   string
		InReplyTo seam.BackendMsgID
	}
	// Posted answers Post with the reflection's stanza-id.
	Posted struct {
		ID  seam.BackendMsgID
		Err error
	}

	// Fetch reads the topic (seam.FetchRecentArgs without the topic). Answer:
	// *archive.Result.
	Fetch struct {
		Since *seam.Cursor
		Limit int
		Block time.Duration

		until time.Time // when the Block budget ends, counted from arrival
	}

	// Subscribe adds a subscriber. Answer: *Subscribed.
	Subscribe struct{ Handler seam.Handler }
	// Subscribed answers Subscribe: the subscriber actor and its gate.
	Subscribed struct {
		PID  *actor.PID
		Gate *subscriber.Gate
		Err  error
	}
)

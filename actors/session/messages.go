package session

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/seam"
)

// Requests the runtime sends the session.
type (
	// Connect dials and logs in. Answer: *Connected.
	Connect struct{}
	// Connected answers Connect.
	Connected struct{ Err error }
	// AbortConnect gives up a login in progress (its callers' contexts ended).
	AbortConnect struct{}

	// Disconnect stops every room, closes the stream and answers *Disconnected once
	// the connection's goroutines have ended.
	Disconnect struct{}
	// Disconnected answers Disconnect.
	Disconnected struct{}

	// ToRoom hands Msg to the actor of room (spawning it on first use); the room
	// answers the original sender.
	ToRoom struct {
		Room  string // bare JID
		Topic seam.Topic
		Msg   any
	}
)

// Requests the session serves for its rooms and archives.
type (
	// Send writes a stanza. Nothing answers: a stanza that can't be written means
	// the link is gone, which the session reports to every room as LinkDown.
	Send struct{ Stanza []byte }

	// IQ sends an IQ stanza whose id is ID and answers *IQResult with the matching
	// result or error, or a timeout. When QueryID is set the session also collects
	// the MAM <result/>s that To sends for that query id and hands them over with
	// the final answer.
	IQ struct {
		ID      string
		To      string // bare JID the answer must come from; "" for the user's own server
		Stanza  []byte
		QueryID string
		Timeout time.Duration
	}
	// IQResult answers IQ. Err is set on timeout or a lost link; a stanza-level
	// error is in IQ.Error.
	IQResult struct {
		ID  string // the request's ID
		IQ  stanza.IQ
		MAM []stanza.MAMResult
		Err error
	}
)

// Notices the session sends its rooms.
type (
	// LinkDown: the connection is gone; occupancy and pending answers with it.
	LinkDown struct{ Err error }
)

// RoomSpec is what the session passes to the room factory.
type RoomSpec struct {
	JID     string
	Topic   seam.Topic
	Session *actor.PID
}

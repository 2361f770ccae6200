package session

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/seam"
)

// Requests the runtime sends the session.
type (
	// Connect dials and logs in. Answer: *Connected, once online.
	Connect struct{}
	// Connected answers Connect.
	Connected struct{ Err error }
	// AbortConnect gives up a login in progress (its callers' contexts ended).
	AbortConnect struct{}

	// Disconnect stops every room and subscriber, closes the stream, and answers
	// *Disconnected once the connection's goroutines have ended.
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
	// result or error, or a timeout. When QueryID is set (a MAM query), each
	// <result/> that To sends for that query id goes to the sender as a *MAMRow,
	// before the answer: send it with ctx.Request (not a future), so the rows and
	// the answer arrive in order at the actor that collects them.
	IQ struct {
		ID      string
		To      string // the JID the answer must come from; "" for the user's own server
		Stanza  []byte
		QueryID string
		Timeout time.Duration
	}
	// IQResult answers IQ. Err is set on a timeout or a lost link (errors.Is
	// ErrLinkLost); a stanza-level error is in IQ.Error.
	IQResult struct {
		ID string // the request's ID
		IQ stanza.IQ
		// MAM is never set by the session: the archive that collected the
		// query's rows (MAMRow) files them here before reading the answer.
		MAM []stanza.MAMResult
		Err error
	}
	// MAMRow is one MAM <result/> for the query QueryID, from the archive that
	// was asked; Row.ID is "" when the row was unreadable.
	MAMRow struct {
		QueryID string
		Row     stanza.MAMResult
	}

	// SpawnSubscriber spawns a subscriber actor as the session's child, so it
	// outlives a restart of the room that asked. Answer: *actor.PID.
	SpawnSubscriber struct{ Props *actor.Props }
)

// Notices the session sends its rooms.
type (
	// LinkDown: the connection is gone; occupancy and pending answers with it.
	// GaveUp: reconnecting stopped; what waits on the link fails with Err.
	LinkDown struct {
		Err    error
		GaveUp bool
	}
	// LinkUp: a new connection is logged in; rooms rejoin and replay. Every
	// room answers *RejoinTurn (rejoin.go).
	LinkUp struct{ Link Link }
	// LinkResumed: the lost link was resumed (XEP-0198 stream management):
	// the same link, the same session on the server, the room's occupancy
	// kept; no LinkDown or LinkUp came, and none follows.
	LinkResumed struct{}
	// Closing: the runtime is disconnecting; the room stops next.
	Closing struct{}
)

// RoomSpec is what the session passes to the room factory.
type RoomSpec struct {
	JID     string
	Topic   seam.Topic
	Session *actor.PID
	// Online: whether the link is up as the room starts; afterwards the room
	// follows LinkDown and LinkUp.
	Online bool
	// Link is the link's writer when Online.
	Link Link
}

// Link writes stanzas to the connection: Send queues one for the connection's
// writer without blocking. xmppconn.ErrStanzaTooLarge and ErrSendQueueFull mean
// nothing was queued and the link is fine; any other error means the link is
// gone (LinkDown follows).
// Rooms write their own stanzas through it, which spares every post a pass
// through the session's mailbox; IQs, which the session correlates, still go
// through the session.
type Link interface {
	Send(stanza []byte) error
	// SendFenced is Send for a stanza that may be written only while fence
	// answers nil: the writer calls it immediately before the write, and drops
	// the stanza when it answers an error (a fenced post whose owner's lease
	// ended while it waited in the queue). fence must be quick and must not
	// block: it runs on the connection's writer.
	SendFenced(stanza []byte, fence func() error) error
	// MaxStanza is the largest stanza Send takes, in bytes.
	MaxStanza() int
}

// Package observe is how the runtime reports what it does, for metrics: small
// interfaces with no dependency on a metrics library, so the runtime stays
// free of one. Package metrics implements them with Prometheus.
//
// Implementations must be safe for concurrent use and quick: the actors call
// them on their hot paths (a Room's MessageIn once per message fanned out).
package observe

import "github.com/parley-go/parley-xmpp/internal/vocab"

// State is the connection's state (runtime.State: one type, declared in the
// runtime's vocabulary).
type State = vocab.State

// The connection states.
const (
	Connecting   = vocab.Connecting
	Online       = vocab.Online
	Reconnecting = vocab.Reconnecting
	Closed       = vocab.Closed
)

// Metrics receives a runtime's measurements.
type Metrics interface {
	// ConnectionState: the connection entered state s (Connecting, Online,
	// Reconnecting or Closed).
	ConnectionState(s State)
	// Reconnected: a lost link was re-established.
	Reconnected()
	// Room returns the measurements of one topic's room, bound once per room.
	Room(topic string) Room
}

// Room receives one room's measurements.
type Room interface {
	// Joined: the room's occupancy was gained (true) or lost (false).
	Joined(bool)
	// MessageIn: a message was fanned out to the room's subscribers and waiters.
	MessageIn()
	// MessageOut: a post resolved with its id.
	MessageOut()
	// Replayed: n messages were read back from the archive after a rejoin or a
	// gap in the live stream.
	Replayed(n int)
	// PendingPosts: n posts wait for their reflection.
	PendingPosts(n int)
	// SubscriberQueue: n messages wait, in all, in the room's subscribers'
	// queues.
	SubscriberQueue(n int)
	// Filtered: n deliveries were withheld: messages from senders outside the
	// topic's allowlist, counted once per subscriber or read they were kept
	// from.
	Filtered(n int)
}

// GapRecorder is an optional interface of a Room: HistoryGap is called when
// the room's replay found that the archive no longer holds its cursor
// (expired, or the room was recreated), so messages in between may be lost,
// and when a lagging subscriber skipped messages the room fanned out because
// the archive never supplied them (once per subscriber)
// (runtime.RoomHistoryGap). A Room without it is not told.
type GapRecorder interface {
	HistoryGap()
}

// RelationRecorder is an optional interface of a Room: UnmatchedRelation is
// called when a message's relation (kind: reply, correction, retraction,
// moderation, reactions) was not honoured, its target unknown or not the
// sender's to change, and the message was delivered as a plain one (issue
// 23). Once per message while the room remembers it: the live path and
// archive reads of the same message count it once.
type RelationRecorder interface {
	UnmatchedRelation(kind string)
}

// RelationKinds are every kind UnmatchedRelation is told.
var RelationKinds = []string{"reply", "correction", "retraction", "moderation", "reactions"}

// RowDropper is an optional interface of a Room: ArchiveRowsDropped is called
// when an archive read dropped n rows the server sent again (an id repeated in
// the read, or the read's own cursor): ejabberd sometimes answers the same row
// more than once in one MAM page. A Room without it is not told.
type RowDropper interface {
	ArchiveRowsDropped(n int)
}

// StreamManager is an optional interface of Metrics (XEP-0198 stream
// management): Resumed is called when a lost link was resumed (the rooms kept
// their occupancy: no rejoin, no replay), after Reconnected, which counts
// every re-established link; UnackedStanzas with the number of stanzas sent that the server
// has not acknowledged yet, kept for a resumption, whenever it changes (from
// the connection's goroutines). Metrics without it are not told.
type StreamManager interface {
	Resumed()
	UnackedStanzas(n int)
}

// InboundSkipper is an optional interface of Metrics: InboundSkipped is called
// for each element the connection read and passed over (not a stanza the
// runtime handles, a request it could not answer), by kind: one of
// SkippedKinds, never a string from the stream.
type InboundSkipper interface {
	InboundSkipped(kind string)
}

// The kinds of inbound elements passed over (InboundSkipper). None of them
// ends the link.
const (
	// SkipUnknown: a top-level element that is no jabber:client stanza (a
	// stream-management <r/>, an unknown extension).
	SkipUnknown = "unknown-element"
	// SkipOversized: a stanza over the element-tree limits, read and dropped.
	SkipOversized = "oversized-tree"
	// SkipReplyDropped: a ping, version or disco request came while the send
	// queue was full; it went unanswered.
	SkipReplyDropped = "reply-dropped"
	// SkipPrivate: a message that is neither a room's groupchat message nor an
	// error (a chat or headline message: a stranger's pubsub event, an
	// occupant's private message).
	SkipPrivate = "private-message"
	// SkipUnrouted: a message or presence from no room the runtime is in.
	SkipUnrouted = "unrouted"
)

// SkippedKinds are every kind InboundSkipped is told.
var SkippedKinds = []string{SkipUnknown, SkipOversized, SkipReplyDropped, SkipPrivate, SkipUnrouted}

// OwnershipRecorder is an optional interface of a Room: RoomNotOwned is called
// when a full join found the topic's room owned by another account (the room
// gave this account another affiliation than owner: squatting)
// (runtime.RoomNotOwned). A Room without it is not told.
type OwnershipRecorder interface {
	RoomNotOwned()
}

// Nop discards everything.
type Nop struct{}

func (Nop) ConnectionState(State) {}
func (Nop) Reconnected()          {}
func (Nop) Room(string) Room      { return NopRoom{} }

// NopRoom discards a room's measurements.
type NopRoom struct{}

// HistoryGap implements GapRecorder.
func (NopRoom) HistoryGap() {}

// UnmatchedRelation implements RelationRecorder.
func (NopRoom) UnmatchedRelation(string) {}

// ArchiveRowsDropped implements RowDropper.
func (NopRoom) ArchiveRowsDropped(int) {}

// RoomNotOwned implements OwnershipRecorder.
func (NopRoom) RoomNotOwned() {}

func (NopRoom) Joined(bool)         {}
func (NopRoom) MessageIn()          {}
func (NopRoom) MessageOut()         {}
func (NopRoom) Replayed(int)        {}
func (NopRoom) PendingPosts(int)    {}
func (NopRoom) SubscriberQueue(int) {}
func (NopRoom) Filtered(int)        {}

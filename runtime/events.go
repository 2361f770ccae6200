package runtime

import "github.com/parley-go/parley-xmpp/internal/vocab"

// The runtime's vocabulary is declared once, in internal/vocab, which the
// actors speak: these are the same types and values under the runtime's
// names, so nothing maps one to the other.

// State is the connection's state: Connecting, Online, Reconnecting, Closed.
type State = vocab.State

// The connection's states.
const (
	// Connecting: the first login is in progress (and the state before the
	// first Connect).
	Connecting = vocab.Connecting
	// Online: logged in.
	Online = vocab.Online
	// Reconnecting: the link was lost; the runtime is dialing again with
	// backoff.
	Reconnecting = vocab.Reconnecting
	// Closed: Disconnect was called, or reconnecting gave up (StateChange.Err).
	Closed = vocab.Closed
)

// StateChange is what Config.OnStateChange receives.
type StateChange = vocab.StateChange

// RoomEventKind says what happened to a room.
type RoomEventKind = vocab.RoomEventKind

// The kinds of RoomEvent.
const (
	// RoomRejoined: the room was joined again after a lost link or a removal,
	// and what was missed meanwhile was replayed from the archive.
	RoomRejoined = vocab.RoomRejoined
	// RoomRemoved: the room removed this connection (a kick, the room's
	// destruction, a silent removal found by self-ping); the runtime rejoins
	// with backoff.
	RoomRemoved = vocab.RoomRemoved
	// RoomBanned: the room banned this connection; the runtime does not rejoin,
	// and what waited on the room failed with RoomEvent.Err.
	RoomBanned = vocab.RoomBanned
	// RoomHistoryGap: the archive no longer knows the room's replay cursor
	// (expired, or the room was destroyed and created anew); the replay
	// restarted from the archive's start, and messages in between may be lost.
	// Or: a lagging subscriber skipped messages the room fanned out because
	// the archive never supplied them within Config.ArchiveWait (Err wraps
	// ErrArchiveGap); RoomEvent.Skipped names them.
	RoomHistoryGap = vocab.RoomHistoryGap
	// RoomReplayFailed: reading what was missed failed; the runtime retries.
	RoomReplayFailed = vocab.RoomReplayFailed
	// RoomRejoinFailed: joining again after a lost link or a removal failed (a
	// destroyed room, say); the runtime retries with backoff while something
	// waits on the room.
	RoomRejoinFailed = vocab.RoomRejoinFailed
	// RoomSubscriberLagging: a subscriber's queue filled up; it catches up from
	// the archive, without loss or duplicates.
	RoomSubscriberLagging = vocab.RoomSubscriberLagging
	// RoomSubscriberPanicked: a handler panicked; its subscription continues.
	RoomSubscriberPanicked = vocab.RoomSubscriberPanicked
	// RoomFailed: the room actor failed too often and was stopped; what waited
	// on it failed, and its subscriptions ended.
	RoomFailed = vocab.RoomFailed
	// RoomNotOwned: the topic's room, which the runtime expected to create,
	// already existed, and it gave this account an affiliation other than
	// owner (RoomEvent.Affiliation): another account created it first and
	// controls it (squatting: docs/security.md). The runtime uses the room as it
	// is; Err wraps ErrRoomNotOwned. Reported once until a join finds this
	// account the owner again; the metric parley_xmpp_rooms_not_owned_total
	// counts it.
	RoomNotOwned = vocab.RoomNotOwned
	// RoomSubjectChanged: the room's subject is RoomEvent.Subject, set by
	// RoomEvent.By (an occupant's nick; "" for the room itself, or where the
	// room doesn't say), and it differs from the one last reported for the
	// room: a change made while the runtime is in the room, or the subject a
	// join shows. So the first join reports the room's subject (if it has
	// one), a rejoin only one changed while the runtime was away, and setting
	// the same subject again reports nothing.
	RoomSubjectChanged = vocab.RoomSubjectChanged
	// RoomResumed: the lost link was resumed (XEP-0198 stream management,
	// stream_management): the server kept the session and the room's
	// occupancy, and delivered what the link had missed; the room was not
	// joined again and nothing was read from the archive. A link that could
	// not be resumed (the server restarted, the resumption timed out) recovers
	// in full: RoomRejoined.
	RoomResumed = vocab.RoomResumed
)

// RoomEvent is what Config.OnRoomEvent receives: something that happened to a
// topic's room.
type RoomEvent = vocab.RoomEvent

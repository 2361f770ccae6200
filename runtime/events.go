package runtime

import (
	"fmt"
	"time"

	"github.com/parley-go/parley-xmpp/actors/room"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
)

// State is the connection's state: Connecting, Online, Reconnecting, Closed.
type State int

// The connection's states.
const (
	// Connecting: the first login is in progress (and the state before the
	// first Connect).
	Connecting State = iota
	// Online: logged in.
	Online
	// Reconnecting: the link was lost; the runtime is dialing again with
	// backoff.
	Reconnecting
	// Closed: Disconnect was called, or reconnecting gave up (StateChange.Err).
	Closed
)

// metricStates maps the states to the metrics' (whose names they share).
var metricStates = map[State]observe.State{Connecting: observe.Connecting, Online: observe.Online, Reconnecting: observe.Reconnecting, Closed: observe.Closed}

func (s State) String() string {
	if m, ok := metricStates[s]; ok {
		return m.String()
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// StateChange is what Config.OnStateChange receives.
type StateChange struct {
	From, To State
	// Err: why the link was lost (to Reconnecting), why a login attempt failed
	// (Reconnecting to Reconnecting), or why reconnecting gave up (to Closed).
	Err error
	// Attempt counts the login attempts of this outage (1 is the first).
	Attempt int
	// RetryIn: to Reconnecting, how long until the next login attempt (0:
	// at once, as after a link that was up for a while).
	RetryIn time.Duration
	At      time.Time
}

// RoomEventKind says what happened to a room.
type RoomEventKind int

// The kinds of RoomEvent.
const (
	// RoomRejoined: the room was joined again after a lost link or a removal,
	// and what was missed meanwhile was replayed from the archive.
	RoomRejoined RoomEventKind = iota
	// RoomRemoved: the room removed this connection (a kick, the room's
	// destruction, a silent removal found by self-ping); the runtime rejoins
	// with backoff.
	RoomRemoved
	// RoomBanned: the room banned this connection; the runtime does not rejoin,
	// and what waited on the room failed with RoomEvent.Err.
	RoomBanned
	// RoomHistoryGap: the archive no longer knows the room's replay cursor
	// (expired, or the room was destroyed and created anew); the replay
	// restarted from the archive's start, and messages in between may be lost.
	// Or: a lagging subscriber skipped messages the room fanned out because
	// the archive never supplied them within Config.ArchiveWait (Err wraps
	// ErrArchiveGap); RoomEvent.Skipped names them.
	RoomHistoryGap
	// RoomReplayFailed: reading what was missed failed; the runtime retries.
	RoomReplayFailed
	// RoomRejoinFailed: joining again after a lost link or a removal failed (a
	// destroyed room, say); the runtime retries with backoff while something
	// waits on the room.
	RoomRejoinFailed
	// RoomSubscriberLagging: a subscriber's queue filled up; it catches up from
	// the archive, without loss or duplicates.
	RoomSubscriberLagging
	// RoomSubscriberPanicked: a handler panicked; its subscription continues.
	RoomSubscriberPanicked
	// RoomFailed: the room actor failed too often and was stopped; what waited
	// on it failed, and its subscriptions ended.
	RoomFailed
	// RoomNotOwned: the topic's room, which the runtime expected to create,
	// already existed, and it gave this account an affiliation other than
	// owner (RoomEvent.Affiliation): another account created it first and
	// controls it (squatting: docs/security.md). The runtime uses the room as it
	// is; Err wraps ErrRoomNotOwned. Reported once until a join finds this
	// account the owner again; the metric parley_xmpp_rooms_not_owned_total
	// counts it.
	RoomNotOwned
	// RoomSubjectChanged: the room's subject is RoomEvent.Subject, set by
	// RoomEvent.By (an occupant's nick; "" for the room itself, or where the
	// room doesn't say), and it differs from the one last reported for the
	// room: a change made while the runtime is in the room, or the subject a
	// join shows. So the first join reports the room's subject (if it has
	// one), a rejoin only one changed while the runtime was away, and setting
	// the same subject again reports nothing.
	RoomSubjectChanged
	// RoomResumed: the lost link was resumed (XEP-0198 stream management,
	// stream_management): the server kept the session and the room's
	// occupancy, and delivered what the link had missed; the room was not
	// joined again and nothing was read from the archive. A link that could
	// not be resumed (the server restarted, the resumption timed out) recovers
	// in full: RoomRejoined.
	RoomResumed
)

func (k RoomEventKind) String() string {
	switch k {
	case RoomRejoined:
		return "rejoined"
	case RoomRemoved:
		return "removed"
	case RoomBanned:
		return "banned"
	case RoomHistoryGap:
		return "history-gap"
	case RoomReplayFailed:
		return "replay-failed"
	case RoomRejoinFailed:
		return "rejoin-failed"
	case RoomSubscriberLagging:
		return "subscriber-lagging"
	case RoomSubscriberPanicked:
		return "subscriber-panicked"
	case RoomFailed:
		return "failed"
	case RoomNotOwned:
		return "not-owned"
	case RoomSubjectChanged:
		return "subject-changed"
	case RoomResumed:
		return "resumed"
	}
	return fmt.Sprintf("RoomEventKind(%d)", int(k))
}

// RoomEvent is what Config.OnRoomEvent receives: something that happened to a
// topic's room.
type RoomEvent struct {
	Topic seam.Topic
	Room  string // the room's bare JID
	Kind  RoomEventKind
	Err   error
	// Skipped: for a RoomHistoryGap of a lagging subscriber, the ids of the
	// messages it never got, oldest first (those the room still knew of).
	Skipped []seam.BackendMsgID
	// Affiliation: for RoomNotOwned, this account's affiliation in the room
	// (admin, member, none).
	Affiliation string
	// Subject and By: for RoomSubjectChanged, the new subject and the nick of
	// who set it.
	Subject, By string
	At          time.Time
}

// The actors' types become the runtime's here, by name: neither side depends
// on the other's numbering.

func stateOf(s session.State) State {
	switch s {
	case session.Online:
		return Online
	case session.Reconnecting:
		return Reconnecting
	case session.Closed:
		return Closed
	default:
		return Connecting
	}
}

func stateChangeOf(c session.StateChange) StateChange {
	return StateChange{From: stateOf(c.From), To: stateOf(c.To), Err: c.Err, Attempt: c.Attempt, RetryIn: c.RetryIn, At: c.At}
}

var roomEventKinds = map[room.EventKind]RoomEventKind{
	room.Rejoined:           RoomRejoined,
	room.Removed:            RoomRemoved,
	room.Banned:             RoomBanned,
	room.HistoryGap:         RoomHistoryGap,
	room.ReplayFailed:       RoomReplayFailed,
	room.RejoinFailed:       RoomRejoinFailed,
	room.SubscriberLagging:  RoomSubscriberLagging,
	room.SubscriberPanicked: RoomSubscriberPanicked,
	room.Failed:             RoomFailed,
	room.NotOwned:           RoomNotOwned,
	room.SubjectChanged:     RoomSubjectChanged,
	room.Resumed:            RoomResumed,
}

func roomEventOf(e room.Event) RoomEvent {
	kind, ok := roomEventKinds[e.Kind]
	if !ok {
		kind = RoomEventKind(-1 - int(e.Kind)) // a kind the runtime doesn't know yet: String shows it
	}
	return RoomEvent{Topic: e.Topic, Room: e.Room, Kind: kind, Err: e.Err, Skipped: e.Skipped, Affiliation: e.Affiliation, Subject: e.Subject, By: e.By, At: e.At}
}

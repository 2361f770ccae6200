package runtime

import (
	"github.com/parley-go/parley-xmpp/actors/room"
	"github.com/parley-go/parley-xmpp/actors/session"
)

// State is the connection's state: Connecting, Online, Reconnecting, Closed.
type State = session.State

// The connection's states.
const (
	Connecting   = session.Connecting
	Online       = session.Online
	Reconnecting = session.Reconnecting
	Closed       = session.Closed
)

// StateChange is what Config.OnStateChange receives.
type StateChange = session.StateChange

// RoomEvent is what Config.OnRoomEvent receives; RoomEventKind says what
// happened.
type (
	RoomEvent     = room.Event
	RoomEventKind = room.EventKind
)

// The kinds of RoomEvent.
const (
	RoomRejoined           = room.Rejoined
	RoomRemoved            = room.Removed
	RoomBanned             = room.Banned
	RoomHistoryGap         = room.HistoryGap
	RoomReplayFailed       = room.ReplayFailed
	RoomRejoinFailed       = room.RejoinFailed
	RoomSubscriberLagging  = room.SubscriberLagging
	RoomSubscriberPanicked = room.SubscriberPanicked
	RoomFailed             = room.Failed
)

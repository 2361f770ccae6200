// Package vocab is the runtime's vocabulary, declared once: the connection's
// State and StateChange, a room's RoomEvent and its kinds, and the sentinel
// errors. The actors speak it, package observe and package runtime re-export
// it (runtime.State is vocab.State), and nothing maps one to another. It
// imports nothing of the project but seam.
package vocab

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

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

func (s State) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Online:
		return "online"
	case Reconnecting:
		return "reconnecting"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// StateChange is a change of the connection's State (runtime.Config.OnStateChange).
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

// The kinds of RoomEvent, in the order the runtime declared them (package
// runtime documents each).
const (
	RoomRejoined RoomEventKind = iota
	RoomRemoved
	RoomBanned
	RoomHistoryGap
	RoomReplayFailed
	RoomRejoinFailed
	RoomSubscriberLagging
	RoomSubscriberPanicked
	RoomFailed
	RoomNotOwned
	RoomSubjectChanged
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

// RoomEvent is something that happened to a topic's room
// (runtime.Config.OnRoomEvent).
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

// Allowlist admits the messages of the senders it names: occupant nicks, or
// bare real JIDs where the room shows them (a non-anonymous room, or to a
// moderator). A room with one delivers the other senders' messages to nobody
// (subscribers, reads, long-polls), counts them (observe.Room.Filtered), and
// moves every position past them, so no reader is held up. A nick is only as
// good as the room's nick policy (in an open room anyone may take a nick that
// is free); a JID is the server's word.
type Allowlist struct {
	Nicks []string // exact
	JIDs  []string // bare, compared case-insensitively
}

// Check says what is wrong with the allowlist, if anything.
func (a Allowlist) Check() error {
	if len(a.Nicks) == 0 && len(a.JIDs) == 0 {
		return errors.New("an allowlist without nicks or JIDs would withhold every message")
	}
	for _, n := range a.Nicks {
		if n == "" || strings.TrimSpace(n) != n || strings.ContainsAny(n, "/\t\n") {
			return fmt.Errorf("nick %q can't be a nick (empty, surrounding spaces, or a '/')", n)
		}
	}
	for _, j := range a.JIDs {
		local, domain, ok := strings.Cut(j, "@")
		if !ok || local == "" || domain == "" || strings.ContainsAny(j, "/ \t\n") {
			return fmt.Errorf("JID %q is not a bare JID (user@domain)", j)
		}
	}
	return nil
}

// DialPlan is how the runtime logs in: where, with which TLS policy, as whom
// (runtime.ProbeConfig shows it to parley-xmpp doctor, which logs in the same
// way).
type DialPlan struct {
	Addr           string // host:port
	DirectTLS      bool   // TLS from the first byte (xmpps://)
	RequireTLS     bool   // STARTTLS, or no login
	AllowPlaintext bool   // the password may go over an unencrypted stream (a loopback server, or Config.AllowPlaintext)
	TLSConfig      *tls.Config
	// User is the account's bare JID; Resource the one the login asks for.
	User, Password, Resource string
	DialTimeout              time.Duration
	MaxStanzaBytes           int // outbound
	MaxInboundBytes          int
	DisableStreamManagement  bool
}

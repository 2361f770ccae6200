package room

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/seam"
)

// Requests the runtime sends a room (through the session's ToRoom).
type (
	// Post sends a message and answers *Posted when the room reflects it (or
	// when a replay after a lost link finds it in the archive).
	Post struct {
		Origin    string // the XEP-0359 origin-id, chosen by the caller
		Content   string
		InReplyTo seam.BackendMsgID
		// OnceAfter, when set, makes the post idempotent: if the archive already
		// holds a message with this origin-id after *OnceAfter ("" for the
		// start), that message's id is the answer and nothing is sent.
		OnceAfter *seam.Cursor
		// Fence, when set, is asked immediately before each write of the post
		// (by the room, and again by the link's writer): an error and the post
		// is not written; the room fails it with ErrFenced (refused by the
		// writer, it goes unreflected and times out). It must be quick and
		// must not block. A cluster node passes its lease's local validity, so
		// that a post queued before a pause (SIGSTOP) is not written after
		// another node took over.
		Fence func() error
		// Replaces, Retracts, ReactsTo: the post is a relation instead
		// (issue 23): a correction (Content the new text) or a retraction of
		// one of this account's messages the room has seen, or reactions
		// (Reactions, the full set) to any message it has seen. Refused
		// with ErrUnknownTarget or ErrNotOwnMessage before anything is sent.
		Replaces, Retracts, ReactsTo seam.BackendMsgID
		Reactions                    []string

		act *stanza.Act // the relation, its target's ids resolved (ledger.add)
	}
	// Posted answers Post with the message's stanza-id.
	Posted struct {
		ID  seam.BackendMsgID
		Err error
	}

	// OwnID asks for the id of this account's message whose origin-id is
	// Origin, among the messages the room has seen. Answer: *OwnIDResult.
	OwnID struct{ Origin string }
	// OwnIDResult answers OwnID (Err: ErrUnknownTarget).
	OwnIDResult struct {
		ID  seam.BackendMsgID
		Err error
	}

	// CancelPost withdraws the Post with Origin whose caller gave up. Answer:
	// *PostFate: a post not yet sent never will be; one sent is no longer
	// resent after a lost link.
	CancelPost struct{ Origin string }
	// PostFate answers CancelPost.
	PostFate struct {
		Sent bool              // it was sent: it may land (or has)
		ID   seam.BackendMsgID // it has landed with this id
	}

	// Fetch reads the topic (seam.FetchRecentArgs without the topic). Answer:
	// *archive.Result.
	Fetch struct {
		Since *seam.Cursor
		Limit int
		Block time.Duration
		// Done, when closed, says the caller stopped waiting (its
		// ctx.Done()): the archive asks for no further page (archive.Query.Done).
		Done <-chan struct{}

		until time.Time // when the Block budget ends, counted from arrival
	}

	// Subscribe adds a subscriber. Answer: *Subscribed.
	Subscribe struct {
		Handler seam.Handler
		OnPanic func(seam.Message, any)
	}
	// Subscribed answers Subscribe: the subscriber actor, its gate, and the room
	// to tell when it is closed.
	Subscribed struct {
		PID  *actor.PID
		Gate *subscriber.Gate
		Room *actor.PID
		Err  error
	}
	// Unsubscribe drops a subscriber (its gate is already closed).
	Unsubscribe struct{ PID *actor.PID }

	// Fail makes the room actor fail as if it had a bug, to test supervision:
	// the room restarts with what it knows, and the failing message is answered
	// with an error, never retried.
	Fail struct{ Reason string }
)

// EventKind says what happened to a room.
type EventKind int

const (
	// Rejoined: the room was joined again after a lost link or a removal, and
	// what was missed meanwhile was replayed from the archive.
	Rejoined EventKind = iota
	// Removed: the room removed this connection (a kick, the room's destruction,
	// a silent removal found by self-ping); the runtime rejoins with backoff.
	Removed
	// Banned: the room banned this connection; the runtime does not rejoin, and
	// what waited on the room failed with Event.Err.
	Banned
	// HistoryGap: the archive no longer knows the room's replay cursor (expired,
	// or the room was destroyed and created anew); the replay restarted from the
	// archive's start, and messages in between may be lost.
	//
	// Or: a lagging subscriber skipped messages the room fanned out because the
	// archive never supplied them within Config.ArchiveWait (Err wraps
	// ErrArchiveGap); Skipped names them, where the room still knows them.
	HistoryGap
	// ReplayFailed: reading what was missed failed; the runtime retries.
	ReplayFailed
	// RejoinFailed: joining again after a lost link or a removal failed (a
	// destroyed room, say); the runtime retries with backoff while something
	// waits on the room.
	RejoinFailed
	// SubscriberLagging: a subscriber's queue filled up; it catches up from the
	// archive, without loss or duplicates.
	SubscriberLagging
	// SubscriberPanicked: a handler panicked; its subscription continues.
	SubscriberPanicked
	// Failed: the room actor failed too often and was stopped; what waited on
	// it failed, and its subscriptions ended.
	Failed
	// NotOwned: a full join found the topic's room already there, and the
	// room's own presence gave this account an affiliation other than owner
	// (Event.Affiliation): another account created the room first (squatting)
	// and controls it. The room is used as it is; Err wraps ErrNotOwned.
	NotOwned
	// SubjectChanged: the room's subject is Event.Subject, set by Event.By (an
	// occupant's nick; "" for the room itself, or where the room doesn't
	// say), and it differs from the one last reported: a change made while
	// the runtime is in the room, or the subject a join shows (the first
	// join: any subject set; a rejoin: only one changed meanwhile).
	SubjectChanged
	// Resumed: the lost link was resumed (XEP-0198): the server kept the
	// session, with the room's occupancy, and delivered what the link had
	// not; the room was not joined again and nothing was read from the
	// archive. A link that could not be resumed recovers in full (Rejoined).
	Resumed
)

func (k EventKind) String() string {
	switch k {
	case Rejoined:
		return "rejoined"
	case Removed:
		return "removed"
	case Banned:
		return "banned"
	case HistoryGap:
		return "history-gap"
	case ReplayFailed:
		return "replay-failed"
	case RejoinFailed:
		return "rejoin-failed"
	case SubscriberLagging:
		return "subscriber-lagging"
	case SubscriberPanicked:
		return "subscriber-panicked"
	case Failed:
		return "failed"
	case NotOwned:
		return "not-owned"
	case SubjectChanged:
		return "subject-changed"
	case Resumed:
		return "resumed"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event reports something that happened to a room, for embedders.
type Event struct {
	Topic seam.Topic
	Room  string
	Kind  EventKind
	Err   error
	// Skipped: a HistoryGap's messages that a subscriber never got, by id,
	// oldest first (those the room knows of).
	Skipped []seam.BackendMsgID
	// Affiliation: for NotOwned, the affiliation the room gave this account
	// (admin, member, none).
	Affiliation string
	// Subject and By: for SubjectChanged, the new subject and who set it.
	Subject, By string
	At          time.Time
}

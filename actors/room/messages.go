package room

import (
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

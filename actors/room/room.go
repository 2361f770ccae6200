// Package room is the room actor: one per MUC room, a child of the session. It
// owns the room's join state (the cold-creation race, the pinned-nick check,
// rejoining after a lost link or a removal), the posts waiting for their
// reflection (and their resending after a lost link), the room's subscribers
// and the ordered, flow-controlled fan-out to them, and the long-poll waiters of
// FetchRecent. Reads of the archive go to its child, the archive actor.
//
// Everything the room must keep lives in a state value that the room's props
// hand to every incarnation: when the actor fails and is restarted, its cursor,
// subscribers, queued requests and pending posts are intact, and only the work
// in flight is started again.
package room

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/internal/mailbox"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
)

// Errors a room answers with (besides seam's sentinels).
var (
	// ErrJoin: the room refused the join.
	ErrJoin = errors.New("room: join refused")
	// ErrJoinTimeout: the join didn't complete in time.
	ErrJoinTimeout = errors.New("room: join timed out")
	// ErrPostTimeout: no reflection came in time; the message may still land.
	ErrPostTimeout = errors.New("room: no reflection in time (the message may still have landed)")
	// ErrPostRefused: the room bounced the post with an error.
	ErrPostRefused = errors.New("room: post refused")
	// ErrNoStanzaID: the room reflected the post without an XEP-0359 stanza-id of
	// its own and the archive doesn't hold it either.
	ErrNoStanzaID = errors.New("room: reflection without the room's stanza-id")
	// ErrLeft: the room removed this connection while the request was in flight.
	ErrLeft = errors.New("room: no longer in the room")
	// ErrBanned: the room banned this connection.
	ErrBanned = errors.New("room: banned from the room")
	// ErrFailed: the room actor failed too often and was stopped.
	ErrFailed = errors.New("room: the room's actor failed and was stopped")
)

// NickConflictError: the pinned nick is in use by another connection. It
// satisfies errors.Is(err, seam.ErrNickConflict).
type NickConflictError struct{ Nick, Room string }

func (e *NickConflictError) Error() string {
	return fmt.Sprintf("nick %q is already in use in %s by another connection: give each concurrent session its own nick, or leave nick unset for a random one", e.Nick, e.Room)
}

// Is makes the error match seam.ErrNickConflict.
func (e *NickConflictError) Is(target error) bool { return target == seam.ErrNickConflict }

// Config configures a room actor.
type Config struct {
	JID     string // bare JID of the room
	Topic   seam.Topic
	Nick    string
	Pinned  bool // Nick was chosen by the user: another connection must not share it
	Session *actor.PID
	// Online: whether the session's link is up as the room starts.
	Online bool
	// Link, when set, is the link's writer as the room starts (else stanzas go
	// through the session).
	Link session.Link
	// Notify, when set, receives *Event.
	Notify *actor.PID
	Logger *slog.Logger

	IQTimeout   time.Duration
	JoinTimeout time.Duration // one join, cold-creation retries included
	PostTimeout time.Duration // a sent post's reflection, counted while the link is up
	// PostWindow bounds the posts on the wire (sent, not yet reflected); the
	// others wait in the room, in order [32].
	PostWindow   int
	DefaultLimit int
	MaxLimit     int
	PageSize     int
	// DedupWindow is how many recent ids the room remembers to drop a duplicate.
	DedupWindow int
	// SubscriberBuffer bounds the messages queued for one subscriber; a
	// subscriber that falls that far behind catches up from the archive.
	SubscriberBuffer int
	// SelfPing is the interval of XEP-0410 self-pings that find a silent removal
	// (0: none).
	SelfPing time.Duration
	// RejoinBackoff bounds the wait before rejoining after a removal.
	RejoinMin, RejoinMax time.Duration
	// MaxBuffered bounds the live messages held while the room catches up.
	MaxBuffered int
	// Metrics receives the room's measurements (nil: none).
	Metrics observe.Room
	// PersistentRooms: a room this runtime creates is configured persistent, with
	// archiving on where the server offers the choice, so its history outlives
	// its occupants. A server that refuses gets an instant room instead.
	PersistentRooms bool
	// Account is the bare JID the runtime logs in as: an archived message that
	// shows another real JID is never one of its posts.
	Account string
	// Allow, when set, delivers only its senders' messages (see Allowlist).
	Allow *Allowlist
}

// Room is the room actor. Its fields other than st are per incarnation.
type Room struct{ st *state }

// Props returns a room actor's props. Every incarnation of the actor gets the
// same state, so a restart keeps what the room knows.
func Props(cfg Config) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = 4096
	}
	if cfg.SubscriberBuffer <= 0 {
		cfg.SubscriberBuffer = 1024
	}
	if cfg.RejoinMin <= 0 {
		cfg.RejoinMin = 500 * time.Millisecond
	}
	if cfg.RejoinMax <= 0 {
		cfg.RejoinMax = time.Minute
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = 10000
	}
	if cfg.Metrics == nil {
		cfg.Metrics = observe.NopRoom{}
	}
	if cfg.IQTimeout <= 0 {
		cfg.IQTimeout = 30 * time.Second
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 50
	}
	if cfg.PostWindow <= 0 {
		cfg.PostWindow = 32
	}
	st := newState(cfg)
	st.allow = newAllowSet(cfg.Allow)
	return actor.PropsFromProducer(func() actor.Actor { return &Room{st: st} }, actor.WithMailbox(mailbox.Unbounded()))
}

// Receive handles one message.
func (r *Room) Receive(ctx actor.Context) {
	s := r.st
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.start(ctx)
	case *Post:
		s.onPost(ctx, m, ctx.Sender())
	case *CancelPost:
		ctx.Respond(s.cancelPost(m.Origin))
	case *Subscribe:
		s.whenJoined(ctx, m, ctx.Sender())
	case *Unsubscribe:
		s.unsubscribe(ctx, m.PID)
	case *Fetch:
		s.fetch(ctx, m, ctx.Sender())
	case *subscriber.Ack:
		s.onAck(ctx, m)
	case stanza.Presence:
		s.onPresence(ctx, m)
	case stanza.Message:
		s.onMessage(ctx, m)
	case stanza.IQ:
		s.onIQ(ctx, m)
	case *session.IQResult:
		s.onIQResult(ctx, m)
	case *session.LinkDown:
		s.linkDown(ctx, m.Err)
		if m.GaveUp {
			s.failWaiting(ctx, fmt.Errorf("%w: %w", seam.ErrNotConnected, m.Err))
		}
	case *session.LinkUp:
		s.link = m.Link
		s.linkUp(ctx)
	case *session.Closing:
		// From here the session decides what still goes out.
		s.closing, s.link = true, nil
	case *Fail:
		panic(m.Reason)
	case *timer:
		s.onTimer(ctx, m)
	case *actor.Stopping:
		s.stop(ctx)
	}
}

// start runs on every incarnation: the first sets up, a restart picks up the
// work that was in flight when the previous incarnation failed.
func (s *state) start(ctx actor.Context) {
	s.self = ctx.Self()
	s.archive = ctx.Spawn(archive.Props(archive.Config{
		Room: s.cfg.JID, Topic: s.cfg.Topic, Session: s.cfg.Session,
		IQTimeout: s.cfg.IQTimeout, PageSize: s.cfg.PageSize, Logger: s.log,
	}))
	if !s.started {
		s.started = true
		return
	}
	s.log.Warn("room restarted after a failure; resuming")
	s.epoch++ // answers to the previous incarnation's requests are stale
	switch s.phase {
	case checking, joining, verifying, settling:
		rejoining := s.rejoining
		s.startJoin(ctx)
		s.rejoining = rejoining
	case joined:
		if s.catchingUp {
			s.readGap(ctx)
		}
		for _, w := range s.waiters {
			if !w.archiveDone {
				s.readForWaiter(ctx, w)
			}
		}
		for _, sub := range s.subs {
			if sub.reading {
				sub.reading = false
				s.feedLagging(ctx, sub)
			}
		}
		s.armSelfPing(ctx)
	}
}

// stop answers everything still waiting: the runtime is disconnecting, or the
// room failed too often.
func (s *state) stop(ctx actor.Context) {
	err := error(seam.ErrDisconnected)
	if !s.closing {
		err = ErrFailed
		s.notify(ctx, Failed, err)
	}
	for _, sub := range s.subs {
		sub.gate.Close()
		ctx.Stop(sub.pid)
	}
	s.subs = nil
	s.failWaiting(ctx, err)
	s.stopTimers()
}

// failWaiting answers every request that waits on the room or the link with err
// (a post in flight: it may still have landed).
func (s *state) failWaiting(ctx actor.Context, err error) {
	for _, q := range append(s.queued, s.awaitingLink...) {
		answerErr(ctx, q.msg, q.sender, err)
	}
	s.queued, s.awaitingLink = nil, nil
	s.failPending(ctx, err)
}

func (s *state) notify(ctx actor.Context, kind EventKind, err error) {
	if g, ok := s.cfg.Metrics.(observe.GapRecorder); ok && kind == HistoryGap {
		g.HistoryGap()
	}
	if s.cfg.Notify != nil {
		ctx.Send(s.cfg.Notify, &Event{Topic: s.cfg.Topic, Room: s.cfg.JID, Kind: kind, Err: err, At: time.Now()})
	}
}

func answerErr(ctx actor.Context, m any, to *actor.PID, err error) {
	switch m.(type) {
	case *Post:
		ctx.Send(to, &Posted{Err: err})
	case *Subscribe:
		ctx.Send(to, &Subscribed{Err: err})
	case *Fetch:
		ctx.Send(to, &archive.Result{Err: err})
	}
}

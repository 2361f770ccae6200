// Package room is the room actor: one per MUC room, a child of the session. It
// joins the room and stays in it, sends the runtime's posts and resolves each
// exactly once, fans the room's messages out in archive order to its
// subscribers, and answers FetchRecent, blocking or not. Reads of the archive go
// to its child, the archive actor.
//
// # Machines
//
// The room is four machines and a router. Each machine is a type in its own
// file, owns its state, and has one phase enum (per machine, or per item it
// tracks), never a set of booleans:
//
//   - occupancy (occupancy.go): being in the room. Join, the pinned-nick checks
//     (disco#items before, the self-addressed probe after), cold creation and
//     the persistent configuration, settling (the archive's tail on a first
//     join, a replay of what was missed on a rejoin), removal, self-ping,
//     rejoin with backoff (after a reconnect in the session's turn, and lean:
//     the first join's checks are reused, startRejoin), and the requests
//     queued until the room is joined.
//     Phase: idle, checking, joining, verifying, settling, replaying, joined.
//   - the post ledger (ledger.go): origin-id -> pending post and its caller,
//     the window of posts on the wire, resends after a lost link, in-doubt
//     answers, poison strikes, PostOnce's archive lookup, CancelPost. Phase per
//     post: new, looking, waiting, sent, in doubt.
//   - fan-out (fanout.go, allow.go, lagging.go, lagring.go): the archive
//     position (last), the deduplication ring, the catch-up with its buffer of
//     held-back live messages, the subscribers with their acknowledgements, the
//     lagging ones fed from the ring of recent messages and shared archive
//     pages, and the allowlist. Phase: unplaced, streaming, catchingUp; per
//     subscriber: live, lagging, feeding, stalled; per page: reading, ready.
//   - reads (reads.go): plain reads (which wait for the link, never for the
//     room) and long-polls. Phase per long-poll: reading, listening, stalled.
//     The archive decides every NextCursor of an archive read; the room passes
//     it through.
//
// The router (room.go) is Receive: it hands each message to the machine it is
// for, and runs the turning points every machine hears of (a join done or
// failed, a removal, the link going down or up, a stop). state.go holds what
// the machines share: the configuration, the link's writer and its outbox, the
// timers, and the epoch, the staleness token: it bumps whenever work in flight
// becomes stale (a lost link, a new join, a restart), every request records
// the epoch it was asked in, and an answer from an older epoch is dropped.
// Each machine points back to that shared state (its field s) for those
// services; where a machine needs another's fact (the ledger sends only while
// the occupancy is joined) it reads it there, and what changes several machines
// at once lives in room.go.
//
// # One reply style
//
// Every asynchronous answer comes back as a message to Receive, carrying the
// token of its request: an IQ's answer is a *session.IQResult with the IQ's id
// (occupancy matches it against the ids it keeps); an archive read's answer is
// an *archiveAnswer carrying its *read (which says which machine asked, why,
// and in which epoch); the archive's tail is a *tailAnswer, a spawned
// subscriber a *spawned; a timer is a *timer. There are no continuations
// (ReenterAfter) in the room. Messages, because an answer must keep its place
// in the mailbox behind what the session routed to the room before it: the
// pinned-nick probe is decided by whether the probe itself arrived before its
// answer, and a read that fails with a lost link must be seen after the
// LinkDown that explains it. A ReenterAfter continuation is a system message
// and would jump the queue. A request to another actor is sent with a one-shot
// reply token of the runtime's as its sender (state.ask, internal/ask), which
// turns the answer into the room's message; no goroutine waits on it.
//
// # A post's path
//
// Runtime.Post asks the session, which hands a *Post to the room
// (session.ToRoom). Receive -> ledger.onPost (a duplicate origin-id is
// refused) -> occupancy.whenJoined (queued and a join started, unless joined)
// -> dispatch -> ledger.add (PostOnce first reads the archive: lookFor) ->
// ledger.transmit (into ready) -> ledger.pump (while the window has room) ->
// ledger.sendPost -> state.send -> the link's writer (or the outbox, when its
// queue is full). The reflection comes back as a stanza.Message: Receive ->
// onMessage -> fanout.onLive -> deliver -> ledger.resolve -> *Posted to the
// caller, and pump sends the next waiting post.
//
// # A live message's path
//
// The session routes the room's groupchat message here. Receive -> onMessage
// (without the room's stanza-id, fanout.startCatchUp reads the archive
// instead) -> fanout.onLive (held in buffered while catching up) -> deliver:
// fanout.advance drops a duplicate and moves last; fanout.admits applies the
// allowlist (withheld: every position moves past it); fanout.toSubscribers
// sends one *subscriber.Deliver, shared, to each live subscriber whose queue
// has space (a full one turns lagging and is fed from the ring, else from
// shared archive pages: feedLagging); reads.offer answers the listening
// long-polls.
//
// # Restarts
//
// Everything the room must keep lives in a state value that the room's props
// hand to every incarnation: when the actor fails and is restarted, its cursor,
// subscribers, queued requests and pending posts are intact, and only the work
// in flight is started again (start).
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
	"github.com/parley-go/parley-xmpp/internal/ask"
	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/internal/mailbox"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/internal/xmppconn"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
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
	// Replies is where the answers to the room's requests come back: the
	// runtime's, shared by its rooms (nil: the room registers one of its own).
	Replies *ask.Asker

	IQTimeout   time.Duration
	JoinTimeout time.Duration // one join, cold-creation retries included
	PostTimeout time.Duration // a sent post's reflection, counted while the link is up
	// PostWindow bounds the posts on the wire (sent, not yet reflected); the
	// others wait in the room, in order [defaults.PostWindow].
	PostWindow   int
	DefaultLimit int
	MaxLimit     int
	PageSize     int
	// DedupWindow is how many recent ids the room remembers to drop a duplicate
	// (as 64-bit hashes: 12 bytes an id, at most 65,535 ids).
	DedupWindow int
	// SubscriberBuffer bounds the messages queued for one subscriber; a
	// subscriber that falls that far behind catches up from the ring, else the
	// archive.
	SubscriberBuffer int
	// RingMessages and RingBytes bound the ring of recent messages a room holds
	// while a subscriber lags (count, and bytes of content) [defaults.RingMessages,
	// defaults.RingBytes].
	RingMessages, RingBytes int
	// ArchiveWait bounds how long a lagging subscriber waits for the archive to
	// supply messages the room fanned out before the room reports them skipped
	// [defaults.ArchiveWait].
	ArchiveWait time.Duration
	// SelfPing is the interval of XEP-0410 self-pings that find a silent removal
	// (0: none).
	SelfPing time.Duration
	// RejoinBackoff bounds the wait before rejoining after a removal.
	RejoinMin, RejoinMax time.Duration
	// MaxBuffered bounds the live messages held while the room catches up.
	MaxBuffered int
	// TargetLookback bounds the archive rows read back, before a relation,
	// for a target the room has not seen [defaults.TargetLookback]
	// (relations.go).
	TargetLookback int
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
	Allow *vocab.Allowlist
}

// Room is the room actor: it routes each message to the machine it is for.
type Room struct{ st *state }

// Props returns a room actor's props. Every incarnation of the actor gets the
// same state, so a restart keeps what the room knows.
func Props(cfg Config) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = observe.NopRoom{}
	}
	defaults.MustBeSet(cfg, "IQTimeout", "JoinTimeout", "PostTimeout", "DefaultLimit", "MaxLimit", "PageSize",
		"DedupWindow", "SubscriberBuffer", "RejoinMin", "RejoinMax", "MaxBuffered", "TargetLookback",
		"PostWindow", "RingMessages", "RingBytes", "ArchiveWait")
	st := newState(cfg)
	return actor.PropsFromProducer(func() actor.Actor { return &Room{st: st} }, actor.WithMailbox(mailbox.Unbounded()))
}

// Receive routes one message to the machine it is for.
func (r *Room) Receive(ctx actor.Context) {
	s := r.st
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.start(ctx)
	case *Post:
		s.ledger.onPost(ctx, m, ctx.Sender())
	case *CancelPost:
		if s.occ.withdraw(m.Origin) {
			ctx.Respond(&PostFate{})
		} else {
			ctx.Respond(s.ledger.cancel(m.Origin))
		}
	case *OwnID:
		ctx.Respond(s.ownID(m.Origin))
	case *Subscribe:
		s.occ.whenJoined(ctx, m, ctx.Sender())
	case *Unsubscribe:
		s.fan.unsubscribe(ctx, m.PID)
	case *Fetch:
		s.reads.fetch(ctx, m, ctx.Sender())
	case *subscriber.Ack:
		s.fan.onAck(ctx, m)
	case stanza.Presence:
		s.fan.trackOccupant(m)
		s.occ.onPresence(ctx, m)
	case stanza.Message:
		s.onMessage(ctx, m)
	case stanza.IQ:
		s.occ.onIQ(ctx, m)

	// Answers to the room's own requests, each carrying its request's token.
	case *session.IQResult:
		s.occ.onIQResult(ctx, m)
	case *archiveAnswer:
		s.onArchive(ctx, m)
	case *tailAnswer:
		s.occ.onTail(ctx, m)
	case *spawned:
		s.fan.onSpawned(ctx, m)
	case *timer:
		s.onTimer(ctx, m)

	case *session.LinkDown:
		s.linkDown(ctx, m.Err)
		if m.GaveUp {
			s.failWaiting(ctx, fmt.Errorf("%w: %w", seam.ErrNotConnected, m.Err))
		}
	case *session.LinkUp:
		s.wire.link = m.Link
		s.linkUp(ctx)
	case *session.LinkResumed:
		if s.life != closing {
			s.notify(ctx, vocab.RoomResumed, nil)
			s.afterResume(ctx)
		}
	case *session.RejoinGo:
		s.occ.onTurn(ctx)
	case *session.Closing:
		// From here the session decides what still goes out.
		s.life, s.wire.link = closing, nil
	case *Fail:
		panic(m.Reason)
	case *actor.Stopping:
		s.stop(ctx)
	}
}

// onArchive routes the archive's answer to the machine that asked, after the
// relations of its rows are applied (once the rows before a relation whose
// target the room doesn't know were read: relations.go) and the stamp rule
// learns from them.
func (s *state) onArchive(ctx actor.Context, a *archiveAnswer) {
	if a.read.purpose == readTargets {
		s.onTargets(ctx, a)
		return
	}
	if a.res.Err == nil {
		if !a.lookedBack {
			if before, ok := s.unknownTarget(a.res.Entries); ok {
				s.lookBack(ctx, before, a)
				return
			}
		}
		s.relateEntries(a.res)
		s.stamps.learn(a.res.Entries)
	}
	switch a.read.purpose {
	case readGap:
		s.fan.onGap(ctx, a.read, a.res)
	case readLagging:
		s.fan.onPage(ctx, a.read, a.res)
	case readLookup:
		s.ledger.onLookup(ctx, a.read, a.res)
	case readWaiter:
		s.reads.onWaiterRead(ctx, a.read, a.res)
	case readFetch:
		s.reads.onFetched(ctx, a.read, a.res)
	}
}

// dispatch serves a request that needed the room, now joined.
func (s *state) dispatch(ctx actor.Context, m any, sender *actor.PID) {
	switch m := m.(type) {
	case *Post:
		s.ledger.add(ctx, m, sender)
	case *Subscribe:
		s.fan.subscribe(ctx, m, sender)
	case *Fetch:
		s.reads.startWaiter(ctx, m, sender)
	}
}

// start runs on every incarnation: the first sets up, a restart picks up the
// work that was in flight when the previous incarnation failed.
func (s *state) start(ctx actor.Context) {
	s.self = ctx.Self()
	s.archive = ctx.Spawn(archive.Props(archive.Config{
		Room: s.cfg.JID, Topic: s.cfg.Topic, Session: s.cfg.Session,
		IQTimeout: s.cfg.IQTimeout, PageSize: s.cfg.PageSize, Logger: s.log,
		Metrics: s.cfg.Metrics, MaxResults: defaults.MaxMAMResults, MaxExtraPages: defaults.MaxArchiveExtraPages,
		MaxIdlePages: defaults.MaxArchiveIdlePages, MaxNonMessageRows: defaults.MaxArchiveNonMessageRows,
	}))
	if s.life == unstarted {
		s.life = running
		return
	}
	s.log.Warn("room restarted after a failure; resuming")
	s.epoch++ // answers to the previous incarnation's requests are stale
	switch s.occ.phase {
	case idle:
	case joined:
		if s.fan.stream == catchingUp {
			s.fan.readGap(ctx)
		}
		s.reads.resume(ctx, true)
		s.fan.linkLost() // the pages in flight are stale
		s.fan.feedAllLagging(ctx)
		s.occ.armSelfPing(ctx)
	default: // on the way in: join again
		kind := s.occ.kind
		s.occ.startJoin(ctx)
		s.occ.kind = kind
	}
}

// stop answers everything still waiting: the runtime is disconnecting, or the
// room failed too often.
func (s *state) stop(ctx actor.Context) {
	err := error(seam.ErrDisconnected)
	if s.life != closing {
		err = vocab.ErrRoomFailed
		s.notify(ctx, vocab.RoomFailed, err)
	}
	s.fan.stopAll(ctx)
	s.failWaiting(ctx, err)
	s.stopTimers()
}

// afterResume: the lost link was resumed (XEP-0198). The room stays joined,
// but the live stream after a resumption is not to be trusted for order:
// ejabberd's mod_stream_mgmt hands the session to the new stream while the
// old one can still be sent to, and routes what reached the old one in that
// window again when it ends (route_late_queue_after_resume,
// bounce_message_queue), after what the new stream was sent meanwhile. The
// 30-minute soak on ejabberd 23.01 saw it: messages delivered out of order
// after resumptions. So the room reads the archive after the last message it
// fanned out, holding the live ones back and dropping second copies, as for a
// reflection without an id: every message that came late was archived before
// the resumption, so the read has it. One archive query per room, no rejoin.
func (s *state) afterResume(ctx actor.Context) {
	switch {
	case s.fan.stream == streaming && s.occ.phase == joined:
		s.fan.startCatchUp(ctx)
	case s.fan.stream == catchingUp:
		s.fan.overflowed = true // the read in flight may predate the resumption: read again after it
	}
}

// ---- the live path ----

// onMessage takes a message the session routed here: an error (a bounce of one
// of our posts, if the room's own: see ledger.onBounce), or a groupchat message
// of the room.
func (s *state) onMessage(ctx actor.Context, m stanza.Message) {
	if m.Type == "error" {
		s.ledger.onBounce(ctx, m)
		return
	}
	if m.Type != "groupchat" || !stanza.SameBare(m.From, s.cfg.JID) {
		return // anything not from the room
	}
	if m.HasSubject && !m.HasBody && m.Rel.IsZero() {
		s.onSubject(ctx, m)
		return
	}
	if m.Body == "" && m.Rel.IsZero() {
		return // chat states, and the like
	}
	if p := s.occ.phase; p != settling && p != replaying && p != joined {
		return
	}
	nick := stanza.Resource(m.From)
	valid := m.StanzaID.ID != "" && stanza.SameBare(m.StanzaID.By, s.cfg.JID) && stanza.Resource(m.StanzaID.By) == ""
	if !valid {
		// No id of the room's own on it: the archive has the message with its
		// id; read everything after the last message fanned out, in order.
		if nick == s.occ.nick {
			s.ledger.answeredWithoutID(m.OriginID)
		}
		if s.occ.phase == joined {
			s.fan.startCatchUp(ctx)
		}
		return
	}
	// A live reflection shows no real JID; one from our own nick, while we
	// hold it, is our account's.
	l := live{msg: m.Seam(s.cfg.Topic, s.cfg.JID), origin: m.OriginID, ours: nick == s.occ.nick, jid: s.fan.occupants[nick]}
	from := stanza.Sender{Nick: nick, OccupantID: m.Rel.OccupantID, JID: l.jid}
	stamp, exact, readAfter := s.stamps.live(m.StanzaID.ID, m.Received)
	if s.targetUnseen(l.msg.BackendMsgID, m.Rel) {
		// A relation to a message older than the room's record: it goes out
		// from the archive, once the rows before it were read for its target
		// (onArchive); the held copy, should the archive not have it,
		// relates when it goes out (deliver).
		l.msg.Timestamp = stamp
		l.rel = &relation{id: m.ID, body: m.Body, rel: m.Rel, from: from}
		s.fan.fromArchive(ctx, l, 0)
		return
	}
	l.msg = s.relate(l.msg, m.ID, m.Body, m.Rel, from)
	l.msg.Timestamp = stamp
	if !exact {
		// Only the archive knows the server's stamp of it (stamps.go): it is
		// fanned out from the archive, with the stamp a read gives, and the
		// post it answers resolves then, when the room has fanned it out
		// (reads rely on that order).
		s.fan.fromArchive(ctx, l, readAfter)
		return
	}
	s.fan.onLive(ctx, l)
}

// deliver hands a message, in archive order, to the post waiting for it, every
// subscriber, and every long-poll. A message already fanned out is dropped; one
// the allowlist doesn't admit moves everyone's position past it.
func (s *state) deliver(ctx actor.Context, l live) {
	if l.origin != "" && l.ours {
		// A post's origin-id is random, or (PostOnce) a key derived with a
		// secret: a match from our own account is our post, whatever nick the
		// message shows (an earlier connection's, after a rejoin). A match from
		// another account is a forgery, or a collision: never our post.
		s.ledger.resolve(ctx, l.origin, l.msg.BackendMsgID)
	}
	if !s.fan.advance(&l) {
		return
	}
	if r := l.rel; r != nil {
		l.msg = s.relate(l.msg, r.id, r.body, r.rel, r.from)
	}
	if !s.fan.admits(l.msg.SenderHandle, l.jid) {
		if n := s.fan.withhold() + s.reads.withhold(l.msg); n > 0 {
			s.cfg.Metrics.Filtered(n)
		}
		return
	}
	s.cfg.Metrics.MessageIn()
	s.fan.toSubscribers(ctx, l.msg)
	s.reads.offer(ctx, l.msg)
}

// caughtUp: a catch-up read everything after the last message fanned out.
func (s *state) caughtUp(ctx actor.Context) {
	if s.occ.phase == replaying {
		s.joinDone(ctx)
		return
	}
	s.ledger.failUnanswered(ctx)
}

// ---- occupancy's turning points, which every machine hears of ----

// needsRoom: something waits on the room's occupancy, so a lost one is
// regained without waiting for the next request.
func (s *state) needsRoom() bool {
	return len(s.fan.subs) > 0 || len(s.ledger.posts) > 0 || len(s.occ.queued) > 0 || len(s.reads.waiters) > 0
}

// hasReplayAudience: someone would receive a replay (a subscriber, a post
// whose fate is in doubt, a long-poll waiting for the next message).
func (s *state) hasReplayAudience() bool {
	return len(s.fan.subs) > 0 || s.ledger.inDoubt() || s.reads.listening()
}

// joinDone: the join is complete; serve what waited for it.
func (s *state) joinDone(ctx actor.Context) {
	replayed := s.occ.joined()
	s.occ.giveTurn(ctx)
	s.cfg.Metrics.Joined(true)
	s.disarm(joinTimeout)
	if replayed {
		s.notify(ctx, vocab.RoomRejoined, nil)
	}
	s.ledger.resendInDoubt(ctx)
	s.reads.resume(ctx, false)
	s.fan.feedAllLagging(ctx)
	queued := s.occ.queued
	s.occ.queued = nil
	for _, q := range queued {
		s.dispatch(ctx, q.msg, q.sender)
	}
	s.occ.armSelfPing(ctx)
}

// failJoin answers every queued request with err and returns to idle; the next
// request tries again.
func (s *state) failJoin(ctx actor.Context, err error) {
	s.occ.failed(ctx, err)
	s.fan.release()
	s.occ.answerQueued(ctx, err)
	if errors.Is(err, vocab.ErrBanned) {
		s.failPending(ctx, err)
	}
}

// removed: the room dropped us (our own presence came back unavailable). A ban
// (affiliation outcast) ends it; anything else (a kick, the room's destruction,
// a forced nick change) is followed by a rejoin with backoff, and a replay.
func (s *state) removed(ctx actor.Context, p stanza.Presence) {
	s.leave(ctx)
	s.occ.forget()
	if p.Affiliation == "outcast" {
		err := fmt.Errorf("%w: %s", vocab.ErrBanned, s.cfg.JID)
		s.occ.banned = err
		s.log.Warn("banned from the room", slog.Any("err", err))
		s.notify(ctx, vocab.RoomBanned, err)
		s.failPending(ctx, err)
		s.occ.answerQueued(ctx, err)
		return
	}
	err := fmt.Errorf("%w: %s removed %q (kicked, or the room was destroyed)", vocab.ErrLeft, s.cfg.JID, s.occ.nick)
	s.log.Warn("removed from the room; rejoining", slog.Any("err", err))
	// A destroyed room may be made anew, with an archive of its own: the
	// replay must verify its cursor there, not trust what the old one showed.
	ctx.Send(s.archive, &archive.Forget{})
	s.notify(ctx, vocab.RoomRemoved, err)
	s.arm(ctx, s.occ.rejoinWait.NextBackOff(), rejoinNow)
}

// leave forgets the occupancy (the room or the link ended it) but keeps
// everything waiting on it: posts sent become in doubt, and the next join
// replays.
func (s *state) leave(ctx actor.Context) {
	s.occ.left()
	s.occ.giveTurn(ctx)
	s.epoch++
	s.fan.release()
	clear(s.fan.occupants) // the next join's presences tell them again
	for k := range s.timers {
		if k != rejoinNow {
			s.disarm(k)
		}
	}
	s.ledger.linkLost()
	s.wire.outbox = nil
	s.reads.linkLost()
	s.fan.linkLost()
}

func (s *state) linkDown(ctx actor.Context, err error) {
	s.ledger.serverEnded = xmppconn.EndedByServer(err)
	s.wire.state, s.wire.link = linkDown, nil
	if p := s.occ.phase; p != idle && p != joined {
		// The requests queued for the join keep waiting for the next link.
		s.disarm(joinTimeout)
	}
	s.leave(ctx)
	s.disarm(rejoinNow)
	s.log.Debug("link down", slog.Any("err", err))
}

func (s *state) linkUp(ctx actor.Context) {
	s.wire.state = linkUp
	s.reads.linkUp(ctx)
	s.occ.askTurn(ctx)
}

// failWaiting answers every request that waits on the room or the link with err
// (a post in flight: it may still have landed).
func (s *state) failWaiting(ctx actor.Context, err error) {
	s.occ.answerQueued(ctx, err)
	s.reads.failWaiting(ctx, err)
	s.failPending(ctx, err)
}

// failPending answers every pending post and long-poll with err; a post
// already sent also with seam.ErrPostInDoubt.
func (s *state) failPending(ctx actor.Context, err error) {
	s.ledger.failAll(ctx, err)
	s.reads.failAll(ctx, err)
}

func (s *state) notify(ctx actor.Context, kind vocab.RoomEventKind, err error) {
	s.event(ctx, kind, err, nil)
}

// event reports an event; skipped names the messages a HistoryGap skipped,
// where the room knows them.
func (s *state) event(ctx actor.Context, kind vocab.RoomEventKind, err error, skipped []seam.BackendMsgID) {
	if g, ok := s.cfg.Metrics.(observe.GapRecorder); ok && kind == vocab.RoomHistoryGap {
		g.HistoryGap()
	}
	s.sendEvent(ctx, &vocab.RoomEvent{Topic: s.cfg.Topic, Room: s.cfg.JID, Kind: kind, Err: err, Skipped: skipped, At: time.Now()})
}

func (s *state) sendEvent(ctx actor.Context, e *vocab.RoomEvent) {
	if s.cfg.Notify != nil {
		ctx.Send(s.cfg.Notify, e)
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

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
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/seam"
)

// Fan-out: the live path. Every message is fanned out once, in archive order:
// live reflections as they come, and, whenever the live stream can't be
// trusted to be complete (a reflection without the room's id, a rejoin after a
// lost link or a removal), everything after the last message fanned out, read
// from the archive, with the live messages that arrive meanwhile held back and
// deduplicated. Each subscriber's queue is bounded by acknowledgements; one
// that falls behind reads from the archive until it catches up. The
// allowlist withholds the other senders' messages from everyone.

// stream is where the fan-out's position in the archive is.
type stream int

const (
	unplaced   stream = iota // no position yet (until the first join reads the archive's tail)
	streaming                // live messages are fanned out as they come
	catchingUp               // reading the archive after last; live messages wait in buffered
)

type fanout struct {
	s      *state
	stream stream
	// last is the cursor of the last message fanned out.
	last       string
	recent     *idRing // the ids fanned out lately, to drop a second copy
	buffered   []live  // live messages held while the position is unplaced or catching up
	overflowed bool    // live messages were dropped from buffered: read the archive again
	// stampRead: a catch-up for messages held for their stamp is due (its
	// read not sent yet): more such messages join it (fromArchive).
	stampRead bool
	subs      []*sub
	unacked   int // messages waiting in all the subscribers' queues
	// ring holds the recent messages while a subscriber lags; pages, the
	// archive pages lagging subscribers read through, by the cursor read after
	// (see lagging.go).
	ring  *lagRing
	pages map[string]*lagPage
	kept  []*lagPage // pages nobody reads through, kept for the subscribers behind
	// allow: the senders whose messages are delivered (nil: all); occupants:
	// the real JIDs occupants' presences show, by nick (see trackOccupant).
	allow     *allowSet
	occupants map[string]string
}

type live struct {
	msg    seam.Message
	origin string // the message's origin-id
	jid    string // the sender's real JID, when the room shows it
	// ours: the message may be this runtime's account's (see fromAccount): only
	// then can its origin-id resolve a post.
	ours bool
	// rel: the relations of a message held while the archive is read for
	// their target, applied when it goes out (nil: applied already).
	rel *relation
}

// hold starts holding live messages back while the archive is read (a join
// settling).
func (f *fanout) hold() {
	if f.stream == streaming {
		f.stream = catchingUp
	}
	f.buffered, f.overflowed, f.stampRead = nil, false, false
}

// release stops a catch-up cut short (a failed join, a lost occupancy): what
// it held is read again by the next one.
func (f *fanout) release() {
	if f.stream == catchingUp {
		f.stream = streaming
	}
	f.buffered, f.stampRead = nil, false
}

// place fixes where a first occupancy starts in the archive: the newest live
// message seen while settling, else the tail. Nobody was waiting for those
// messages.
func (f *fanout) place(tail string) {
	f.last = tail
	if n := len(f.buffered); n > 0 {
		f.last = string(f.buffered[n-1].msg.Cursor)
		for _, l := range f.buffered {
			f.recent.add(string(l.msg.BackendMsgID))
		}
	}
	f.stream, f.buffered = streaming, nil
}

// onLive takes a live reflection that carries the room's id: fanned out now,
// or held while the archive is read.
func (f *fanout) onLive(ctx actor.Context, l live) {
	if f.stream != streaming {
		if len(f.buffered) >= f.s.cfg.MaxBuffered {
			// They are in the archive: read it again once this catch-up ends.
			f.buffered, f.overflowed = nil, true
		}
		f.buffered = append(f.buffered, l)
		return
	}
	f.s.deliver(ctx, l)
}

// fromArchive takes a live reflection whose server stamp only the archive
// knows: a catch-up reads it (and what follows), or, while one runs, reads
// again once it ends. It is held meanwhile like any live message, with its
// best-guess stamp: the archive's copy goes out instead when the read has it
// (advance drops the held one), the held one when the archive never stored
// it, so nothing the room saw is lost; and a first join still places it.
//
// The read is put off until the doubt around this second's boundary has
// passed (stamps.go: readAfter), so that one read serves every message held
// meanwhile: a busy room reads its archive about once a second for stamps,
// not once per message.
func (f *fanout) fromArchive(ctx actor.Context, l live, readAfter time.Duration) {
	switch {
	case f.stream == streaming && f.s.occ.phase == joined && readAfter <= 0:
		f.startCatchUp(ctx) // read after this message arrived: it holds it
	case f.stream == streaming && f.s.occ.phase == joined:
		f.stream, f.overflowed, f.stampRead = catchingUp, false, true
		f.s.arm(ctx, readAfter, gapRetry) // then readGap, after this message: it holds it
	case f.stream != streaming && !f.stampRead:
		f.overflowed = true // the read in flight may predate it: read again
	}
	f.onLive(ctx, l)
}

// holds reports whether the message with cursor c may be held, not yet
// fanned out: while a catch-up runs, anything not fanned out recently (a
// held live copy, one a full buffer dropped for the read to find, or one
// the catch-up reads). Wrong for a message the room will never fan out (one
// older than the dedup window, or from before the room's join: a reader
// taking a topic over); the long-polls it misleads are settled when the
// catch-up ends (reads.settle).
func (f *fanout) holds(c seam.Cursor) bool {
	return f.stream == catchingUp && !f.recent.has(string(c))
}

// advance records a message as fanned out; false: it already was.
func (f *fanout) advance(l *live) bool {
	if !f.recent.add(string(l.msg.BackendMsgID)) {
		return false
	}
	f.last = string(l.msg.Cursor)
	return true
}

// toSubscribers hands a message to every subscriber on the live path; one
// whose queue is full lags from here on.
func (f *fanout) toSubscribers(ctx actor.Context, msg seam.Message) {
	s := f.s
	var d *subscriber.Deliver
	for _, sub := range f.subs {
		if sub.phase != subLive {
			continue
		}
		if sub.unacked >= s.cfg.SubscriberBuffer {
			// Its queue is full: from here on it is fed from the ring and the
			// archive, after the last message it was sent, without loss or
			// duplicates (lagging.go).
			f.lag(ctx, sub)
			continue
		}
		if d == nil {
			d = &subscriber.Deliver{Msg: msg}
		}
		ctx.Send(sub.pid, d)
		sub.unacked++
		f.unacked++
		sub.cursor = f.last
	}
	if d != nil {
		s.cfg.Metrics.SubscriberQueue(f.unacked)
	}
	if f.ring.active {
		if d == nil {
			d = &subscriber.Deliver{Msg: msg}
		}
		f.ring.push(f.last, d)
	}
}

// startCatchUp reads what the live stream missed (a reflection without the
// room's id).
func (f *fanout) startCatchUp(ctx actor.Context) {
	if f.stream == catchingUp {
		return
	}
	f.stream, f.overflowed = catchingUp, false
	f.readGap(ctx)
}

// readGap reads the archive after the last message fanned out (onGap takes
// the answer).
func (f *fanout) readGap(ctx actor.Context) {
	f.stampRead = false
	since := seam.Cursor(f.last)
	// A lean rejoin's replay reads after the room's own position, trusted
	// (occupancy.startRejoin).
	trusted := f.s.occ.lean && f.s.occ.phase == replaying
	f.s.readArchive(ctx, &archive.Query{Since: &since, Limit: f.s.cfg.MaxLimit, Trusted: trusted}, &read{purpose: readGap})
}

func (f *fanout) onGap(ctx actor.Context, r *read, res *archive.Result) {
	s := f.s
	if r.epoch != s.epoch || f.stream != catchingUp {
		return
	}
	switch {
	case res.Err != nil && errors.Is(res.Err, vocab.ErrLinkLost):
		return // LinkDown follows; the rejoin reads again
	case res.Err != nil && errors.Is(res.Err, seam.ErrUnknownCursor):
		// The archive lost our place (expiry, or a room destroyed and made anew):
		// everything it still holds is after it. Say so: messages may be gone.
		s.log.Error("the archive no longer knows the room's cursor; replaying from its start", slog.Any("err", res.Err))
		s.notify(ctx, vocab.RoomHistoryGap, res.Err)
		s.occ.fallBack(ctx)
		f.last = ""
		f.readGap(ctx)
		return
	case res.Err != nil:
		s.log.Error("reading what was missed failed; retrying", slog.Any("err", res.Err))
		s.notify(ctx, vocab.RoomReplayFailed, res.Err)
		s.arm(ctx, time.Second, gapRetry)
		return
	}
	s.cfg.Metrics.Replayed(len(res.Entries))
	for _, e := range res.Entries {
		s.deliver(ctx, live{msg: e.Message, origin: e.OriginID, ours: s.fromAccount(e.RealJIDs), jid: stanza.SenderJID(e.RealJIDs)})
	}
	if len(res.Entries) == s.cfg.MaxLimit || f.overflowed {
		// More behind this page, or live messages were dropped from the buffer:
		// read on; the live ones wait in the buffer.
		f.overflowed = false
		f.readGap(ctx)
		return
	}
	f.stream = streaming
	buffered := f.buffered
	f.buffered = nil
	for _, l := range buffered {
		s.deliver(ctx, l)
	}
	s.reads.settle(ctx)
	s.caughtUp(ctx)
}

// ---- subscribers ----

// subscribe asks the session to spawn the subscriber (a subscriber outlives a
// restart of its room); onSpawned takes the answer.
func (f *fanout) subscribe(ctx actor.Context, m *Subscribe, sender *actor.PID) {
	s := f.s
	gate := &subscriber.Gate{}
	onPanic := func(msg seam.Message, r any) {
		if m.OnPanic != nil {
			m.OnPanic(msg, r)
		}
	}
	props := subscriber.Props(subscriber.Config{
		Handler: m.Handler, Gate: gate, Room: ctx.Self(), AckEvery: max(1, s.cfg.SubscriberBuffer/4),
		OnPanic: onPanic, Logger: s.log,
	})
	s.ask(ctx, s.cfg.Session, &session.SpawnSubscriber{Props: props}, 10*time.Second, func(res any, err error) any {
		pid, _ := res.(*actor.PID)
		return &spawned{gate: gate, sender: sender, pid: pid, err: err}
	})
}

func (f *fanout) onSpawned(ctx actor.Context, m *spawned) {
	if m.pid == nil {
		ctx.Send(m.sender, &Subscribed{Err: fmt.Errorf("%w: room: starting a subscriber: %v", vocab.ErrActorFailed, m.err)})
		return
	}
	f.subs = append(f.subs, &sub{pid: m.pid, gate: m.gate, cursor: f.last})
	ctx.Send(m.sender, &Subscribed{PID: m.pid, Gate: m.gate, Room: ctx.Self()})
}

func (f *fanout) unsubscribe(ctx actor.Context, pid *actor.PID) {
	for i, sub := range f.subs {
		if sub.pid.Equal(pid) {
			sub.gate.Close()
			ctx.Stop(pid)
			f.subs = append(f.subs[:i], f.subs[i+1:]...)
			if sub.page != nil {
				f.detach(sub)
			}
			f.lagEnded()
			f.unacked -= sub.unacked
			f.s.cfg.Metrics.SubscriberQueue(f.unacked)
			return
		}
	}
}

// stopAll closes and stops every subscriber (the room is stopping).
func (f *fanout) stopAll(ctx actor.Context) {
	for _, sub := range f.subs {
		sub.gate.Close()
		ctx.Stop(sub.pid)
	}
	f.subs = nil
}

func (f *fanout) onAck(ctx actor.Context, a *subscriber.Ack) {
	for _, sub := range f.subs {
		if sub.pid.Equal(a.Sub) {
			n := min(a.N, sub.unacked)
			sub.unacked -= n
			f.unacked -= n
			f.s.cfg.Metrics.SubscriberQueue(f.unacked)
			if sub.phase == subLagging && f.s.occ.phase == joined {
				f.feedLagging(ctx, sub)
			}
			return
		}
	}
}

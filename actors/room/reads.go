package room

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/seam"
)

// Reads. A plain read needs no occupancy (reading a never-posted topic must not
// create its room) and waits for the link when it is down. A blocking read is a
// long-poll waiter: registered before the archive is read, so a message that
// lands while the read is in flight is caught either by the read or by the
// waiter. The archive decides every NextCursor it answers; a waiter answered
// from the live path moves it past what it hands over.

// waitPhase is where one long-poll is.
type waitPhase int

const (
	waitReading   waitPhase = iota // its archive read is in flight
	waitListening                  // the archive had nothing: waiting for a live message
	waitStalled                    // the link went down before the archive answered: read again after the rejoin
)

type waiter struct {
	id       int
	replyTo  *actor.PID
	since    *seam.Cursor
	limit    int
	done     <-chan struct{} // the caller's (Fetch.Done)
	timer    *time.Timer
	phase    waitPhase
	expired  bool // its time ran out while its read was in flight
	next     seam.Cursor
	captured []seam.Message
	// skipThrough: the room may hold the waiter's own cursor, not yet
	// fanned out (a live message whose stamp the archive is read for, or one
	// a catch-up reads): what the room fans out up to and including it is
	// not news to this waiter. Until the cursor goes by, what is fanned out
	// is kept in captured, not answered: if the catch-up ends without it,
	// the room never held it, and all of it is news (settle).
	skipThrough seam.Cursor
}

type reads struct {
	s            *state
	waiters      map[int]*waiter
	nextW        int
	awaitingLink []queuedReq // plain reads waiting for the link
}

func (r *reads) fetch(ctx actor.Context, m *Fetch, sender *actor.PID) {
	s := r.s
	if m.until.IsZero() {
		if m.Limit <= 0 {
			m.Limit = s.cfg.DefaultLimit
		}
		m.Limit = min(m.Limit, s.cfg.MaxLimit)
		m.until = time.Now().Add(m.Block)
	}
	if m.Block > 0 {
		s.occ.whenJoined(ctx, m, sender)
		return
	}
	if !s.online() {
		r.awaitingLink = append(r.awaitingLink, queuedReq{msg: m, sender: sender})
		return
	}
	s.readArchive(ctx, &archive.Query{Since: m.Since, Limit: m.Limit, Done: m.Done}, &read{purpose: readFetch, fetch: m, sender: sender})
}

// onFetched answers a plain read; the archive's NextCursor passes through.
func (r *reads) onFetched(ctx actor.Context, rd *read, res *archive.Result) {
	if res.Err != nil && errors.Is(res.Err, vocab.ErrLinkLost) {
		r.fetch(ctx, rd.fetch, rd.sender) // the link went down under it: wait for the next
		return
	}
	r.s.fan.filter(res)
	ctx.Send(rd.sender, res)
}

// linkUp sends the plain reads that waited for the link.
func (r *reads) linkUp(ctx actor.Context) {
	waiting := r.awaitingLink
	r.awaitingLink = nil
	for _, q := range waiting {
		r.fetch(ctx, q.msg.(*Fetch), q.sender)
	}
}

// startWaiter registers a long-poll (the room is joined) and reads for it.
func (r *reads) startWaiter(ctx actor.Context, m *Fetch, sender *actor.PID) {
	w := &waiter{id: r.nextW, replyTo: sender, since: m.Since, limit: m.Limit, done: m.Done}
	r.nextW++
	w.timer = r.s.after(ctx, max(time.Until(m.until), 0), &timer{kind: waiterExpired, id: w.id})
	r.waiters[w.id] = w
	r.readFor(ctx, w)
}

func (r *reads) readFor(ctx actor.Context, w *waiter) {
	w.phase, w.captured = waitReading, nil
	r.s.readArchive(ctx, &archive.Query{Since: w.since, Limit: w.limit, Done: w.done}, &read{purpose: readWaiter, waiter: w})
}

func (r *reads) onWaiterRead(ctx actor.Context, rd *read, a *archive.Result) {
	w := rd.waiter
	if _, ok := r.waiters[w.id]; !ok || rd.epoch != r.s.epoch || w.phase != waitReading {
		return
	}
	w.phase = waitStalled
	r.s.fan.filter(a)
	if a.Err == nil && len(a.Entries) == 0 {
		r.notNews(w)
	}
	switch {
	case a.Err != nil && errors.Is(a.Err, vocab.ErrLinkLost):
		// Read again after the rejoin.
		if w.expired {
			r.answerErr(ctx, w, fmt.Errorf("%w: the link is down", seam.ErrNotConnected))
		}
	case a.Err != nil || len(a.Entries) > 0:
		r.drop(w)
		ctx.Send(w.replyTo, a)
	case len(w.captured) > 0:
		r.answer(ctx, w, w.captured)
	case w.expired:
		w.next = a.NextCursor
		r.answer(ctx, w, nil)
	default:
		w.phase, w.next = waitListening, a.NextCursor
	}
}

// resume reads again for the long-polls whose read the link cut short (all
// but the listening ones, after a restart: inFlightToo).
func (r *reads) resume(ctx actor.Context, inFlightToo bool) {
	for _, w := range r.waiters {
		if w.phase == waitStalled || inFlightToo && w.phase == waitReading {
			r.readFor(ctx, w)
		}
	}
}

// linkLost: reads in flight are stale.
func (r *reads) linkLost() {
	for _, w := range r.waiters {
		if w.phase == waitReading {
			w.phase = waitStalled
		}
	}
}

// listening: a long-poll waits for the next live message (a replay feeds it).
func (r *reads) listening() bool {
	for _, w := range r.waiters {
		if w.phase == waitListening {
			return true
		}
	}
	return false
}

// notNews: the archive had nothing after w's cursor, so neither is anything
// the room fanned out while the read was in flight, up to and including the
// cursor, news to w; and if the room still holds the cursor's message (for
// its stamp: fanout.fromArchive), what it fans out up to it isn't either.
func (r *reads) notNews(w *waiter) {
	if w.since == nil || *w.since == "" {
		return
	}
	for i, m := range w.captured {
		if m.Cursor == *w.since {
			w.captured = w.captured[i+1:]
			return
		}
	}
	if r.s.fan.holds(*w.since) {
		w.captured, w.skipThrough = nil, *w.since
	}
}

// offer hands a message fanned out to the long-polls: one listening is
// answered; one whose read is in flight keeps it, in case the read misses it.
func (r *reads) offer(ctx actor.Context, msg seam.Message) {
	for _, w := range r.waiters {
		if w.skipThrough != "" {
			if msg.Cursor == w.skipThrough {
				w.skipThrough, w.captured = "", nil // all of it was up to the cursor
			} else if len(w.captured) < w.limit {
				w.captured = append(w.captured, msg)
			}
			continue
		}
		if w.phase != waitListening {
			// Its archive read is in flight: whatever it misses is caught here.
			if len(w.captured) < w.limit {
				w.captured = append(w.captured, msg)
			}
			continue
		}
		w.captured = append(w.captured, msg)
		r.answer(ctx, w, w.captured)
	}
}

// withhold moves the listening long-polls past a message the allowlist
// doesn't admit; it returns how many.
func (r *reads) withhold(msg seam.Message) int {
	n := 0
	for _, w := range r.waiters {
		switch {
		case w.skipThrough != "":
			if msg.Cursor == w.skipThrough {
				w.skipThrough, w.captured = "", nil
			}
		case w.phase == waitListening:
			w.next = msg.Cursor
			n++
		}
	}
	return n
}

// settle: a catch-up ended. A long-poll still waiting for its cursor to go
// by waited for a message the room never held (from before its join, or
// older than its dedup window): what it kept meanwhile is news. Before, it
// skipped everything until its time ran out (issue 20: a node taking a topic
// over waited 30 s).
func (r *reads) settle(ctx actor.Context) {
	for _, w := range r.waiters {
		if w.skipThrough == "" {
			continue
		}
		w.skipThrough = ""
		if w.phase == waitListening && len(w.captured) > 0 {
			r.answer(ctx, w, w.captured)
		}
	}
}

func (r *reads) onExpired(ctx actor.Context, id int) {
	w, ok := r.waiters[id]
	if !ok {
		return
	}
	switch w.phase {
	case waitListening:
		r.answer(ctx, w, nil)
	case waitReading:
		w.expired = true // answer when the read does
	default:
		// The link went down before the archive answered: nothing was read.
		r.answerErr(ctx, w, fmt.Errorf("%w: the link is down", seam.ErrNotConnected))
	}
}

// answer answers a long-poll with msgs from the live path. Its NextCursor is
// the last message handed over; with none, the archive's (or the caller's own
// since, where the archive gave none).
func (r *reads) answer(ctx actor.Context, w *waiter, msgs []seam.Message) {
	r.drop(w)
	if len(msgs) > w.limit {
		msgs = msgs[:w.limit]
	}
	ctx.Send(w.replyTo, archive.LiveResult(w.since, w.next, msgs)) // the archive's cursor rule
}

func (r *reads) answerErr(ctx actor.Context, w *waiter, err error) {
	r.drop(w)
	ctx.Send(w.replyTo, &archive.Result{Err: err})
}

func (r *reads) drop(w *waiter) {
	stopTimer(w.timer)
	delete(r.waiters, w.id)
}

// failAll answers every long-poll with err.
func (r *reads) failAll(ctx actor.Context, err error) {
	for id, w := range r.waiters {
		stopTimer(w.timer)
		ctx.Send(w.replyTo, &archive.Result{Err: err})
		delete(r.waiters, id)
	}
}

// failWaiting answers every plain read waiting for the link with err.
func (r *reads) failWaiting(ctx actor.Context, err error) {
	for _, q := range r.awaitingLink {
		answerErr(ctx, q.msg, q.sender, err)
	}
	r.awaitingLink = nil
}

func (r *reads) stopTimers() {
	for _, w := range r.waiters {
		stopTimer(w.timer)
	}
}

package room

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/seam"
)

// Reads. A plain read needs no occupancy (reading a never-posted topic must not
// create its room) and waits for the link when it is down. A blocking read is a
// long-poll waiter: registered before the archive is read, so a message that
// lands while the read is in flight is caught either by the read or by the
// waiter.

func (s *state) fetch(ctx actor.Context, m *Fetch, sender *actor.PID) {
	if m.until.IsZero() {
		if m.Limit <= 0 {
			m.Limit = s.cfg.DefaultLimit
		}
		m.Limit = min(m.Limit, s.cfg.MaxLimit)
		m.until = time.Now().Add(m.Block)
	}
	if m.Block > 0 {
		s.whenJoined(ctx, m, sender)
		return
	}
	if !s.online {
		s.awaitingLink = append(s.awaitingLink, queuedReq{msg: m, sender: sender})
		return
	}
	s.readArchive(ctx, &archive.Query{Since: m.Since, Limit: m.Limit}, func(res *archive.Result) {
		if res.Err != nil && errors.Is(res.Err, session.ErrLinkLost) {
			s.fetch(ctx, m, sender) // the link went down under it: wait for the next
			return
		}
		s.filter(res)
		ctx.Send(sender, res)
	})
}

func (s *state) startWaiter(ctx actor.Context, m *Fetch, sender *actor.PID) {
	w := &waiter{id: s.nextW, replyTo: sender, since: m.Since, limit: m.Limit}
	s.nextW++
	w.timer = s.after(ctx, max(time.Until(m.until), 0), &timer{kind: waiterExpired, id: w.id})
	s.waiters[w.id] = w
	s.readForWaiter(ctx, w)
}

func (s *state) readForWaiter(ctx actor.Context, w *waiter) {
	w.reading, w.captured = true, nil
	epoch := s.epoch
	s.readArchive(ctx, &archive.Query{Since: w.since, Limit: w.limit}, func(a *archive.Result) {
		if _, ok := s.waiters[w.id]; !ok || epoch != s.epoch || !w.reading {
			return
		}
		w.reading = false
		s.filter(a)
		switch {
		case a.Err != nil && errors.Is(a.Err, session.ErrLinkLost):
			// Read again after the rejoin.
			if w.expired {
				s.answerWaiterErr(ctx, w, fmt.Errorf("%w: the link is down", seam.ErrNotConnected))
			}
		case a.Err != nil || len(a.Entries) > 0:
			s.dropWaiter(w)
			ctx.Send(w.replyTo, a)
		case len(w.captured) > 0:
			s.answerWaiter(ctx, w, w.captured)
		case w.expired:
			w.next = a.NextCursor
			s.answerWaiter(ctx, w, nil)
		default:
			w.archiveDone, w.next = true, a.NextCursor
		}
	})
}

func (s *state) onWaiterExpired(ctx actor.Context, id int) {
	w, ok := s.waiters[id]
	if !ok {
		return
	}
	switch {
	case w.archiveDone:
		s.answerWaiter(ctx, w, nil)
	case w.reading:
		w.expired = true // answer when the read does
	default:
		// The link went down before the archive answered: nothing was read.
		s.answerWaiterErr(ctx, w, fmt.Errorf("%w: the link is down", seam.ErrNotConnected))
	}
}

func (s *state) answerWaiter(ctx actor.Context, w *waiter, msgs []seam.Message) {
	s.dropWaiter(w)
	if len(msgs) > w.limit {
		msgs = msgs[:w.limit]
	}
	res := &archive.Result{NextCursor: w.next}
	if w.since != nil && len(msgs) == 0 && res.NextCursor == "" {
		res.NextCursor = *w.since
	}
	for _, m := range msgs {
		res.Entries = append(res.Entries, archive.Entry{Message: m})
		res.NextCursor = m.Cursor
	}
	ctx.Send(w.replyTo, res)
}

func (s *state) answerWaiterErr(ctx actor.Context, w *waiter, err error) {
	s.dropWaiter(w)
	ctx.Send(w.replyTo, &archive.Result{Err: err})
}

func (s *state) dropWaiter(w *waiter) {
	stopTimer(w.timer)
	delete(s.waiters, w.id)
}

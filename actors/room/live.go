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
	"github.com/parley-go/parley-xmpp/seam"
)

// The live path. Every message is fanned out once, in archive order: live
// reflections as they come, and, whenever the live stream can't be trusted to be
// complete (a reflection without the room's id, a rejoin after a lost link or a
// removal), everything after the last message fanned out, read from the archive,
// with the live messages that arrive meanwhile held back and deduplicated.

func (s *state) onMessage(ctx actor.Context, m stanza.Message) {
	if m.Type == "error" {
		// go-xmpp drops a message's id, so a bounce can't be matched by it. The
		// room answers our posts in the order they were sent, each with either a
		// reflection or an error, so a bounce belongs to the oldest post not yet
		// answered.
		if origin, ok := s.oldestUnanswered(); ok {
			s.fail(ctx, origin, fmt.Errorf("%w: %s answered %v", ErrPostRefused, s.cfg.JID, m.Error))
		}
		return
	}
	if m.Type != "groupchat" || m.Body == "" || !stanza.SameBare(m.From, s.cfg.JID) {
		return // subjects, chat states, and anything not from the room
	}
	if s.phase != settling && s.phase != joined {
		return
	}
	valid := m.StanzaID.ID != "" && stanza.SameBare(m.StanzaID.By, s.cfg.JID) && stanza.Resource(m.StanzaID.By) == ""
	if !valid {
		// No id of the room's own on it (absent, or hidden by go-xmpp keeping only
		// the last <stanza-id/>): the archive has the message with its id; read
		// everything after the last message fanned out, in order.
		if p, ok := s.posts[m.OriginID]; ok && stanza.Resource(m.From) == s.nick {
			p.answered = true
		}
		if s.phase == joined {
			s.startCatchUp(ctx)
		}
		return
	}
	// A live reflection shows no real JID; one from our own nick, while we
	// hold it, is our account's.
	l := live{msg: archive.ToMessage(s.cfg.Topic, s.cfg.JID, m.From, m.Body, m.StanzaID.ID, m.Stamp), origin: m.OriginID,
		ours: stanza.Resource(m.From) == s.nick, jid: s.occupants[stanza.Resource(m.From)]}
	if s.catchingUp {
		if len(s.buffered) >= s.cfg.MaxBuffered {
			// They are in the archive: read it again once this catch-up ends.
			s.buffered, s.overflowed = nil, true
		}
		s.buffered = append(s.buffered, l)
		return
	}
	s.fanOut(ctx, l)
}

// fanOut hands a message, in archive order, to the post waiting for it, every
// subscriber, and every long-poll waiter. A message already fanned out is
// dropped.
func (s *state) fanOut(ctx actor.Context, l live) {
	id := l.msg.BackendMsgID
	if l.origin != "" && l.ours {
		// A post's origin-id is random, or (PostOnce) a key derived with a
		// secret: a match from our own account is our post, whatever nick the
		// message shows (an earlier connection's, after a rejoin). A match from
		// another account is a forgery, or a collision: never our post.
		s.resolve(ctx, l.origin, id)
	}
	if !s.recent.add(string(id)) {
		return
	}
	s.last = string(l.msg.Cursor)
	if !s.admits(l.msg.SenderHandle, l.jid) {
		s.withhold(l)
		return
	}
	s.cfg.Metrics.MessageIn()
	var d *subscriber.Deliver
	for _, sub := range s.subs {
		if sub.lagging {
			continue
		}
		if sub.unacked >= s.cfg.SubscriberBuffer {
			// Its queue is full: from here on it reads from the archive, after the
			// last message it was sent, without loss or duplicates.
			sub.lagging = true
			s.notify(ctx, SubscriberLagging, nil)
			continue
		}
		if d == nil {
			d = &subscriber.Deliver{Msg: l.msg}
		}
		ctx.Send(sub.pid, d)
		sub.unacked++
		s.unacked++
		sub.cursor = s.last
	}
	if d != nil {
		s.cfg.Metrics.SubscriberQueue(s.unacked)
	}
	for _, w := range s.waiters {
		if !w.archiveDone {
			// Its archive read is in flight: whatever it misses is caught here.
			if len(w.captured) < w.limit {
				w.captured = append(w.captured, l.msg)
			}
			continue
		}
		w.captured = append(w.captured, l.msg)
		s.answerWaiter(ctx, w, w.captured)
	}
}

func (s *state) startCatchUp(ctx actor.Context) {
	if s.catchingUp {
		return
	}
	s.catchingUp, s.overflowed = true, false
	s.readGap(ctx)
}

// readGap reads the archive after the last message fanned out.
func (s *state) readGap(ctx actor.Context) {
	since, epoch := seam.Cursor(s.last), s.epoch
	s.readArchive(ctx, &archive.Query{Since: &since, Limit: s.cfg.MaxLimit}, func(res *archive.Result) {
		s.onGap(ctx, epoch, res)
	})
}

func (s *state) onGap(ctx actor.Context, epoch int, res *archive.Result) {
	if epoch != s.epoch || !s.catchingUp {
		return
	}
	switch {
	case res.Err != nil && errors.Is(res.Err, session.ErrLinkLost):
		return // LinkDown follows; the rejoin reads again
	case res.Err != nil && errors.Is(res.Err, seam.ErrUnknownCursor):
		// The archive lost our place (expiry, or a room destroyed and made anew):
		// everything it still holds is after it. Say so: messages may be gone.
		s.log.Error("the archive no longer knows the room's cursor; replaying from its start", slog.Any("err", res.Err))
		s.notify(ctx, HistoryGap, res.Err)
		s.last = ""
		s.readGap(ctx)
		return
	case res.Err != nil:
		s.log.Error("reading what was missed failed; retrying", slog.Any("err", res.Err))
		s.notify(ctx, ReplayFailed, res.Err)
		s.arm(ctx, time.Second, gapRetry)
		return
	}
	s.cfg.Metrics.Replayed(len(res.Entries))
	for _, e := range res.Entries {
		s.fanOut(ctx, live{msg: e.Message, origin: e.OriginID, ours: s.fromAccount(e.RealJIDs), jid: stanza.SenderJID(e.RealJIDs)})
	}
	if len(res.Entries) == s.cfg.MaxLimit || s.overflowed {
		// More behind this page, or live messages were dropped from the buffer:
		// read on; the live ones wait in the buffer.
		s.overflowed = false
		s.readGap(ctx)
		return
	}
	s.catchingUp = false
	buffered := s.buffered
	s.buffered = nil
	for _, l := range buffered {
		s.fanOut(ctx, l)
	}
	if s.phase == settling {
		s.joinDone(ctx)
		return
	}
	// A post whose reflection carried no usable id and that the archive didn't
	// have either can't be resolved with an id: say so rather than time out.
	for origin, p := range s.posts {
		if p.answered {
			s.fail(ctx, origin, fmt.Errorf("%w: %s", ErrNoStanzaID, s.cfg.JID))
		}
	}
}

// readArchive asks the archive actor q and continues with its answer inside this
// actor, without blocking it.
func (s *state) readArchive(ctx actor.Context, q *archive.Query, then func(*archive.Result)) {
	// The archive answers every query, each page within the IQ timeout, in at
	// most limit/page pages and its cursor's verification (a long read on a slow
	// archive takes minutes: Prosody's file storage reads the whole archive for
	// every page). The future's timeout only guards against an archive actor
	// gone wrong.
	pages := q.Limit/max(1, s.cfg.PageSize) + 8
	f := ctx.RequestFuture(s.archive, q, time.Duration(pages)*s.cfg.IQTimeout)
	ctx.ReenterAfter(f, func(res any, err error) {
		a, ok := res.(*archive.Result)
		if !ok {
			a = &archive.Result{Err: fmt.Errorf("room: reading the archive of %s: %v", s.cfg.JID, err)}
		}
		then(a)
	})
}

// emptyReadWaits are the waits before reading again for a lagging subscriber
// when the archive doesn't have the room's newest messages yet.
var emptyReadWaits = []time.Duration{50 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond}

// ---- subscribers ----

func (s *state) subscribe(ctx actor.Context, m *Subscribe, sender *actor.PID) {
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
	// The session spawns it: a subscriber outlives a restart of its room.
	f := ctx.RequestFuture(s.cfg.Session, &session.SpawnSubscriber{Props: props}, 10*time.Second)
	ctx.ReenterAfter(f, func(res any, err error) {
		pid, ok := res.(*actor.PID)
		if !ok {
			ctx.Send(sender, &Subscribed{Err: fmt.Errorf("room: starting a subscriber: %v", err)})
			return
		}
		s.subs = append(s.subs, &sub{pid: pid, gate: gate, cursor: s.last})
		ctx.Send(sender, &Subscribed{PID: pid, Gate: gate, Room: ctx.Self()})
	})
}

func (s *state) unsubscribe(ctx actor.Context, pid *actor.PID) {
	for i, sub := range s.subs {
		if sub.pid.Equal(pid) {
			sub.gate.Close()
			ctx.Stop(pid)
			s.subs = append(s.subs[:i], s.subs[i+1:]...)
			s.unacked -= sub.unacked
			s.cfg.Metrics.SubscriberQueue(s.unacked)
			return
		}
	}
}

func (s *state) onAck(ctx actor.Context, a *subscriber.Ack) {
	for _, sub := range s.subs {
		if sub.pid.Equal(a.Sub) {
			n := min(a.N, sub.unacked)
			sub.unacked -= n
			s.unacked -= n
			s.cfg.Metrics.SubscriberQueue(s.unacked)
			if sub.lagging && !sub.reading && s.phase == joined {
				s.feedLagging(ctx, sub)
			}
			return
		}
	}
}

// feedLagging sends a lagging subscriber the next messages after its cursor from
// the archive, as many as its queue has room for, until it has caught up with
// the room; then it is back on the live path.
func (s *state) feedLagging(ctx actor.Context, sub *sub) {
	room := s.cfg.SubscriberBuffer - sub.unacked
	if room < s.cfg.SubscriberBuffer/2 {
		return // wait for more acknowledgements
	}
	if sub.cursor == s.last {
		sub.lagging, sub.empty = false, 0
		return
	}
	sub.reading = true
	since, epoch := seam.Cursor(sub.cursor), s.epoch
	s.readArchive(ctx, &archive.Query{Since: &since, Limit: room}, func(res *archive.Result) {
		if epoch != s.epoch || !sub.reading {
			return
		}
		sub.reading = false
		switch {
		case res.Err != nil && errors.Is(res.Err, session.ErrLinkLost):
			return // the rejoin feeds it again
		case res.Err != nil && errors.Is(res.Err, seam.ErrUnknownCursor):
			// Its place is gone from the archive (expiry): it goes on from the
			// room's, and the gap is reported.
			s.notify(ctx, HistoryGap, res.Err)
			sub.cursor, sub.lagging = s.last, false
			return
		case res.Err != nil:
			s.log.Error("feeding a lagging subscriber from the archive failed; retrying", slog.Any("err", res.Err))
			s.arm(ctx, time.Second, feedRetry)
			return
		}
		for _, e := range res.Entries {
			if s.admits(e.Message.SenderHandle, stanza.SenderJID(e.RealJIDs)) {
				ctx.Send(sub.pid, &subscriber.Deliver{Msg: e.Message})
				sub.unacked++
				s.unacked++
			}
			sub.cursor = string(e.Message.Cursor)
			if sub.cursor == s.last {
				// Caught up: what comes after arrives live.
				sub.lagging = false
				return
			}
		}
		if len(res.Entries) == 0 {
			// Nothing after its cursor in the archive, yet the room is past it:
			// the room's last message is not readable yet (ejabberd reflects a
			// message before it commits it). Look again shortly; if it never
			// shows (a message the server doesn't archive), go live from here.
			if sub.empty < len(emptyReadWaits) {
				s.arm(ctx, emptyReadWaits[sub.empty], feedRetry)
				sub.empty++
				return
			}
			sub.cursor, sub.lagging, sub.empty = s.last, false, 0
			return
		}
		sub.empty = 0
		// The room moved on while the archive answered: read on now. Waiting
		// for an acknowledgement could wait forever, as the subscriber
		// acknowledges in batches and what it still holds may not fill one.
		s.feedLagging(ctx, sub)
	})
}

package session

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Rejoin turns: after a reconnect every room answers LinkUp with RejoinTurn,
// saying whether it needs its occupancy back, and the session lets a bounded
// number rejoin at once, rooms with subscribers first, so the server is never sent thousands
// of joins in one burst and each room's join and replay stay quick. A room
// holds its turn until it is back in (or gave up: RejoinDone). A room that
// holds it longer than Config.RejoinLease stops counting, so one slow room
// does not hold the others back; rooms past their lease count again once the
// in-flight total reaches twice Config.RejoinInFlight, which bounds what the
// server is sent however slow it is. Turns are given once every room has
// answered (or after turnsGather), so the order holds from the first turn.

// Messages between the rooms and the session about rejoin turns.
type (
	// RejoinTurn answers LinkUp: whether the room needs a turn to rejoin.
	// Answer, when Need and in time: *RejoinGo.
	RejoinTurn struct {
		Room *actor.PID
		Need bool
		// Subscribed: the room has subscribers waiting for its replay; such
		// rooms go first.
		Subscribed bool
	}
	// RejoinGo: the room's turn to rejoin. It answers RejoinDone when back in,
	// when the join failed, or at once when it no longer needs the turn.
	RejoinGo struct{}
	// RejoinDone gives a turn back.
	RejoinDone struct{ Room *actor.PID }
)

// turns is the session's rejoin gate; it lives for one link.
type turns struct {
	open    bool                // every room answered LinkUp (or turnsGather passed)
	unheard int                 // rooms told LinkUp that haven't answered
	waiting [2][]*actor.PID     // 0: rooms with subscribers, 1: the others
	held    map[string]*holding // by actor id
	counted int                 // held turns within their lease
}

type holding struct {
	timer *time.Timer
	lent  bool // past its lease: no longer counted
}

// turnLease: a turn's lease ran out.
type turnLease struct {
	epoch int
	id    string
}

// turnsOpen: turnsGather passed since LinkUp.
type turnsOpen struct{ epoch int }

// turnsGather bounds the wait for every room's answer to LinkUp before turns
// are given (a room busy with a long message answers late).
const turnsGather = 100 * time.Millisecond

// gatherTurns starts a link's turns: n rooms were told LinkUp.
func (s *Session) gatherTurns(ctx actor.Context, n int) {
	s.turns = turns{unheard: n, open: n == 0}
	if n > 0 {
		s.after(ctx, turnsGather, &turnsOpen{epoch: s.epoch})
	}
}

func (s *Session) onRejoinTurn(ctx actor.Context, m *RejoinTurn) {
	if !s.linked() {
		return // LinkDown is on its way to the room; it answers the next LinkUp
	}
	if m.Need {
		q := 1
		if m.Subscribed {
			q = 0
		}
		s.turns.waiting[q] = append(s.turns.waiting[q], m.Room)
	}
	if s.turns.unheard--; s.turns.unheard <= 0 {
		s.turns.open = true
	}
	s.grantTurns(ctx)
}

func (s *Session) onTurnsOpen(ctx actor.Context, m *turnsOpen) {
	if m.epoch == s.epoch && s.linked() && !s.turns.open {
		s.turns.open = true
		s.grantTurns(ctx)
	}
}

func (s *Session) onRejoinDone(ctx actor.Context, m *RejoinDone) {
	h, ok := s.turns.held[m.Room.Id]
	if !ok {
		return // a turn of an earlier link
	}
	h.timer.Stop()
	delete(s.turns.held, m.Room.Id)
	if !h.lent {
		s.turns.counted--
	}
	s.grantTurns(ctx)
}

func (s *Session) onTurnLease(ctx actor.Context, m *turnLease) {
	h, ok := s.turns.held[m.id]
	if m.epoch != s.epoch || !ok || h.lent {
		return
	}
	h.lent = true
	s.turns.counted--
	s.grantTurns(ctx)
}

// grantTurns lets waiting rooms rejoin while turns are free.
func (s *Session) grantTurns(ctx actor.Context) {
	t := &s.turns
	limit := s.cfg.RejoinInFlight
	for t.open && t.counted < limit && len(t.held) < 2*limit {
		q := 0
		if len(t.waiting[0]) == 0 {
			q = 1
		}
		if len(t.waiting[q]) == 0 {
			return
		}
		pid := t.waiting[q][0]
		t.waiting[q][0] = nil
		t.waiting[q] = t.waiting[q][1:]
		if _, dup := t.held[pid.Id]; dup {
			continue // asked twice (across a lost link): one turn
		}
		if t.held == nil {
			t.held = map[string]*holding{}
		}
		t.held[pid.Id] = &holding{timer: s.after(ctx, s.cfg.RejoinLease, &turnLease{epoch: s.epoch, id: pid.Id})}
		t.counted++
		ctx.Send(pid, &RejoinGo{})
	}
}

// dropTurns forgets every turn (the link is gone: rooms ask again after the
// next LinkUp).
func (s *Session) dropTurns() {
	for _, h := range s.turns.held {
		h.timer.Stop()
	}
	s.turns = turns{}
}

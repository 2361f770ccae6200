package session

import (
	"fmt"
	"strings"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
)

// The room registry: one room actor per room, spawned on first use and
// supervised here, and the routing of each inbound stanza to its room.

// roomRegistry is the room actors by room (the lower-case bare JID), and the
// rooms by actor id, so that forgetting a stopped room is O(1).
type roomRegistry struct {
	byRoom  map[string]*actor.PID
	byActor map[string]string
}

func newRoomRegistry() roomRegistry {
	return roomRegistry{byRoom: map[string]*actor.PID{}, byActor: map[string]string{}}
}

// of is the room actor of the room jid is in (any resource, any case).
func (r *roomRegistry) of(jid string) (*actor.PID, bool) {
	pid, ok := r.byRoom[strings.ToLower(stanza.Bare(jid))]
	return pid, ok
}

func (r *roomRegistry) add(room string, pid *actor.PID) {
	key := strings.ToLower(stanza.Bare(room))
	r.byRoom[key], r.byActor[pid.Id] = pid, key
}

// forget drops pid, if it is a room's actor.
func (r *roomRegistry) forget(pid *actor.PID) {
	if k, ok := r.byActor[pid.Id]; ok {
		delete(r.byActor, pid.Id)
		delete(r.byRoom, k)
	}
}

// isRoom: pid is a room's actor (not a subscriber's).
func (r *roomRegistry) isRoom(pid *actor.PID) bool {
	_, ok := r.byActor[pid.Id]
	return ok
}

func (r *roomRegistry) len() int { return len(r.byRoom) }

// each is every room actor, in no order.
func (r *roomRegistry) each() map[string]*actor.PID { return r.byRoom }

// HandleFailure supervises the session's children (rooms and subscribers)
// with Config.Rooms. It runs on the session's own goroutine, so when the
// policy stops a room the session forgets it at once: the next request for
// that room gets a fresh room actor instead of going down with the stopping
// one.
func (s *Session) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message any) {
	s.cfg.Rooms.HandleFailure(system, forgetting{Supervisor: sup, s: s}, child, rs, reason, message)
}

type forgetting struct {
	actor.Supervisor
	s *Session
}

func (f forgetting) StopChildren(pids ...*actor.PID) {
	for _, p := range pids {
		f.s.forgetRoom(p)
	}
	f.Supervisor.StopChildren(pids...)
}

func (s *Session) forgetRoom(pid *actor.PID) { s.rooms.forget(pid) }

func (s *Session) onStanza(ctx actor.Context, v any) {
	switch st := v.(type) {
	case stanza.Message:
		switch {
		case st.MAM != nil:
			s.onMAMResult(ctx, st)
		case st.Type != "groupchat" && st.Type != "error":
			// A chat, normal or headline message: nothing a room takes (a
			// stranger's pubsub event, an occupant's private message).
			s.skipped(observe.SkipPrivate)
		default:
			s.route(ctx, st.From, st)
		}
	case stanza.Presence:
		s.route(ctx, st.From, st)
	case stanza.IQ:
		s.onIQ(ctx, st)
	}
}

// route hands a stanza to the room it comes from; one from no room the
// runtime is in is counted and dropped.
func (s *Session) route(ctx actor.Context, from string, v any) {
	if pid, ok := s.rooms.of(from); ok {
		ctx.Send(pid, v)
		return
	}
	s.skipped(observe.SkipUnrouted)
}

func (s *Session) toRoom(ctx actor.Context, m *ToRoom) {
	switch {
	case s.phase >= closing:
		ctx.Respond(seam.ErrDisconnected)
		return
	case s.phase == idle || s.phase == dialing:
		err := seam.ErrNotConnected
		if s.lastErr != nil {
			err = fmt.Errorf("%w: %v", seam.ErrNotConnected, s.lastErr)
		}
		ctx.Respond(err)
		return
	case s.phase == reconnecting && s.cfg.FailFast:
		ctx.Respond(fmt.Errorf("%w: reconnecting (%v)", seam.ErrNotConnected, s.lastErr))
		return
	}
	pid, ok := s.rooms.of(m.Room)
	if !ok {
		spec := RoomSpec{JID: m.Room, Topic: m.Topic, Session: ctx.Self(), Online: s.linked()}
		if spec.Online {
			spec.Link = s.conn
		}
		pid = ctx.Spawn(s.cfg.NewRoom(spec))
		s.rooms.add(m.Room, pid)
	}
	ctx.RequestWithCustomSender(pid, m.Msg, ctx.Sender())
}

// skipped counts an inbound element passed over (see skipCounter).
func (s *Session) skipped(kind string) { skipCounter(s.cfg.Metrics)(kind) }

// skipCounter is what counts inbound elements passed over, where the metrics
// take it: the connection's reader calls it too, so it holds the metrics and
// nothing of the session's.
func skipCounter(m observe.Metrics) func(kind string) {
	if c, ok := m.(observe.InboundSkipper); ok {
		return c.InboundSkipped
	}
	return func(string) {}
}

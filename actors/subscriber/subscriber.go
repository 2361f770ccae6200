// Package subscriber is the subscriber actor: one per subscription. It calls the
// subscription's handler, one message at a time, in the order the room hands
// them over, so a slow handler delays only itself, never the room or the other
// subscribers. It acknowledges what it handled, so the room can bound what waits
// in its mailbox (see the room's flow control).
//
// Subscribers are children of the session, not of their room: a room restarted
// after a failure finds its subscribers, and what is queued for them, intact.
package subscriber

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/internal/mailbox"
	"github.com/parley-go/parley-xmpp/seam"
)

// Deliver hands one message to the subscriber. The room sends the same *Deliver
// to every subscriber: handlers receive a copy of Msg but share its Mentions.
type Deliver struct{ Msg seam.Message }

// Ack tells the room that N more messages were handled by subscriber Sub.
type Ack struct {
	Sub *actor.PID
	N   int
}

// Gate is shared by a subscription and its actor: Close shuts it before the actor
// is stopped, so no delivery starts after Close has returned other than one that
// had already begun.
type Gate struct{ closed atomic.Bool }

// Close shuts the gate.
func (g *Gate) Close() { g.closed.Store(true) }

// Closed reports whether Close was called.
func (g *Gate) Closed() bool { return g.closed.Load() }

// Config configures a subscriber.
type Config struct {
	Handler seam.Handler
	Gate    *Gate
	Room    *actor.PID // where Acks go
	// AckEvery: an Ack is sent after this many handled messages.
	AckEvery int
	// OnPanic, when set, is told of a handler's panic (after it is logged).
	OnPanic func(seam.Message, any)
	Logger  *slog.Logger
}

type subscriber struct {
	cfg     Config
	handled int
}

// Props returns the props of a subscriber.
func Props(cfg Config) *actor.Props {
	if cfg.AckEvery <= 0 {
		cfg.AckEvery = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// The room's fan-out sends to every subscriber: their mailboxes must not
	// allocate per message.
	return actor.PropsFromProducer(func() actor.Actor { return &subscriber{cfg: cfg} }, actor.WithMailbox(mailbox.Unbounded()))
}

func (s *subscriber) Receive(ctx actor.Context) {
	d, ok := ctx.Message().(*Deliver)
	if !ok {
		return
	}
	if !s.cfg.Gate.Closed() {
		s.call(d.Msg)
	}
	if s.handled++; s.handled == s.cfg.AckEvery {
		ctx.Send(s.cfg.Room, &Ack{Sub: ctx.Self(), N: s.handled})
		s.handled = 0
	}
}

// call runs the handler and contains its panic: the subscriber stays, the
// message counts as delivered, and the panic is reported.
func (s *subscriber) call(m seam.Message) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Logger.Error("subscription handler panicked; continuing with the next message",
				slog.String("id", string(m.BackendMsgID)), slog.String("panic", fmt.Sprint(r)),
				slog.String("stack", string(debug.Stack()))) // the room's logger names topic and room
			if s.cfg.OnPanic != nil {
				s.cfg.OnPanic(m, r)
			}
		}
	}()
	s.cfg.Handler(m)
}

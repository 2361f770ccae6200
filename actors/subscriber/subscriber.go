// Package subscriber is the subscriber actor: one per subscription, a child of its
// room. It calls the subscription's handler, one message at a time, in the order
// the room hands them over, so a slow handler delays only itself, never the room
// or the other subscribers.
package subscriber

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/seam"
)

// Deliver hands one message to the subscriber. The room sends the same *Deliver
// to every subscriber: handlers receive a copy of Msg but share its Mentions.
type Deliver struct{ Msg seam.Message }

// Gate is shared by a subscription and its actor: Close shuts it before the actor
// is stopped, so no delivery starts after Close has returned other than one that
// had already begun.
type Gate struct{ closed atomic.Bool }

// Close shuts the gate.
func (g *Gate) Close() { g.closed.Store(true) }

// Closed reports whether Close was called.
func (g *Gate) Closed() bool { return g.closed.Load() }

type subscriber struct {
	handler seam.Handler
	gate    *Gate
	log     *slog.Logger
}

// Props returns the props of a subscriber calling h.
func Props(h seam.Handler, gate *Gate, log *slog.Logger) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &subscriber{handler: h, gate: gate, log: log}
	})
}

func (s *subscriber) Receive(ctx actor.Context) {
	if d, ok := ctx.Message().(*Deliver); ok && !s.gate.Closed() {
		s.call(d.Msg)
	}
}

// call runs the handler and contains its panic: the subscriber stays, the
// message counts as delivered, and the panic is logged.
func (s *subscriber) call(m seam.Message) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("subscription handler panicked; continuing with the next message",
				slog.String("topic", string(m.Topic)), slog.String("id", string(m.BackendMsgID)), slog.String("panic", fmt.Sprint(r)))
		}
	}()
	s.handler(m)
}

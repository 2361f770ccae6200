// Package notifier is the notifier actor: it hands the runtime's events (state
// changes of the connection, things that happened to rooms) to the embedder's
// callbacks, one at a time and in order, on its own goroutine, so a slow
// callback never holds up the session or a room.
package notifier

import (
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/internal/mailbox"
	"github.com/parley-go/parley-xmpp/internal/vocab"
)

// Config configures the notifier.
type Config struct {
	OnStateChange func(vocab.StateChange)
	OnRoomEvent   func(vocab.RoomEvent)
	Logger        *slog.Logger
}

type notifier struct{ cfg Config }

// Props returns the notifier's props.
func Props(cfg Config) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return actor.PropsFromProducer(func() actor.Actor { return &notifier{cfg: cfg} }, actor.WithMailbox(mailbox.Unbounded()))
}

func (n *notifier) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *vocab.StateChange:
		if n.cfg.OnStateChange != nil {
			n.call(func() { n.cfg.OnStateChange(*m) })
		}
	case *vocab.RoomEvent:
		n.cfg.Logger.Info("room event", slog.String("topic", string(m.Topic)), slog.String("room", m.Room), slog.String("kind", m.Kind.String()), slog.Any("err", m.Err))
		if n.cfg.OnRoomEvent != nil {
			n.call(func() { n.cfg.OnRoomEvent(*m) })
		}
	}
}

// call contains a callback's panic: the embedder's bug is logged, the runtime
// goes on.
func (n *notifier) call(f func()) {
	defer func() {
		if r := recover(); r != nil {
			n.cfg.Logger.Error("event callback panicked", slog.String("panic", fmt.Sprint(r)))
		}
	}()
	f()
}

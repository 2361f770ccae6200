// Package ask carries a request from outside the actor system into an actor and
// waits for the answer within a context.
//
// protoactor's own Future waits with a fixed timeout and can't be abandoned early
// without racing its result (upstream issue #1145). An ask registers a
// one-shot process of its own as the request's sender: the actor answers it with
// ctx.Respond as it would a Future, the caller waits on a channel and its context,
// and a caller that gives up just deregisters the process; a late answer then
// goes to dead letters.
package ask

import (
	"context"
	"errors"

	"github.com/asynkron/protoactor-go/actor"
)

// ErrNoActor: the target actor is gone (stopped, or never existed).
var ErrNoActor = errors.New("ask: target actor is gone")

type reply struct{ ch chan any }

func (r *reply) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	select {
	case r.ch <- msg:
	default: // one answer counts; later ones are dropped
	}
}

func (r *reply) SendSystemMessage(*actor.PID, any) {}
func (r *reply) Stop(*actor.PID)                   {}

// Ask sends msg to pid and waits for its answer or for ctx to end.
func Ask(ctx context.Context, system *actor.ActorSystem, pid *actor.PID, msg any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &reply{ch: make(chan any, 1)}
	self, ok := system.ProcessRegistry.Add(r, "ask"+system.ProcessRegistry.NextId())
	if !ok {
		return nil, errors.New("ask: can't register a reply process")
	}
	defer system.ProcessRegistry.Remove(self)
	system.Root.RequestWithCustomSender(pid, msg, self)
	select {
	case res := <-r.ch:
		if _, gone := res.(*actor.DeadLetterResponse); gone {
			return nil, ErrNoActor
		}
		return res, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Package ask carries a request from outside the actor system into an actor and
// waits for the answer within a context.
//
// protoactor's own Future waits with a fixed timeout and can't be abandoned early
// without racing its result (upstream issue #1145). An ask registers a
// one-shot process of its own as the request's sender: the actor answers it with
// ctx.Respond as it would a Future, the caller waits on a channel and its context,
// and a caller that gives up just deregisters the process; a late answer then
// goes to dead letters.
//
// Reply ids are reused. protoactor's registry is 1,024 buckets of 32-shard Go
// maps, and a Go map keeps its table after a delete, so a fresh id per ask (as
// protoactor's own futures take) touches shard after shard until all 32,768 hold
// a table: ~9 MiB that a posting runtime never gives back, though the registry's
// count stays flat. An ask takes an id from a small free list and gives it back
// once its answer arrived: only then can no other answer be on its way to that
// id (an actor answers a request once, and a second send through the same PID
// hits the old reply process, which protoactor caches in the PID). An ask that
// gives up retires its id instead, so a late answer goes to dead letters, not
// to a later ask.
package ask

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// maxFreeIDs bounds the free list: more asks in flight at once than this mint
// ids that are then dropped.
const maxFreeIDs = 1024

// replyIDs is the free list of reply ids, shared by every actor system: an id in
// it is registered in none. A stack, so the same few ids (and registry shards)
// serve a steady load. A mutex, not an actor: the callers are outside the system.
var replyIDs struct {
	sync.Mutex
	free []string
	made atomic.Uint64
}

func takeID() string {
	replyIDs.Lock()
	defer replyIDs.Unlock()
	if n := len(replyIDs.free); n > 0 {
		id := replyIDs.free[n-1]
		replyIDs.free = replyIDs.free[:n-1]
		return id
	}
	return "parley-ask/" + strconv.FormatUint(replyIDs.made.Add(1), 36)
}

func giveBackID(id string) {
	replyIDs.Lock()
	defer replyIDs.Unlock()
	if len(replyIDs.free) < maxFreeIDs {
		replyIDs.free = append(replyIDs.free, id)
	}
}

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
	self, ok := system.ProcessRegistry.Add(r, takeID())
	if !ok {
		return nil, errors.New("ask: can't register a reply process")
	}
	system.Root.RequestWithCustomSender(pid, msg, self)
	select {
	case res := <-r.ch:
		system.ProcessRegistry.Remove(self)
		giveBackID(self.Id)
		if _, gone := res.(*actor.DeadLetterResponse); gone {
			return nil, ErrNoActor
		}
		return res, nil
	case <-ctx.Done():
		system.ProcessRegistry.Remove(self) // and retire the id: an answer may still come
		return nil, ctx.Err()
	}
}

// Minted is how many reply ids asks have made since the process started: it
// grows with the asks in flight at once and with asks given up, not with the
// asks answered.
func Minted() uint64 { return replyIDs.made.Load() }

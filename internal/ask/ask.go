// Package ask carries a request from outside the actor system into an actor and
// waits for the answer within a context.
//
// protoactor's own Future waits with a fixed timeout and can't be abandoned early
// without racing its result (upstream issue #1145), and, like a one-shot reply
// process, it registers a fresh process id per request. protoactor's registry
// is 1,024 buckets of 32-shard Go maps, and a Go map keeps its table after a
// delete: a fresh id per request touches shard after shard until all 32,768
// hold a table, about 9 MiB that a posting runtime never gives back.
//
// An Asker registers one reply address per actor system, for good. Each ask
// sends its request with a sender PID of its own: a new *actor.PID naming that
// one address. The address hands every answer, with the PID it was sent to, to
// the Asker's router actor as a message; the router keeps the waiting asks by
// that PID (the token) and passes the answer to the one waiting for it. An ask
// is forgotten when its answer arrives or when its context ends, so a second
// answer, a late one, or one sent through a copy of the PID finds nobody and
// is dropped (counted in Dropped, logged at debug). A later ask can't receive
// it: its PID is a different object, and the stale one can't be recycled while
// a responder still holds it. The registry is touched only by New.
//
// Actors ask through the same address with Request: nothing waits; the answer,
// a dead letter or the timeout is handed to a function of the asker's (which
// turns it into a message to itself).
package ask

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// ErrNoActor: the target actor is gone (stopped, or never existed).
var ErrNoActor = errors.New("ask: target actor is gone")

// Asker asks the actors of one actor system. Its methods are safe for
// concurrent use.
type Asker struct {
	system  *actor.ActorSystem
	router  *actor.PID
	address string // the reply address's registry id
	seq     atomic.Uint32
	dropped atomic.Uint64
}

// New registers an Asker's reply address and router in system. log receives
// the dropped answers at debug (nil: none).
func New(system *actor.ActorSystem, log *slog.Logger) (*Asker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Asker{system: system, address: "parley-replies" + system.ProcessRegistry.NextId()}
	a.router = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &router{waiting: map[*actor.PID]*waiter{}, dropped: &a.dropped, log: log}
	}))
	if _, ok := system.ProcessRegistry.Add(&replies{root: system.Root, router: a.router}, a.address); !ok {
		system.Root.Stop(a.router)
		return nil, fmt.Errorf("ask: the reply address %s is taken", a.address)
	}
	return a, nil
}

// Ask sends msg to pid and waits for its answer or for ctx to end.
func (a *Asker) Ask(ctx context.Context, pid *actor.PID, msg any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root := a.system.Root
	ch := make(chan error, 1) // buffered for the one outcome
	var res any
	self := a.token()
	// The router's mailbox holds the waiter before the request is sent, so
	// before any answer to it.
	root.Send(a.router, &await{token: self, deliver: func(r any, err error) { res = r; ch <- err }})
	root.RequestWithCustomSender(pid, msg, self)
	select {
	case err := <-ch:
		if err != nil { // a dead letter: the only error without a timeout
			return nil, ErrNoActor
		}
		return res, nil
	case <-ctx.Done():
		root.Send(a.router, &forget{token: self})
		return nil, ctx.Err()
	}
}

// Request sends msg to pid as from ctx (so in order with ctx's other sends),
// and calls deliver once, on the Asker's router: with the answer, with
// actor.ErrDeadLetter when pid is gone, or with actor.ErrTimeout when no answer
// came within timeout. deliver must not block: send the outcome on as a
// message.
func (a *Asker) Request(ctx actor.SenderContext, pid *actor.PID, msg any, timeout time.Duration, deliver func(res any, err error)) {
	self := a.token()
	a.system.Root.Send(a.router, &await{token: self, deliver: deliver, timeout: timeout})
	ctx.RequestWithCustomSender(pid, msg, self)
}

func (a *Asker) token() *actor.PID {
	return &actor.PID{Address: a.system.Address(), Id: a.address, RequestId: a.seq.Add(1)}
}

// Dropped is how many answers found no ask waiting for them: late, second, or
// sent through a copy of the sender PID.
func (a *Asker) Dropped() uint64 { return a.dropped.Load() }

// replies is the reply address: every answer sent to an ask's PID lands here,
// with that PID, and goes on to the router as a message.
type replies struct {
	root   *actor.RootContext
	router *actor.PID
}

func (r *replies) SendUserMessage(to *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	r.root.Send(r.router, &answer{token: to, msg: msg})
}

func (r *replies) SendSystemMessage(*actor.PID, any) {}
func (r *replies) Stop(*actor.PID)                   {}

// The router's messages.
type (
	await struct { // deliver takes the answer sent to token (or the timeout, when > 0)
		token   *actor.PID
		deliver func(res any, err error)
		timeout time.Duration
	}
	forget  struct{ token *actor.PID } // the ask gave up
	expired struct{ token *actor.PID } // the request's timeout passed
	answer  struct {                   // msg was sent to token
		token *actor.PID
		msg   any
	}
	countWaiting struct{ ch chan<- int } // tests: how many asks wait
)

// router keeps the asks waiting, by the PID each sent as its sender.
type router struct {
	waiting map[*actor.PID]*waiter
	dropped *atomic.Uint64
	log     *slog.Logger
}

type waiter struct {
	deliver func(res any, err error)
	timer   *time.Timer
}

func (r *router) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *await:
		w := &waiter{deliver: m.deliver}
		if m.timeout > 0 {
			self, root, token := ctx.Self(), ctx.ActorSystem().Root, m.token
			w.timer = time.AfterFunc(m.timeout, func() { root.Send(self, &expired{token: token}) })
		}
		r.waiting[m.token] = w
	case *forget:
		r.take(m.token)
	case *expired:
		if w := r.take(m.token); w != nil {
			r.hand(w, nil, actor.ErrTimeout)
		}
	case *answer:
		w := r.take(m.token)
		if w == nil {
			r.dropped.Add(1)
			r.log.Debug("ask: dropped an answer nobody waits for (late, second, or through a copied sender)",
				slog.Uint64("request", uint64(m.token.RequestId)), slog.String("type", fmt.Sprintf("%T", m.msg)))
			return
		}
		if _, gone := m.msg.(*actor.DeadLetterResponse); gone {
			r.hand(w, nil, actor.ErrDeadLetter)
			return
		}
		r.hand(w, m.msg, nil)
	case *countWaiting:
		m.ch <- len(r.waiting)
	}
}

// hand gives w its outcome. A deliver that panics is a bug of the asker's: it
// is logged, and the router (whose waiting asks would be lost with it) goes on.
func (r *router) hand(w *waiter, res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("ask: a reply's deliver panicked", slog.Any("panic", p))
		}
	}()
	w.deliver(res, err)
}

// take forgets the ask waiting for token and returns it (nil: none).
func (r *router) take(token *actor.PID) *waiter {
	w, ok := r.waiting[token]
	if !ok {
		return nil
	}
	delete(r.waiting, token)
	if w.timer != nil {
		w.timer.Stop()
	}
	return w
}

// Package supervision holds the restart policy of parley-xmpp's actors, written
// out rather than taken from protoactor's defaults: protoactor's
// ExponentialBackoffStrategy is linear and uncapped, its default strategy
// restarts forever, and a top-level actor ignores the supervisor in its own
// props (it gets its parent's, or the guardian given with actor.WithGuardian).
package supervision

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/internal/vocab"
)

// ErrActorFailed is what a request gets back when the actor serving it failed
// while handling it: the request is not retried.
var ErrActorFailed = vocab.ErrActorFailed

// Action is what the strategy did about a failure.
type Action int

const (
	// Restarted: the child will be restarted after Failure.Delay.
	Restarted Action = iota
	// Stopped: the child failed too often within the window and was stopped.
	Stopped
)

func (a Action) String() string {
	if a == Stopped {
		return "stopped"
	}
	return "restarted"
}

// Failure reports one failure of a child.
type Failure struct {
	Child   *actor.PID
	Reason  any // what the actor panicked with
	Message any // the message it was handling; dropped, never retried
	// Failures counts the child's failures within the window, this one included.
	Failures int
	Action   Action
	Delay    time.Duration // before the restart
}

func (f Failure) String() string {
	s := fmt.Sprintf("actor %s failed (%v) handling %T; %s", f.Child.Id, f.Reason, f.Message, f.Action)
	if f.Action == Restarted {
		s += fmt.Sprintf(" in %s (failure %d)", f.Delay.Round(time.Millisecond), f.Failures)
	}
	return s
}

// Policy is a one-for-one strategy: the failing child alone is acted on.
type Policy struct {
	// MaxFailures within Window are restarted; one more stops the child, so a
	// crash loop ends instead of spinning.
	MaxFailures int
	Window      time.Duration
	// Restart delays grow exponentially from InitialDelay, capped at MaxDelay,
	// with ±20% jitter.
	InitialDelay time.Duration
	MaxDelay     time.Duration
	// Report is told of every failure (from the supervisor's goroutine: keep it
	// short).
	Report func(Failure)
}

// Strategy returns p as a protoactor supervisor strategy.
func (p Policy) Strategy() actor.SupervisorStrategy { return &strategy{p: p} }

type strategy struct{ p Policy }

func (s *strategy) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message any) {
	// The request that failed gets an answer instead of waiting forever; it is
	// not retried.
	if sender := actor.UnwrapEnvelopeSender(message); sender != nil {
		system.Root.Send(sender, fmt.Errorf("%w: %v", ErrActorFailed, reason))
	}
	rs.Fail()
	n := rs.NumberOfFailures(s.p.Window)
	if rs.FailureCount() > 4*(s.p.MaxFailures+1) {
		// RestartStatistics keeps every failure ever; keep its memory bounded.
		rs.Reset()
		for range n {
			rs.Fail()
		}
	}
	f := Failure{Child: child, Reason: reason, Message: unwrap(message), Failures: n}
	if n > s.p.MaxFailures {
		f.Action = Stopped
		s.report(f)
		sup.StopChildren(child)
		return
	}
	f.Delay = s.p.delay(n)
	s.report(f)
	if f.Delay <= 0 {
		sup.RestartChildren(child)
		return
	}
	// The child's mailbox stays suspended until the restart.
	time.AfterFunc(f.Delay, func() { sup.RestartChildren(child) })
}

func (s *strategy) report(f Failure) {
	if s.p.Report != nil {
		s.p.Report(f)
	}
}

// delay is the wait before the n-th restart within the window.
func (p Policy) delay(n int) time.Duration {
	if p.InitialDelay <= 0 {
		return 0
	}
	d := p.InitialDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	if p.MaxDelay > 0 && d > p.MaxDelay {
		d = p.MaxDelay
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func unwrap(m any) any {
	_, msg, _ := actor.UnwrapEnvelope(m)
	return msg
}

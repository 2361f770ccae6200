package supervision

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kept is state that survives restarts: the parent hands the same one to every
// incarnation, as the room actor does.
type kept struct{ handled int }

type boom struct{}
type count struct{}

type worker struct{ st *kept }

func (w *worker) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *boom:
		panic("boom")
	case *count:
		w.st.handled++
		ctx.Respond(w.st.handled)
	}
}

type parent struct {
	policy Policy
	st     *kept
	child  *actor.PID
}

func (p *parent) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.child = ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return &worker{st: p.st} }))
	case *boom, *count:
		ctx.Forward(p.child)
	case string:
		if m == "child" {
			ctx.Respond(p.child)
		}
	}
}

func spawn(t *testing.T, p Policy) (*actor.ActorSystem, *actor.PID, *actor.PID) {
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	props := actor.PropsFromProducer(func() actor.Actor { return &parent{policy: p, st: &kept{}} },
		actor.WithSupervisor(p.Strategy()))
	pid := system.Root.Spawn(props)
	res, err := system.Root.RequestFuture(pid, "child", time.Second).Result()
	require.NoError(t, err)
	return system, pid, res.(*actor.PID)
}

func ask(t *testing.T, system *actor.ActorSystem, pid *actor.PID, msg any) any {
	t.Helper()
	res, err := system.Root.RequestFuture(pid, msg, 2*time.Second).Result()
	require.NoError(t, err)
	return res
}

type reports struct {
	mu sync.Mutex
	fs []Failure
}

func (r *reports) add(f Failure) { r.mu.Lock(); r.fs = append(r.fs, f); r.mu.Unlock() }
func (r *reports) all() []Failure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Failure(nil), r.fs...)
}

// A failure restarts the child with its kept state, answers the failing
// request with an error instead of retrying it, and is reported.
func TestRestartKeepsStateAndAnswersTheFailedRequest(t *testing.T) {
	var r reports
	system, pid, _ := spawn(t, Policy{MaxFailures: 3, Window: time.Minute, InitialDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond, Report: r.add})
	assert.Equal(t, 1, ask(t, system, pid, &count{}))
	res := ask(t, system, pid, &boom{})
	err, ok := res.(error)
	require.True(t, ok, "the failed request is answered: %T", res)
	assert.True(t, errors.Is(err, ErrActorFailed))
	assert.Equal(t, 2, ask(t, system, pid, &count{}), "state survived the restart; the failing message was not retried")
	fs := r.all()
	require.Len(t, fs, 1)
	assert.Equal(t, Restarted, fs[0].Action)
	assert.Equal(t, "boom", fs[0].Reason)
	assert.IsType(t, &boom{}, fs[0].Message)
}

// Restart delays grow exponentially and are capped.
func TestDelaysGrowAndAreCapped(t *testing.T) {
	p := Policy{InitialDelay: 10 * time.Millisecond, MaxDelay: 80 * time.Millisecond}
	for n, want := range map[int]time.Duration{1: 10, 2: 20, 3: 40, 4: 80, 5: 80, 30: 80} {
		d := p.delay(n)
		assert.InDelta(t, float64(want*time.Millisecond), float64(d), float64(want*time.Millisecond)/5+1, "failure %d", n)
	}
	assert.Zero(t, Policy{}.delay(3), "no initial delay: restart at once")
}

// A crash loop stops the child instead of spinning.
func TestCrashLoopStopsTheChild(t *testing.T) {
	var r reports
	system, pid, child := spawn(t, Policy{MaxFailures: 2, Window: time.Minute, Report: r.add})
	for range 3 {
		ask(t, system, pid, &boom{})
	}
	require.Eventually(t, func() bool {
		fs := r.all()
		return len(fs) == 3 && fs[2].Action == Stopped
	}, 2*time.Second, 5*time.Millisecond)
	_, alive := system.ProcessRegistry.GetLocal(child.Id)
	assert.Eventually(t, func() bool { _, alive = system.ProcessRegistry.GetLocal(child.Id); return !alive }, 2*time.Second, 5*time.Millisecond)
}

// Failures outside the window don't count toward the limit.
func TestWindowForgetsOldFailures(t *testing.T) {
	var r reports
	system, pid, _ := spawn(t, Policy{MaxFailures: 1, Window: 50 * time.Millisecond, Report: r.add})
	ask(t, system, pid, &boom{})
	time.Sleep(80 * time.Millisecond)
	ask(t, system, pid, &boom{})
	assert.Equal(t, 1, ask(t, system, pid, &count{}))
	for _, f := range r.all() {
		assert.Equal(t, Restarted, f.Action)
	}
}

package mailbox

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// invoker records what the mailbox hands over.
type invoker struct {
	mu       sync.Mutex
	user     []any
	system   []any
	failures []any
	panicOn  any
}

func (i *invoker) InvokeSystemMessage(m any) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.system = append(i.system, m)
}

func (i *invoker) InvokeUserMessage(m any) {
	i.mu.Lock()
	i.user = append(i.user, m)
	p := i.panicOn
	i.mu.Unlock()
	if p != nil && m == p {
		panic("boom")
	}
}

func (i *invoker) EscalateFailure(reason, _ any) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.failures = append(i.failures, reason)
}

func newSync(inv actor.MessageInvoker) actor.Mailbox {
	m := Unbounded()()
	m.RegisterHandlers(inv, actor.NewSynchronizedDispatcher(300))
	m.Start()
	return m
}

func TestUserMessagesInOrderAcrossGrowth(t *testing.T) {
	inv := &invoker{}
	m := Unbounded()().(*mailbox)
	m.RegisterHandlers(inv, actor.NewSynchronizedDispatcher(300))
	// Drain a few so the ring's head has moved, then queue without running (as
	// if the mailbox were busy), wrapping and growing the ring several times,
	// then drain.
	for i := range 10 {
		m.PostUserMessage(i)
	}
	m.scheduled.Store(running)
	for i := 10; i < 5000; i++ {
		m.PostUserMessage(i)
	}
	assert.Greater(t, len(m.user.ring), keep)
	m.scheduled.Store(idle)
	m.schedule()
	require.Len(t, inv.user, 5000)
	for i, v := range inv.user {
		require.Equal(t, i, v)
	}
	assert.Zero(t, m.UserMessageCount())
	assert.Nil(t, m.user.ring, "a drained queue that grew large lets its ring go")
}

func TestSystemMessagesFirstAndSuspension(t *testing.T) {
	inv := &invoker{}
	m := Unbounded()().(*mailbox)
	m.RegisterHandlers(inv, actor.NewSynchronizedDispatcher(300))
	m.scheduled.Store(running)
	m.PostUserMessage("u1")
	m.PostSystemMessage(&actor.Stop{})
	m.PostSystemMessage(&actor.SuspendMailbox{})
	m.scheduled.Store(idle)
	m.schedule()
	assert.Equal(t, []any{&actor.Stop{}}, inv.system, "system messages run first")
	assert.Empty(t, inv.user, "a suspended mailbox holds user messages")
	m.PostUserMessage("u2")
	assert.Empty(t, inv.user)
	assert.Equal(t, 2, m.UserMessageCount())
	m.PostSystemMessage(&actor.ResumeMailbox{})
	assert.Equal(t, []any{"u1", "u2"}, inv.user, "resumed, in order")
}

func TestPanicEscalatesAndTheNextMessageStillRuns(t *testing.T) {
	inv := &invoker{panicOn: "bad"}
	m := newSync(inv)
	m.PostUserMessage("bad")
	require.Equal(t, []any{"boom"}, inv.failures)
	m.PostUserMessage("good")
	assert.Equal(t, []any{"bad", "good"}, inv.user)
}

func TestNoAllocationPerMessage(t *testing.T) {
	inv := &countingInvoker{}
	m := newSync(inv)
	msg := &struct{ n int }{}
	m.PostUserMessage(msg) // warm up the ring
	allocs := testing.AllocsPerRun(10000, func() { m.PostUserMessage(msg) })
	assert.Zero(t, allocs)
	assert.Equal(t, 10002, inv.n) // AllocsPerRun runs once more to warm up
}

// Negative control: protoactor's own mailbox allocates per scheduling, which is
// what this package exists to avoid; if that ever stops being true, this
// package can go.
func TestDefaultMailboxAllocates(t *testing.T) {
	m := actor.Unbounded()()
	m.RegisterHandlers(&countingInvoker{}, actor.NewSynchronizedDispatcher(300))
	msg := &struct{ n int }{}
	m.PostUserMessage(msg)
	assert.Greater(t, testing.AllocsPerRun(1000, func() { m.PostUserMessage(msg) }), 0.0)
}

type countingInvoker struct{ n int }

func (c *countingInvoker) InvokeSystemMessage(any)  {}
func (c *countingInvoker) InvokeUserMessage(any)    { c.n++ }
func (c *countingInvoker) EscalateFailure(any, any) {}

// An actor on this mailbox, fed by many goroutines at once: every message
// arrives once, each sender's in order; a failing actor is restarted by its
// supervisor and goes on.
func TestInAnActorSystem(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	type msg struct{ from, seq int }
	const senders, each = 8, 2000
	got := make(chan msg, senders*each)
	restarted := make(chan struct{}, 1)
	props := actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case msg:
			if m.seq == -1 {
				panic(errors.New("asked to fail"))
			}
			got <- m
		case *actor.Restarting:
			restarted <- struct{}{}
		}
	}, actor.WithMailbox(Unbounded()))
	pid := sys.Root.Spawn(props)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				sys.Root.Send(pid, msg{s, i})
			}
		}()
	}
	wg.Wait()
	last := make([]int, senders)
	for i := range last {
		last[i] = -1
	}
	for range senders * each {
		select {
		case m := <-got:
			require.Equal(t, last[m.from]+1, m.seq, "sender %d out of order", m.from)
			last[m.from] = m.seq
		case <-time.After(10 * time.Second):
			t.Fatal("messages lost")
		}
	}
	sys.Root.Send(pid, msg{0, -1})
	select {
	case <-restarted:
	case <-time.After(5 * time.Second):
		t.Fatal("a failed actor was not restarted")
	}
	sys.Root.Send(pid, msg{0, each})
	select {
	case m := <-got:
		assert.Equal(t, each, m.seq)
	case <-time.After(5 * time.Second):
		t.Fatal("no message after the restart")
	}
	require.NoError(t, sys.Root.StopFuture(pid).Wait())
}

package ask

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func newAsker(t *testing.T) (*actor.ActorSystem, *Asker) {
	t.Helper()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	t.Cleanup(system.Shutdown)
	a, err := New(system, nil)
	require.NoError(t, err)
	return system, a
}

// registered counts the processes in system's registry.
func registered(system *actor.ActorSystem) int {
	n := 0
	for _, bucket := range system.ProcessRegistry.LocalPIDs.LocalPIDs {
		n += bucket.Count()
	}
	return n
}

// echo answers every request with its message.
func echo(c actor.Context) {
	if _, sys := c.Message().(actor.SystemMessage); sys || c.Sender() == nil {
		return
	}
	c.Respond(c.Message())
}

// parker hands the sender of every string request to the test, which answers
// it when it likes.
func parker(system *actor.ActorSystem) (*actor.PID, <-chan *actor.PID) {
	parked := make(chan *actor.PID, 1024)
	pid := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(string); ok {
			parked <- c.Sender()
		}
	}))
	return pid, parked
}

// askLater asks pid "park" on a goroutine; the answer comes on the channel.
func askLater(t *testing.T, a *Asker, pid *actor.PID) <-chan any {
	got := make(chan any, 1)
	go func() {
		res, err := a.Ask(context.Background(), pid, "park")
		assert.NoError(t, err)
		got <- res
	}()
	return got
}

// answerOwn answers the ask parked as waiter, whose answer comes on got, and
// checks that it gets that answer.
func answerOwn(t *testing.T, system *actor.ActorSystem, waiter *actor.PID, got <-chan any) {
	t.Helper()
	system.Root.Send(waiter, "its own answer")
	select {
	case res := <-got:
		assert.Equal(t, "its own answer", res)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting ask lost its answer")
	}
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// waiting asks a's router how many asks wait for an answer.
func waiting(t *testing.T, system *actor.ActorSystem, a *Asker) int {
	t.Helper()
	ch := make(chan int, 1)
	system.Root.Send(a.router, &countWaiting{ch: ch})
	select {
	case n := <-ch:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("the router did not answer")
		return -1
	}
}

func TestAskAnswers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	system, a := newAsker(t)
	pid := system.Root.Spawn(actor.PropsFromFunc(echo))
	res, err := a.Ask(context.Background(), pid, "hello")
	require.NoError(t, err)
	assert.Equal(t, "hello", res)
	assert.Zero(t, waiting(t, system, a))
}

func TestAskingAGoneActorFails(t *testing.T) {
	system, a := newAsker(t)
	pid := system.Root.Spawn(actor.PropsFromFunc(echo))
	require.NoError(t, system.Root.StopFuture(pid).Wait())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.Ask(ctx, pid, "hello")
	require.ErrorIs(t, err, ErrNoActor)
}

// TestAsksLeaveNoFootprintInTheRegistry: many asks, a few at a time, leave the
// registry as they found it, in count, in ids minted and in memory. The
// registry is 1,024 buckets of 32-shard maps, and a Go map keeps its table
// after a delete: a fresh reply id for every ask lands in a shard no ask
// touched before, until all 32,768 shards hold a table (~9 MiB; 20,000 asks
// leave about 5 MiB). Asks reuse one reply address.
func TestAsksLeaveNoFootprintInTheRegistry(t *testing.T) {
	system, a := newAsker(t)
	pid := system.Root.Spawn(actor.PropsFromFunc(echo))
	ask := func(n int) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range n / 8 {
					if _, err := a.Ask(context.Background(), pid, "x"); !assert.NoError(t, err) {
						return
					}
				}
			})
		}
		wg.Wait()
	}
	ask(64)
	baseCount, baseIDs, baseHeap := registered(system), system.ProcessRegistry.SequenceID, heapInUse()
	const asks = 20_000
	ask(asks)
	count, ids, heap := registered(system), system.ProcessRegistry.SequenceID, heapInUse()
	grew := int64(heap) - int64(baseHeap)
	t.Logf("%d asks: registry %d -> %d processes, %d ids minted, heap %+d bytes", asks, baseCount, count, ids-baseIDs, grew)
	assert.Equal(t, baseCount, count, "processes left in the registry")
	assert.Less(t, ids-baseIDs, uint64(100), "registry ids minted per ask")
	assert.Less(t, grew, int64(1<<20), "the heap grew with the number of asks")
	assert.Zero(t, waiting(t, system, a))
}

// TestALateAnswerNeverReachesALaterAsk: an ask that gave up is forgotten; an
// answer that arrives for it afterwards is dropped, and the ask waiting by
// then gets its own answer.
func TestALateAnswerNeverReachesALaterAsk(t *testing.T) {
	system, a := newAsker(t)
	pid, parked := parker(system)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := a.Ask(ctx, pid, "park")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	abandoned := <-parked

	got := askLater(t, a, pid)
	waiter := <-parked
	system.Root.Send(abandoned, "late answer to the abandoned ask")
	require.Eventually(t, func() bool { return a.Dropped() == 1 }, 5*time.Second, time.Millisecond, "the late answer was not dropped")
	select {
	case res := <-got:
		t.Fatalf("the waiting ask got %v", res)
	default:
	}
	answerOwn(t, system, waiter, got)
	assert.Zero(t, waiting(t, system, a))
}

// TestASecondAnswerNeverReachesALaterAsk: a responder that answers twice (or
// keeps the sender and answers again later) reaches only the ask it answered
// first; the second answer is dropped even while another ask waits.
func TestASecondAnswerNeverReachesALaterAsk(t *testing.T) {
	system, a := newAsker(t)
	pid, parked := parker(system)
	first := askLater(t, a, pid)
	answered := <-parked
	system.Root.Send(answered, "first answer")
	require.Equal(t, "first answer", <-first)

	got := askLater(t, a, pid)
	waiter := <-parked
	system.Root.Send(answered, "second answer to the first ask")
	require.Eventually(t, func() bool { return a.Dropped() == 1 }, 5*time.Second, time.Millisecond, "the second answer was not dropped")
	answerOwn(t, system, waiter, got)
}

// TestOnlyTheSenderPIDItselfAnswers: a PID built with the same address and
// request number as a waiting ask's (a copy, or a stale PID whose number came
// round again) is not that ask's sender: what it carries is dropped.
func TestOnlyTheSenderPIDItselfAnswers(t *testing.T) {
	system, a := newAsker(t)
	pid, parked := parker(system)
	got := askLater(t, a, pid)
	waiter := <-parked
	forged := &actor.PID{Address: waiter.Address, Id: waiter.Id, RequestId: waiter.RequestId}
	system.Root.Send(forged, "through a copy")
	require.Eventually(t, func() bool { return a.Dropped() == 1 }, 5*time.Second, time.Millisecond, "the copy's answer was not dropped")
	answerOwn(t, system, waiter, got)
}

// TestCancelledAsksLeaveNothingWaiting: asks whose context ends are forgotten,
// so memory stays bounded by the asks in flight, and goroutines end.
func TestCancelledAsksLeaveNothingWaiting(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	system, a := newAsker(t)
	pid, parked := parker(system)
	var cancelled atomic.Int32
	var wg sync.WaitGroup
	for range 500 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			if _, err := a.Ask(ctx, pid, "park"); err != nil {
				cancelled.Add(1)
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 500, cancelled.Load())
	assert.Zero(t, waiting(t, system, a), "cancelled asks are still waiting")
	// Their answers, now late, are dropped. (An ask whose context ended before
	// it sent anything has nothing parked.)
	sent := 0
	for more := true; more; {
		select {
		case p := <-parked:
			system.Root.Send(p, "late")
			sent++
		case <-time.After(time.Second):
			more = false
		}
	}
	require.Positive(t, sent)
	require.Eventually(t, func() bool { return a.Dropped() == uint64(sent) }, 5*time.Second, time.Millisecond)
}

// outcome is what Request delivered.
type outcome struct {
	res any
	err error
}

func request(system *actor.ActorSystem, a *Asker, pid *actor.PID, msg any, timeout time.Duration) <-chan outcome {
	got := make(chan outcome, 4)
	a.Request(system.Root, pid, msg, timeout, func(res any, err error) { got <- outcome{res, err} })
	return got
}

// TestRequestDeliversOnce: an actor's request gets its answer once; a dead
// target gives ErrDeadLetter; no answer within the timeout gives ErrTimeout,
// and the answer that comes after it is dropped, not delivered.
func TestRequestDeliversOnce(t *testing.T) {
	system, a := newAsker(t)
	echoPID := system.Root.Spawn(actor.PropsFromFunc(echo))
	assert.Equal(t, outcome{res: "hi"}, <-request(system, a, echoPID, "hi", time.Minute))

	gone := system.Root.Spawn(actor.PropsFromFunc(echo))
	require.NoError(t, system.Root.StopFuture(gone).Wait())
	o := <-request(system, a, gone, "hi", time.Minute)
	assert.ErrorIs(t, o.err, actor.ErrDeadLetter)

	pid, parked := parker(system)
	got := request(system, a, pid, "park", 20*time.Millisecond)
	o = <-got
	assert.ErrorIs(t, o.err, actor.ErrTimeout)
	system.Root.Send(<-parked, "too late")
	require.Eventually(t, func() bool { return a.Dropped() == 1 }, 5*time.Second, time.Millisecond, "the late answer was not dropped")
	assert.Empty(t, got, "delivered more than once")
	assert.Zero(t, waiting(t, system, a))
}

// TestAPanickingDeliverLeavesTheOthersWaiting: a deliver that panics doesn't
// take the router, and the asks waiting in it, down.
func TestAPanickingDeliverLeavesTheOthersWaiting(t *testing.T) {
	system, a := newAsker(t)
	pid, parked := parker(system)
	got := askLater(t, a, pid)
	waiter := <-parked
	done := make(chan struct{})
	echoPID := system.Root.Spawn(actor.PropsFromFunc(echo))
	a.Request(system.Root, echoPID, "boom", time.Minute, func(any, error) { defer close(done); panic("a bug") })
	<-done
	answerOwn(t, system, waiter, got)
}

package ask

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// registered counts the processes in system's registry.
func registered(system *actor.ActorSystem) int {
	n := 0
	for _, bucket := range system.ProcessRegistry.LocalPIDs.LocalPIDs {
		n += bucket.Count()
	}
	return n
}

// echo answers every request with its message, and records the reply ids it saw.
type echo struct{ senders map[string]bool }

func (e *echo) Receive(c actor.Context) {
	if _, sys := c.Message().(actor.SystemMessage); sys || c.Sender() == nil {
		return
	}
	e.senders[c.Sender().Id] = true
	c.Respond(c.Message())
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestAskAnswers(t *testing.T) {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &echo{senders: map[string]bool{}} }))
	res, err := Ask(context.Background(), system, pid, "hello")
	require.NoError(t, err)
	assert.Equal(t, "hello", res)
}

// TestAsksLeaveNoFootprintInTheRegistry: many asks, a few at a time, leave the
// registry as they found it, in count and in memory. The registry is 1,024
// buckets of 32-shard maps, and a Go map keeps its table after a delete: a fresh
// reply id for every ask lands in a shard no ask touched before, until all
// 32,768 shards hold a table (~9 MiB). Ask reuses a small set of reply ids.
func TestAsksLeaveNoFootprintInTheRegistry(t *testing.T) {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	e := &echo{senders: map[string]bool{}}
	pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return e }))
	ask := func(n int) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range n / 8 {
					_, err := Ask(context.Background(), system, pid, "x")
					if !assert.NoError(t, err) {
						return
					}
				}
			})
		}
		wg.Wait()
	}
	ask(64)
	baseCount, baseHeap := registered(system), heapInUse()
	const asks = 20_000
	ask(asks)
	count, heap := registered(system), heapInUse()
	grew := int64(heap) - int64(baseHeap)
	t.Logf("%d asks: registry %d -> %d processes, heap %+d bytes, %d distinct reply ids", asks, baseCount, count, grew, len(e.senders))
	assert.Equal(t, baseCount, count, "processes left in the registry")
	assert.LessOrEqual(t, len(e.senders), 64, "reply ids are reused, not minted per ask")
	assert.Less(t, grew, int64(1<<20), "the heap grew with the number of asks")
}

// TestAnAbandonedAskIsNotReused: a caller that gives up retires its reply id, so
// a late answer can't reach a later ask.
func TestAnAbandonedAskIsNotReused(t *testing.T) {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	parked := make(chan *actor.PID, 2)
	pid := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if s, ok := c.Message().(string); ok && s == "park" {
			parked <- c.Sender() // answered later, by the test
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := Ask(ctx, system, pid, "park")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	abandoned := <-parked

	got := make(chan any, 1)
	go func() {
		res, err := Ask(context.Background(), system, pid, "park")
		assert.NoError(t, err)
		got <- res
	}()
	waiting := <-parked
	assert.NotEqual(t, abandoned.Id, waiting.Id, "an abandoned reply id was reused")
	system.Root.Send(abandoned, "late answer to the abandoned ask")
	system.Root.Send(waiting, "its own answer")
	assert.Equal(t, "its own answer", <-got)
}

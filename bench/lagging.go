package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

func init() { workloads["lagging-catch-up"] = laggingCatchUp }

// (8) lagging catch-up: a subscriber with a queue of 8 (SubscriberBuffer) whose
// handler is held while another connection posts n messages falls n behind;
// released, it catches up from the room's ring and the archive. Its catch-up
// rate is compared with the live delivery rate of a fast subscriber of the same
// runtime and room, in the same run (the "bare" column holds that reference).
func laggingCatchUp(ctx context.Context, w *run) (Result, error) {
	n := w.n(5000, 100)
	poster, err := dialBare(w.o.Server, "bench-poster")
	if err != nil {
		return Result{}, err
	}
	defer poster.close()
	rt, stop, err := w.runtime(ctx, func(c *runtime.Config) { c.SubscriberBuffer = 8 })
	if err != nil {
		return Result{}, err
	}
	defer stop()
	topic := w.topic("lagging")
	var fast, lagging atomic.Int64
	if _, err := rt.Subscribe(ctx, topic, func(seam.Message) { fast.Add(1) }); err != nil {
		return Result{}, err
	}
	gate := make(chan struct{})
	var release sync.Once
	defer release.Do(func() { close(gate) })
	if _, err := rt.Subscribe(ctx, topic, func(seam.Message) {
		<-gate
		lagging.Add(1)
	}); err != nil {
		return Result{}, err
	}
	room := w.room(topic)
	if err := poster.join(room, "poster"); err != nil {
		return Result{}, err
	}
	wait := func(got *atomic.Int64) error {
		deadline := time.Now().Add(5 * time.Minute)
		for got.Load() < int64(n) {
			if time.Now().After(deadline) {
				return fmt.Errorf("delivered %d of %d", got.Load(), n)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			time.Sleep(100 * time.Microsecond)
		}
		return nil
	}

	t0 := time.Now()
	if _, err := pipelined(ctx, n, 20, func(_ context.Context, _, i int) error {
		_, err := poster.post(room, "message "+strconv.Itoa(i))
		return err
	}); err != nil {
		return Result{}, err
	}
	if err := wait(&fast); err != nil {
		return Result{}, fmt.Errorf("the fast subscriber: %w", err)
	}
	live := time.Since(t0)

	t1 := time.Now()
	release.Do(func() { close(gate) })
	if err := wait(&lagging); err != nil {
		return Result{}, fmt.Errorf("the lagging subscriber: %w", err)
	}
	catchUp := time.Since(t1)
	liveRate, catchUpRate := float64(n)/live.Seconds(), float64(n)/catchUp.Seconds()
	q := ratio(catchUpRate, liveRate)
	return Result{Workload: "(8) lagging catch-up: a subscriber with a queue of 8, " + strconv.Itoa(n) + " messages behind", Unit: "msg/s",
		Runtime: catchUpRate, Bare: liveRate, Ratio: q, Goal: "≥ 0.9×", Met: q >= 0.9,
		Notes: fmt.Sprintf("reference (bare column): a fast subscriber's live rate in the same run, %d messages posted from 20 goroutines in %s; caught up in %s",
			n, live.Round(time.Millisecond), catchUp.Round(time.Millisecond))}, nil
}

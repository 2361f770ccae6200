package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parley-go/parley-xmpp/chaos"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// rounds is how many turns the runtime and the bare client take on the
// workloads they share.
const rounds = 20

// turns is what alternate measured: each side's time in every round.
type turns struct{ rt, bare []time.Duration }

func (t turns) rtTotal() time.Duration   { return sum(t.rt) }
func (t turns) bareTotal() time.Duration { return sum(t.bare) }

// ratio is the median of the rounds' ratios of the bare client's time to the
// runtime's for the same work: a server stall in one round (Prosody collects
// its garbage now and then) moves it less than it moves the totals.
func (t turns) ratio() float64 {
	q := make([]float64, len(t.rt))
	for i := range t.rt {
		q[i] = t.bare[i].Seconds() / t.rt[i].Seconds()
	}
	slices.Sort(q)
	if len(q)%2 == 1 {
		return q[len(q)/2]
	}
	return (q[len(q)/2-1] + q[len(q)/2]) / 2
}

func sum(ds []time.Duration) (total time.Duration) {
	for _, d := range ds {
		total += d
	}
	return total
}

// alternate runs the runtime's part and the bare client's in turns, each going
// first in every other round, so that a server that slows down or speeds up
// during the run (its archives grow; its collector runs) weighs on both alike.
func alternate(n int, rt, bare func(round int) (time.Duration, error)) (turns, error) {
	d, err := rotate(n, rt, bare)
	return turns{rt: d[0], bare: d[1]}, err
}

// rotate runs the sides in turns, round after round, each round starting with
// the next side; it returns each side's time per round.
func rotate(n int, sides ...func(round int) (time.Duration, error)) ([][]time.Duration, error) {
	times := make([][]time.Duration, len(sides))
	for round := range n {
		for k := range sides {
			i := (round + k) % len(sides)
			d, err := sides[i](round)
			if err != nil {
				return times, err
			}
			times[i] = append(times[i], d)
		}
	}
	return times, nil
}

// share is round's part of n.
func share(n, round int) int { return n/rounds + btoi(round < n%rounds) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// (1) post → reflection, one at a time.
func postSequential(ctx context.Context, w *run) (Result, error) {
	n := w.n(2000, 20)
	rt, stop, err := w.runtime(ctx, nil)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	topic := w.topic("seq")
	if _, err := rt.Post(ctx, topic, "bench", "warm-up", seam.PostOptions{}); err != nil {
		return Result{}, err
	}
	b, err := dialBare(w.o.Server, "bench-bare")
	if err != nil {
		return Result{}, err
	}
	defer b.close()
	room := w.room(w.topic("seq-bare"))
	if err := b.join(room, "bare"); err != nil {
		return Result{}, err
	}
	if _, err := b.post(room, "warm-up"); err != nil {
		return Result{}, err
	}
	var rtLat, bareLat []time.Duration
	sequential := func(lat *[]time.Duration, post func(string) error) func(int) (time.Duration, error) {
		return func(round int) (time.Duration, error) {
			t0 := time.Now()
			for i := range share(n, round) {
				s := time.Now()
				if err := post("message " + strconv.Itoa(i)); err != nil {
					return 0, err
				}
				*lat = append(*lat, time.Since(s))
			}
			return time.Since(t0), nil
		}
	}
	t, err := alternate(rounds,
		sequential(&rtLat, func(body string) error { _, err := rt.Post(ctx, topic, "bench", body, seam.PostOptions{}); return err }),
		sequential(&bareLat, func(body string) error { _, err := b.post(room, body); return err }))
	if err != nil {
		return Result{}, err
	}
	rtRate, bareRate := float64(n)/t.rtTotal().Seconds(), float64(n)/t.bareTotal().Seconds()
	r50, r99 := latencies(rtLat)
	b50, b99 := latencies(bareLat)
	q := t.ratio()
	return Result{Workload: "(1) post → reflection, sequential", Unit: "msg/s", Runtime: rtRate, Bare: bareRate, Ratio: q,
		Goal: "≥ 0.95×", Met: q >= 0.95,
		Notes: fmt.Sprintf("%d posts each; p50 %s vs %s, p99 %s vs %s", n, us(r50), us(b50), us(r99), us(b99))}, nil
}

func us(d time.Duration) string { return fmt.Sprintf("%dµs", d.Microseconds()) }

// (2) post → reflection, from many goroutines at once, in one room or spread
// over 100.
func postPipelined(ctx context.Context, w *run, rooms int) (Result, error) {
	n := w.n(5000, 100)
	goroutines := 50
	if rooms > 1 {
		goroutines = rooms
	}
	rt, stop, err := w.runtime(ctx, nil)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	b, err := dialBare(w.o.Server, "bench-bare")
	if err != nil {
		return Result{}, err
	}
	defer b.close()
	// Every room joined and posted to once before the clock starts.
	topics, bareRooms := make([]seam.Topic, rooms), make([]string, rooms)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(50)
	for i := range rooms {
		topics[i], bareRooms[i] = w.topic("pipe"), w.room(w.topic("pipe-bare"))
		g.Go(func() error {
			if _, err := rt.Post(gctx, topics[i], "bench", "warm-up", seam.PostOptions{}); err != nil {
				return err
			}
			if err := b.join(bareRooms[i], "bare"); err != nil {
				return err
			}
			_, err := b.post(bareRooms[i], "warm-up")
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Result{}, err
	}
	t, err := alternate(rounds,
		func(round int) (time.Duration, error) {
			return pipelined(ctx, share(n, round), goroutines, func(ctx context.Context, g, i int) error {
				_, err := rt.Post(ctx, topics[g%rooms], "bench", "message "+strconv.Itoa(i), seam.PostOptions{})
				return err
			})
		},
		func(round int) (time.Duration, error) {
			return pipelined(ctx, share(n, round), goroutines, func(_ context.Context, g, i int) error {
				_, err := b.post(bareRooms[g%rooms], "message "+strconv.Itoa(i))
				return err
			})
		})
	if err != nil {
		return Result{}, err
	}
	rtRate, bareRate := float64(n)/t.rtTotal().Seconds(), float64(n)/t.bareTotal().Seconds()
	q := t.ratio()
	name := "(2) post → reflection, pipelined, one room"
	if rooms > 1 {
		name = fmt.Sprintf("(2) post → reflection, pipelined, %d rooms", rooms)
	}
	return Result{Workload: name, Unit: "msg/s", Runtime: rtRate, Bare: bareRate, Ratio: q, Goal: "≥ 0.95×", Met: q >= 0.95,
		Notes: fmt.Sprintf("%d posts each, from %d goroutines", n, goroutines)}, nil
}

// pipelined runs n calls of f spread over goroutines and returns how long they
// took.
func pipelined(ctx context.Context, n, goroutines int, f func(ctx context.Context, g, i int) error) (time.Duration, error) {
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	t0 := time.Now()
	for gi := range goroutines {
		g.Go(func() error {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return nil
				}
				if err := f(gctx, gi, i); err != nil {
					return err
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// (3) delivery to a subscriber of messages another connection posts as fast as
// it can.
func delivery(ctx context.Context, w *run) (Result, error) {
	n := w.n(5000, 100)
	poster, err := dialBare(w.o.Server, "bench-poster")
	if err != nil {
		return Result{}, err
	}
	defer poster.close()
	rt, stop, err := w.runtime(ctx, nil)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	topic := w.topic("delivery")
	var rtGot atomic.Int64
	if _, err := rt.Subscribe(ctx, topic, func(seam.Message) { rtGot.Add(1) }); err != nil {
		return Result{}, err
	}
	rtRoom := w.room(topic)
	receiver, err := dialBare(w.o.Server, "bench-receiver")
	if err != nil {
		return Result{}, err
	}
	defer receiver.close()
	bareRoom := w.room(w.topic("delivery-bare"))
	var bareGot atomic.Int64
	receiver.mu.Lock()
	receiver.onMessage = func(r, _, _ string) {
		if r == bareRoom {
			bareGot.Add(1)
		}
	}
	receiver.mu.Unlock()
	if err := receiver.join(bareRoom, "receiver"); err != nil {
		return Result{}, err
	}
	for _, room := range []string{rtRoom, bareRoom} {
		if err := poster.join(room, "poster"); err != nil {
			return Result{}, err
		}
	}
	// A round: post the round's share from 20 goroutines, until the receiver has
	// had them all.
	deliver := func(room string, got *atomic.Int64) func(int) (time.Duration, error) {
		return func(round int) (time.Duration, error) {
			want := got.Load() + int64(share(n, round))
			t0 := time.Now()
			if _, err := pipelined(ctx, share(n, round), 20, func(_ context.Context, _, i int) error {
				_, err := poster.post(room, "message "+strconv.Itoa(i))
				return err
			}); err != nil {
				return 0, err
			}
			deadline := time.Now().Add(2 * time.Minute)
			for got.Load() < want {
				if time.Now().After(deadline) {
					return 0, fmt.Errorf("delivered %d of %d", got.Load(), want)
				}
				time.Sleep(100 * time.Microsecond)
			}
			return time.Since(t0), nil
		}
	}
	t, err := alternate(rounds, deliver(rtRoom, &rtGot), deliver(bareRoom, &bareGot))
	if err != nil {
		return Result{}, err
	}
	rtRate, bareRate := float64(n)/t.rtTotal().Seconds(), float64(n)/t.bareTotal().Seconds()
	q := t.ratio()
	return Result{Workload: "(3) delivery of another connection's posts to a subscriber", Unit: "msg/s", Runtime: rtRate, Bare: bareRate,
		Ratio: q, Goal: "≥ 0.95×", Met: q >= 0.95, Notes: fmt.Sprintf("%d messages each, posted from 20 goroutines", n)}, nil
}

// (5) replay of a long history from a cursor: the runtime's FetchRecent against
// a bare pager at the server's page cap.
func replay(ctx context.Context, w *run) (Result, error) {
	n := w.n(10000, 100)
	poster, err := dialBare(w.o.Server, "bench-poster")
	if err != nil {
		return Result{}, err
	}
	defer poster.close()
	topic := w.topic("replay")
	room := w.room(topic)
	if err := poster.join(room, "poster"); err != nil {
		return Result{}, err
	}
	first, err := poster.post(room, "the cursor")
	if err != nil {
		return Result{}, err
	}
	w.log("replay: posting %d messages", n)
	if _, err := pipelined(ctx, n, 20, func(_ context.Context, _, i int) error {
		_, err := poster.post(room, "message "+strconv.Itoa(i))
		return err
	}); err != nil {
		return Result{}, err
	}
	rt, stop, err := w.runtime(ctx, func(c *runtime.Config) { c.MaxFetchLimit = n })
	if err != nil {
		return Result{}, err
	}
	defer stop()
	reader, err := dialBare(w.o.Server, "bench-reader")
	if err != nil {
		return Result{}, err
	}
	defer reader.close()

	runtimeRead := func() (time.Duration, error) {
		since := seam.Cursor(first)
		t0 := time.Now()
		res, err := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Since: &since, Limit: n})
		if err != nil {
			return 0, err
		}
		if len(res.Messages) != n {
			return 0, fmt.Errorf("the runtime read %d of %d", len(res.Messages), n)
		}
		return time.Since(t0), nil
	}
	bareRead := func() (time.Duration, error) {
		t0 := time.Now()
		got, after := 0, first
		for {
			ids, last, complete, err := reader.page(room, after, 50)
			if err != nil {
				return 0, err
			}
			got += len(ids)
			if complete || last == "" || last == after {
				break
			}
			after = last
		}
		if got != n {
			return 0, fmt.Errorf("the bare pager read %d of %d", got, n)
		}
		return time.Since(t0), nil
	}
	// Once each: nothing changes in the archive between the reads.
	rtTime, err := runtimeRead()
	if err != nil {
		return Result{}, err
	}
	bareTime, err := bareRead()
	if err != nil {
		return Result{}, err
	}
	rtRate, bareRate := float64(n)/rtTime.Seconds(), float64(n)/bareTime.Seconds()
	q := ratio(rtRate, bareRate)
	return Result{Workload: "(5) archive replay from a cursor", Unit: "msg/s", Runtime: rtRate, Bare: bareRate, Ratio: q,
		Goal: "≥ 0.9×", Met: q >= 0.9, Notes: fmt.Sprintf("%d messages, pages of 50 (the server's cap)", n)}, nil
}

// (6) joining many rooms on one connection: wall time, and memory per idle room.
func joins(ctx context.Context, w *run) (Result, error) {
	n := w.n(10000, 50)
	muc := w.transient()
	rt, stop, err := w.runtime(ctx, func(c *runtime.Config) { c.MUCService = muc })
	if err != nil {
		return Result{}, err
	}
	defer stop()
	if _, err := rt.Subscribe(ctx, w.topic("joins-warm"), func(seam.Message) {}); err != nil {
		return Result{}, err
	}
	b, err := dialBare(w.o.Server, "bench-bare")
	if err != nil {
		return Result{}, err
	}
	defer b.close()
	heap0, rss0 := memory()
	var joined atomic.Int64
	times, err := rotate(rounds,
		func(round int) (time.Duration, error) {
			return pipelined(ctx, share(n, round), 100, func(ctx context.Context, _, _ int) error {
				_, err := rt.Subscribe(ctx, w.topic("j"), func(seam.Message) {})
				if d := joined.Add(1); d%1000 == 0 {
					w.log("joins: %d of %d rooms", d, n)
				}
				return err
			})
		},
		func(round int) (time.Duration, error) {
			return pipelined(ctx, share(n, round), 100, func(context.Context, int, int) error {
				return b.join(w.roomOn(w.topic("jb"), muc), "bare")
			})
		},
		func(round int) (time.Duration, error) {
			return pipelined(ctx, share(n, round), 100, func(context.Context, int, int) error {
				return b.joinAndRead(w.roomOn(w.topic("jr"), muc), "bare")
			})
		})
	if err != nil {
		return Result{}, err
	}
	heap1, rss1 := memory()
	perRoomHeap := float64(heap1-heap0) / float64(n)
	perRoomRSS := float64(rss1-rss0) / float64(n)
	t := turns{rt: times[0], bare: times[1]}
	same := turns{rt: times[0], bare: times[2]}
	rtWall := t.rtTotal()
	rtRate, bareRate := float64(n)/rtWall.Seconds(), float64(n)/t.bareTotal().Seconds()
	q := t.ratio()
	return Result{Workload: fmt.Sprintf("(6) join %d rooms on one connection", n), Unit: "rooms/s", Runtime: rtRate, Bare: bareRate, Ratio: q,
		Goal: "< 60 s and < 16 KiB per idle room", Met: rtWall < 60*time.Second && perRoomRSS < 16*1024,
		Notes: fmt.Sprintf("%s in all; %.1f KiB heap and %.1f KiB resident per room (subscribed, idle); "+
			"a bare client making the runtime's four requests per room (join, unlock, disco#info, archive tail): %.0f rooms/s, the runtime %.2f× of it",
			rtWall.Round(100*time.Millisecond), perRoomHeap/1024, perRoomRSS/1024, float64(n)/same.bareTotal().Seconds(), same.ratio())}, nil
}

// memory returns the live heap after a collection, and the resident set once
// the freed memory is handed back to the system.
func memory() (heap, rss uint64) {
	goruntime.GC()
	debug.FreeOSMemory()
	var m goruntime.MemStats
	goruntime.ReadMemStats(&m)
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			rss = pages * uint64(os.Getpagesize())
		}
	}
	return m.HeapAlloc, rss
}

// (7) recovery: every connection killed, to the first message delivered after.
func recovery(ctx context.Context, w *run) (Result, error) {
	kills := w.n(50, 3)
	proxy, err := chaos.NewProxy(w.o.Server.Addr)
	if err != nil {
		return Result{}, err
	}
	defer proxy.Close()
	rt, stop, err := w.runtime(ctx, func(c *runtime.Config) { c.Service = "xmpp://" + proxy.Addr() }) // default backoff
	if err != nil {
		return Result{}, err
	}
	defer stop()
	topic := w.topic("recovery")
	var mu sync.Mutex
	var got []time.Time
	if _, err := rt.Subscribe(ctx, topic, func(seam.Message) {
		mu.Lock()
		got = append(got, time.Now())
		mu.Unlock()
	}); err != nil {
		return Result{}, err
	}
	poster, err := dialBare(w.o.Server, "bench-poster") // around the proxy
	if err != nil {
		return Result{}, err
	}
	defer poster.close()
	if err := poster.join(w.room(topic), "poster"); err != nil {
		return Result{}, err
	}
	postCtx, stopPosting := context.WithCancel(ctx)
	posting := make(chan error, 1)
	go func() {
		for i := 0; postCtx.Err() == nil; i++ {
			if _, err := poster.post(w.room(topic), "tick "+strconv.Itoa(i)); err != nil {
				posting <- err
				return
			}
			// 50 messages a second: the archive grows by about 2,000 over the run,
			// and Prosody's file storage reads all of it for every page a replay
			// asks for, so a faster poster measures the server's storage.
			time.Sleep(20 * time.Millisecond)
		}
		posting <- nil
	}()
	firstAfter := func(t time.Time) (time.Duration, bool) {
		mu.Lock()
		defer mu.Unlock()
		for i := len(got) - 1; i >= 0 && got[i].After(t); i-- {
			if i == 0 || !got[i-1].After(t) {
				return got[i].Sub(t), true
			}
		}
		return 0, false
	}
	var recs []time.Duration
	for k := range kills {
		// A link lost within a second of its login counts as a failed login
		// (it waits its backoff: actors/session flapWindow); each kill here
		// measures the recovery of a link that was up, not of a flapping one.
		time.Sleep(1100 * time.Millisecond)
		t := time.Now()
		if err := proxy.KillAll(); err != nil {
			stopPosting()
			return Result{}, err
		}
		// Wait until the link was found lost and the first message after it came.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if d, ok := firstAfter(t); ok && rt.State() == runtime.Online && d > 0 {
				recs = append(recs, d)
				break
			}
			if time.Now().After(deadline) {
				stopPosting()
				return Result{}, errors.New("no delivery 30 s after a kill")
			}
			time.Sleep(time.Millisecond)
		}
		if (k+1)%10 == 0 {
			w.log("recovery: %d of %d kills", k+1, kills)
		}
	}
	stopPosting()
	if err := <-posting; err != nil {
		return Result{}, err
	}
	p50, p99 := latencies(recs)
	return Result{Workload: "(7) recovery: connection killed → first message delivered", Unit: "ms p99", Runtime: float64(p99.Milliseconds()),
		Goal: "p99 < 1 s (default backoff)", Met: p99 < time.Second,
		Notes: fmt.Sprintf("%d kills, another connection posting every 20 ms; p50 %s, p99 %s", kills, p50.Round(time.Millisecond), p99.Round(time.Millisecond))}, nil
}

// (4) in-process fan-out: one room, many subscribers, messages arriving as fast
// as a socket carries them from a fake server (a real one delivers a few
// thousand a second to one connection: that would measure the server). It runs
// twice, with one subscriber and with all of them; the difference in
// allocations is what each further subscriber costs per message.
func fanOut(ctx context.Context, w *run) (Result, error) {
	n := w.n(4000, 1000) // cheap: a smoke pass measures it at near full size
	const subscribers = 1000
	_, allocs1, err := fanOutOnce(ctx, w, n, 1)
	if err != nil {
		return Result{}, err
	}
	rate, allocsN, err := fanOutOnce(ctx, w, n, subscribers)
	if err != nil {
		return Result{}, err
	}
	perDelivery := float64(allocsN) / float64(n*subscribers)
	perSubscriber := (float64(allocsN) - float64(allocs1)) / float64(n*(subscribers-1))
	return Result{Workload: fmt.Sprintf("(4) in-process fan-out, 1 room → %d subscribers", subscribers), Unit: "deliveries/s", Runtime: rate,
		Goal: "≥ 1M/s, no per-subscriber allocation", Met: rate >= 1e6 && perSubscriber < 0.01, // what remains is the queues growing
		Notes: fmt.Sprintf("%d messages; %.3f allocations per delivery, %.3f per added subscriber and message", n, perDelivery, perSubscriber)}, nil
}

// fanOutOnce feeds n messages to subs subscribers of one room and returns the
// deliveries per second and the allocations made meanwhile.
func fanOutOnce(ctx context.Context, w *run, n, subs int) (float64, uint64, error) {
	const domain, muc = "bench.local", "rooms.bench.local"
	srv, err := newFakeMUC(domain, muc)
	if err != nil {
		return 0, 0, err
	}
	defer srv.close()
	rt, err := runtime.New(runtime.Config{Service: "xmpp://" + srv.addr(), Domain: domain, MUCService: muc, Username: "bench", Password: "bench",
		SubscriberBuffer: n + 1, // the fake archive is empty: nobody may fall back on it
		KeepAlive:        -1, SelfPing: -1})
	if err != nil {
		return 0, 0, err
	}
	if err := rt.Connect(ctx); err != nil {
		return 0, 0, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = rt.Disconnect(dctx)
	}()
	if err := srv.awaitClient(5 * time.Second); err != nil {
		return 0, 0, err
	}
	topic := seam.Topic("fan-out")
	var remaining atomic.Int64
	remaining.Store(int64(subs))
	all := make(chan struct{})
	for range subs {
		got := 0 // each handler is called one message at a time
		if _, err := rt.Subscribe(ctx, topic, func(seam.Message) {
			if got++; got == n && remaining.Add(-1) == 0 {
				close(all)
			}
		}); err != nil {
			return 0, 0, err
		}
	}
	local, _ := runtime.RoomLocalpart(topic)
	goruntime.GC()
	var m0, m1 goruntime.MemStats
	goruntime.ReadMemStats(&m0)
	t0 := time.Now()
	if err := srv.blast(local+"@"+muc, n); err != nil {
		return 0, 0, err
	}
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		return 0, 0, fmt.Errorf("fan-out: %d of %d subscribers got all %d messages", int64(subs)-remaining.Load(), subs, n)
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	d := time.Since(t0)
	goruntime.ReadMemStats(&m1)
	return float64(n*subs) / d.Seconds(), m1.Mallocs - m0.Mallocs, nil
}

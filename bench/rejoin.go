package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/parley-go/parley-xmpp/chaos"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// (9) rejoin: n subscribed rooms recover after a link kill, measured from the
// kill until every room has rejoined and replayed what was missed (the
// RoomRejoined event), against a bare client whose link is killed the same way
// and which then rejoins the same rooms and reads each one's archive after the
// same cursor, 100 rooms at a time. It runs at 10,000 rooms and at 1,000 (both
// scaled); the goal holds at both.
func rejoin(ctx context.Context, w *run) (Result, error) {
	big, small := w.n(10000, 20), w.n(1000, 10)
	var rt, bare [2]time.Duration
	var q [2]float64
	for i, n := range []int{small, big} {
		t, err := rejoinOnce(ctx, w, n, false)
		if err != nil {
			return Result{}, err
		}
		// Medians over the rounds; the ratio is the median round's.
		rt[i], bare[i], q[i] = rejoinMedian(t.rt), rejoinMedian(t.bare), 1/t.ratio()
		w.log("rejoin: %d rooms: runtime %s, bare client %s (%.2f×)", n, rt[i].Round(time.Millisecond), bare[i].Round(time.Millisecond), q[i])
	}
	return Result{Workload: fmt.Sprintf("(9) rejoin %d subscribed rooms after a kill", big), Unit: "ms", Runtime: float64(rt[1].Milliseconds()), Bare: float64(bare[1].Milliseconds()), Ratio: q[1],
		Goal: "≤ 1.5× the bare client's time", Met: q[1] <= 1.5 && q[0] <= 1.5,
		Notes: fmt.Sprintf("kill → every room rejoined and replayed from its cursor; the bare client rejoins and reads each room's archive after the same cursor, 100 rooms at a time; medians of %d kills each; %d rooms: %s vs %s (%.2f×)",
			w.rejoinRounds(), small, rt[0].Round(time.Millisecond), bare[0].Round(time.Millisecond), q[0])}, nil
}

func rejoinMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// (11) resumed recovery: the same n subscribed rooms after a link kill, with
// XEP-0198 stream management on (the runtime's default when the server offers
// it): measured from the kill until every room reported its link resumed
// (RoomResumed: nothing rejoined or replayed), against a bare client whose
// link is killed the same way and which then only joins the same rooms
// again, 100 at a time (a plain join, no archive read). At 1,000 and 10,000
// rooms (scaled). Workload (9) is the full recovery of the same rooms
// (stream management off).
func resumedRecovery(ctx context.Context, w *run) (Result, error) {
	big, small := w.n(10000, 20), w.n(1000, 10)
	var rt, bare [2]time.Duration
	var q [2]float64
	for i, n := range []int{small, big} {
		t, err := rejoinOnce(ctx, w, n, true)
		if err != nil {
			return Result{}, err
		}
		rt[i], bare[i], q[i] = rejoinMedian(t.rt), rejoinMedian(t.bare), 1/t.ratio()
		w.log("resumed-recovery: %d rooms: runtime %s, bare client's plain join %s (%.2f×)", n, rt[i].Round(time.Millisecond), bare[i].Round(time.Millisecond), q[i])
	}
	return Result{Workload: fmt.Sprintf("(11) resumed recovery of %d subscribed rooms after a kill", big), Unit: "ms", Runtime: float64(rt[1].Milliseconds()), Bare: float64(bare[1].Milliseconds()), Ratio: q[1],
		Goal: "≤ 0.5× the bare client's plain join", Met: q[1] <= 0.5 && q[0] <= 0.5,
		Notes: fmt.Sprintf("kill → every room resumed (XEP-0198: no rejoin, no replay); the bare client joins the rooms again, 100 at a time, no archive read; medians of %d kills each; %d rooms: %s vs %s (%.2f×)",
			w.rejoinRounds(), small, rt[0].Round(time.Millisecond), bare[0].Round(time.Millisecond), q[0])}, nil
}

// rejoinOnce sets up n rooms that both the runtime (subscribed) and a bare
// client occupy, each holding one message (the cursor), then kills each one's
// link in turn, rejoinRounds times (the other keeps the rooms alive: they are
// not persistent), and times each recovery. resume: stream management on,
// the runtime's recovery is the rooms' RoomResumed and the bare client's a
// plain join; otherwise stream management off, the runtime's is RoomRejoined
// and the bare client reads each room's archive after its cursor too.
func rejoinOnce(ctx context.Context, w *run, n int, resume bool) (turns, error) {
	name, want := "rejoin", runtime.RoomRejoined
	if resume {
		name, want = "resumed-recovery", runtime.RoomResumed
	}
	rtProxy, err := chaos.NewProxy(w.o.Server.Addr)
	if err != nil {
		return turns{}, err
	}
	defer rtProxy.Close()
	bareProxy, err := chaos.NewProxy(w.o.Server.Addr)
	if err != nil {
		return turns{}, err
	}
	defer bareProxy.Close()
	muc := w.transient()
	var rejoined, delivered atomic.Int64
	var onlineAt atomic.Int64 // unix nanoseconds of the last Online
	r, stop, err := w.runtime(ctx, func(c *runtime.Config) {
		c.Service, c.MUCService = "xmpp://"+rtProxy.Addr(), muc
		c.DisableStreamManagement = !resume
		c.OnStateChange = func(sc runtime.StateChange) {
			if sc.To == runtime.Online {
				onlineAt.Store(sc.At.UnixNano())
			}
		}
		c.OnRoomEvent = func(ev runtime.RoomEvent) {
			if ev.Kind == want {
				rejoined.Add(1)
			}
		}
	})
	if err != nil {
		return turns{}, err
	}
	defer stop()
	viaProxy := w.o.Server
	viaProxy.Addr = bareProxy.Addr()
	b, err := dialBare(viaProxy, "bench-rejoin")
	if err != nil {
		return turns{}, err
	}
	rooms, cursors := make([]string, n), make([]string, n)
	if _, err := pipelined(ctx, n, 100, func(ctx context.Context, _, i int) error {
		topic := w.topic(name)
		rooms[i] = w.roomOn(topic, muc)
		if _, err := r.Subscribe(ctx, topic, func(seam.Message) { delivered.Add(1) }); err != nil {
			return err
		}
		if err := b.join(rooms[i], "bare"); err != nil {
			return err
		}
		cursor, err := b.post(rooms[i], "cursor "+strconv.Itoa(i))
		cursors[i] = cursor
		return err
	}); err != nil {
		b.close()
		return turns{}, err
	}
	if err := rejoinWait(ctx, 2*time.Minute, func() bool { return delivered.Load() == int64(n) }); err != nil {
		b.close()
		return turns{}, fmt.Errorf("%s: %d of %d messages delivered: %w", name, delivered.Load(), n, err)
	}
	w.log("%s: %d rooms set up", name, n)
	defer func() { b.close() }()
	t, err := alternate(w.rejoinRounds(),
		func(int) (time.Duration, error) {
			// A link lost within a second of its login counts as a failed
			// login (actors/session flapWindow): this measures the recovery
			// of a link that was up.
			time.Sleep(1100 * time.Millisecond)
			rejoined.Store(0)
			t0 := time.Now()
			if err := rtProxy.KillAll(); err != nil {
				return 0, err
			}
			if err := rejoinWait(ctx, 5*time.Minute, func() bool { return rejoined.Load() >= int64(n) }); err != nil {
				return 0, fmt.Errorf("%s: %d of %d rooms recovered (%s): %w", name, rejoined.Load(), n, want, err)
			}
			d := time.Since(t0)
			w.log("%s: %d rooms: the runtime took %s (online again after %s)", name, n, d.Round(time.Millisecond), time.Unix(0, onlineAt.Load()).Sub(t0).Round(time.Millisecond))
			return d, nil
		},
		func(int) (time.Duration, error) {
			t0 := time.Now()
			if err := bareProxy.KillAll(); err != nil {
				return 0, err
			}
			<-b.end
			if b, err = dialBare(viaProxy, "bench-rejoin"); err != nil {
				return 0, err
			}
			_, err := pipelined(ctx, n, 100, func(_ context.Context, _, i int) error {
				if err := b.join(rooms[i], "bare"); err != nil || resume {
					return err
				}
				_, _, _, err := b.page(rooms[i], cursors[i], 50)
				return err
			})
			d := time.Since(t0)
			w.log("%s: %d rooms: the bare client took %s", name, n, d.Round(time.Millisecond))
			return d, err
		})
	return t, err
}

// rejoinRounds is how many kills each side takes per size: one in a smoke
// pass (TestSmoke's scale 0.01), three in a measured run.
func (w *run) rejoinRounds() int {
	if w.o.Scale < 0.1 {
		return 1
	}
	return 3
}

// rejoinWait polls ok until it holds, for at most d.
func rejoinWait(ctx context.Context, d time.Duration, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

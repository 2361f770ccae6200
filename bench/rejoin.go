package bench

import (
	"context"
	"errors"
	"fmt"
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
	var rs [2][2]time.Duration
	for i, n := range []int{small, big} {
		rt, bare, err := rejoinOnce(ctx, w, n)
		if err != nil {
			return Result{}, err
		}
		rs[i] = [2]time.Duration{rt, bare}
		w.log("rejoin: %d rooms: runtime %s, bare client %s (%.2f×)", n, rt.Round(time.Millisecond), bare.Round(time.Millisecond), ratio(rt.Seconds(), bare.Seconds()))
	}
	q := ratio(rs[1][0].Seconds(), rs[1][1].Seconds())
	qSmall := ratio(rs[0][0].Seconds(), rs[0][1].Seconds())
	return Result{Workload: fmt.Sprintf("(9) rejoin %d subscribed rooms after a kill", big), Unit: "ms", Runtime: float64(rs[1][0].Milliseconds()), Bare: float64(rs[1][1].Milliseconds()), Ratio: q,
		Goal: "≤ 1.5× the bare client's time", Met: q <= 1.5 && qSmall <= 1.5,
		Notes: fmt.Sprintf("kill → every room rejoined and replayed from its cursor; the bare client rejoins and reads each room's archive after the same cursor, 100 rooms at a time; %d rooms: %s vs %s (%.2f×)",
			small, rs[0][0].Round(time.Millisecond), rs[0][1].Round(time.Millisecond), qSmall)}, nil
}

// rejoinOnce sets up n rooms that both the runtime (subscribed) and a bare
// client occupy, each holding one message (the cursor), then kills each one's
// link in turn (the other keeps the rooms alive: they are not persistent) and
// times its recovery.
func rejoinOnce(ctx context.Context, w *run, n int) (rt, bare time.Duration, err error) {
	rtProxy, err := chaos.NewProxy(w.o.Server.Addr)
	if err != nil {
		return 0, 0, err
	}
	defer rtProxy.Close()
	bareProxy, err := chaos.NewProxy(w.o.Server.Addr)
	if err != nil {
		return 0, 0, err
	}
	defer bareProxy.Close()
	muc := w.transient()
	var rejoined, delivered atomic.Int64
	r, stop, err := w.runtime(ctx, func(c *runtime.Config) {
		c.Service, c.MUCService = "xmpp://"+rtProxy.Addr(), muc
		c.OnRoomEvent = func(ev runtime.RoomEvent) {
			if ev.Kind == runtime.RoomRejoined {
				rejoined.Add(1)
			}
		}
	})
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	viaProxy := w.o.Server
	viaProxy.Addr = bareProxy.Addr()
	b, err := dialBare(viaProxy, "bench-rejoin")
	if err != nil {
		return 0, 0, err
	}
	rooms, cursors := make([]string, n), make([]string, n)
	if _, err := pipelined(ctx, n, 100, func(ctx context.Context, _, i int) error {
		topic := w.topic("rejoin")
		rooms[i] = w.roomOn(topic, muc)
		if _, err := r.Subscribe(ctx, topic, func(seam.Message) { delivered.Add(1) }); err != nil {
			return err
		}
		if err := b.join(rooms[i], "bare"); err != nil {
			return err
		}
		cursors[i], err = b.post(rooms[i], "cursor "+strconv.Itoa(i))
		return err
	}); err != nil {
		b.close()
		return 0, 0, err
	}
	if err := rejoinWait(ctx, 2*time.Minute, func() bool { return delivered.Load() == int64(n) }); err != nil {
		b.close()
		return 0, 0, fmt.Errorf("rejoin: %d of %d messages delivered: %w", delivered.Load(), n, err)
	}
	w.log("rejoin: %d rooms set up", n)

	// A link lost within a second of its login counts as a failed login
	// (actors/session flapWindow): this measures the recovery of a link that
	// was up.
	time.Sleep(1100 * time.Millisecond)
	t0 := time.Now()
	if err := rtProxy.KillAll(); err != nil {
		b.close()
		return 0, 0, err
	}
	if err := rejoinWait(ctx, 5*time.Minute, func() bool { return rejoined.Load() >= int64(n) }); err != nil {
		b.close()
		return 0, 0, fmt.Errorf("rejoin: %d of %d rooms rejoined: %w", rejoined.Load(), n, err)
	}
	rt = time.Since(t0)

	t0 = time.Now()
	if err := bareProxy.KillAll(); err != nil {
		return 0, 0, err
	}
	<-b.end
	b, err = dialBare(viaProxy, "bench-rejoin")
	if err != nil {
		return 0, 0, err
	}
	defer b.close()
	if _, err := pipelined(ctx, n, 100, func(_ context.Context, _, i int) error {
		if err := b.join(rooms[i], "bare"); err != nil {
			return err
		}
		_, _, _, err := b.page(rooms[i], cursors[i], 50)
		return err
	}); err != nil {
		return 0, 0, err
	}
	return rt, time.Since(t0), nil
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

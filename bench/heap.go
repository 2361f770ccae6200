package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// (10) busy-room heap: the live heap a busy room holds, against an idle one's,
// at default settings. 1,000 rooms, each with one subscriber, get 10,000
// messages each from an in-process fake MUC (bench/fakemuc.go): ten million
// messages through a real server would take hours on this machine, and what
// is measured is what the runtime keeps, not what a server does. --scale
// scales rooms and messages alike.
//
// The heap is read after a collection: before the runtime exists (the fixed
// cost is everything else in the process), once it is connected (the cost of
// a runtime), with every room joined and subscribed but silent (idle), after
// every round of messages (the series shows where it flattens: the rooms'
// fixed-size dedup windows fill at 4,096 messages) and after posts from the
// runtime, spread over the rooms (a post must leave nothing behind).
//
// Messages are sent in rounds of half a subscriber's buffer to every room,
// interleaved across the rooms, the next round once every subscriber has the
// last: the fake archive is empty, and a subscriber that fell behind would be
// fed from it. (Sent as a burst of 512 to one room after another instead, each
// room's mailbox and its subscriber's grow to hold the burst and keep up to
// 16 KiB each: internal/mailbox lets go of a drained queue only past 1,024.)
func busyRoomHeap(ctx context.Context, w *run) (Result, error) {
	rooms, perRoom, posts := w.n(1000, 10), w.n(10000, 100), w.n(20000, 200)
	const domain, muc = "bench.local", "rooms.bench.local"
	srv, err := newFakeMUC(domain, muc)
	if err != nil {
		return Result{}, err
	}
	defer srv.close()
	heapFixed, _ := memory()

	// Default settings, but for where the server is.
	rt, err := runtime.New(runtime.Config{Service: "xmpp://" + srv.addr(), Domain: domain, MUCService: muc, Username: "bench", Password: "bench"})
	if err != nil {
		return Result{}, err
	}
	if err := rt.Connect(ctx); err != nil {
		return Result{}, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = rt.Disconnect(dctx)
	}()
	if err := srv.awaitClient(5 * time.Second); err != nil {
		return Result{}, err
	}
	heapRuntime, _ := memory()

	topics := make([]seam.Topic, rooms)
	jids := make([]string, rooms)
	var delivered atomic.Int64
	if _, err := pipelined(ctx, rooms, 16, func(ctx context.Context, _, i int) error {
		topics[i] = seam.Topic(fmt.Sprintf("busy-%d", i))
		local, _ := runtime.RoomLocalpart(topics[i])
		jids[i] = local + "@" + muc
		_, err := rt.Subscribe(ctx, topics[i], func(seam.Message) { delivered.Add(1) })
		return err
	}); err != nil {
		return Result{}, err
	}
	heapIdle, _ := memory()
	idle := float64(heapIdle-heapRuntime) / float64(rooms)

	round := max(1, defaults.SubscriberBuffer/2)
	var samples []string
	t0 := time.Now()
	for sent := 0; sent < perRoom; {
		k := min(round, perRoom-sent)
		if err := srv.feed(jids, sent, k); err != nil {
			return Result{}, err
		}
		sent += k
		if err := waitFor(ctx, &delivered, int64(rooms*sent), time.Minute); err != nil {
			return Result{}, fmt.Errorf("busy-room-heap: after %d messages per room: %w", sent, err)
		}
		h, _ := memory()
		per := (float64(h) - float64(heapRuntime)) / float64(rooms)
		samples = append(samples, fmt.Sprintf("%d:%.1f", sent, per/1024))
		w.log("busy-room-heap: %d of %d messages in each of %d rooms, %.1f KiB per room", sent, perRoom, rooms, per/1024)
	}
	feedTime := time.Since(t0)
	heapBusy, _ := memory()
	busy := (float64(heapBusy) - float64(heapRuntime)) / float64(rooms)

	before := delivered.Load()
	if _, err := pipelined(ctx, posts, 8, func(ctx context.Context, _, i int) error {
		_, err := rt.Post(ctx, topics[i%rooms], "", fmt.Sprintf("post %d", i), seam.PostOptions{})
		return err
	}); err != nil {
		return Result{}, err
	}
	if err := waitFor(ctx, &delivered, before+int64(posts), time.Minute); err != nil {
		return Result{}, fmt.Errorf("busy-room-heap: posts: %w", err)
	}
	heapPosted, _ := memory()
	perPost := (float64(heapPosted) - float64(heapBusy)) / float64(posts)

	return Result{Workload: fmt.Sprintf("(10) busy-room heap: %d rooms × %d messages (in-process fake MUC)", rooms, perRoom),
		Unit: "KiB per busy room", Runtime: busy / 1024,
		Goal: "≤ 64 KiB per busy room", Met: busy <= 64*1024,
		Notes: fmt.Sprintf("idle room %.1f KiB (busy %.1f× idle); fixed %.1f MiB, a connected runtime %+.1f MiB; KiB per room after each round of messages: %s; "+
			"then %d posts: %+.1f bytes per post; %d messages delivered in %s",
			idle/1024, busy/idle, float64(heapFixed)/(1<<20), (float64(heapRuntime)-float64(heapFixed))/(1<<20), strings.Join(samples, " "),
			posts, perPost, rooms*perRoom, feedTime.Round(100*time.Millisecond))}, nil
}

// feed sends messages first to first+n-1 to every room, as another occupant,
// interleaved (message i to every room, then message i+1), as a bridge's
// traffic over many rooms comes, written in chunks of 64 KiB.
func (f *fakeMUC) feed(rooms []string, first, n int) error {
	f.mu.Lock()
	jid, c := f.jid, f.conn
	for _, room := range rooms {
		if !f.joined[room] {
			f.mu.Unlock()
			return fmt.Errorf("bench: the fake server has no client in %s", room)
		}
	}
	f.mu.Unlock()
	var b strings.Builder
	flush := func() error {
		_, err := io.WriteString(c, b.String())
		b.Reset()
		return err
	}
	for i := first; i < first+n; i++ {
		for _, room := range rooms {
			fmt.Fprintf(&b, `<message from='%s/busy' to='%s' type='groupchat'><body>busy message %d, about as long as a line of chat</body><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='busy-%09d'/></message>`,
				room, jid, i, room, i)
			if b.Len() >= 64<<10 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// waitFor waits until n reaches want.
func waitFor(ctx context.Context, n *atomic.Int64, want int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for n.Load() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d deliveries after %s", n.Load(), want, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

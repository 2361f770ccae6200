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
// fixed-size dedup windows fill at 4,096 messages) and after each batch of
// posts from the runtime to every room (a post must leave nothing behind once
// a room's bounded memories are full).
//
// Messages are sent in rounds of half a subscriber's buffer to every room,
// interleaved across the rooms, the next round once every subscriber has the
// last: the fake archive is empty, and a subscriber that fell behind would be
// fed from it. (Sent as a burst of 512 to one room after another instead, each
// room's mailbox and its subscriber's grow to hold the burst and keep up to
// 16 KiB each: internal/mailbox lets go of a drained queue only past 1,024.)
func busyRoomHeap(ctx context.Context, w *run) (Result, error) {
	rooms, perRoom := w.n(1000, 10), w.n(10000, 100)
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

	// Then every room posts: batches of 128 posts to each room, from 32
	// goroutines. A room remembers its last 256 settled posts (for a caller
	// that gave up and asks what became of its post), so a posting room grows
	// over the first two batches; the third shows what a post leaves behind
	// after that: nothing, if the heap is flat.
	batch := w.n(128, 2)
	var posting []string
	heapPrev := heapBusy
	var lastPerPost float64
	for b := 1; b <= 3; b++ {
		before := delivered.Load()
		if _, err := pipelined(ctx, rooms*batch, 32, func(ctx context.Context, _, i int) error {
			_, err := rt.Post(ctx, topics[i%rooms], "", fmt.Sprintf("post %d", i), seam.PostOptions{})
			return err
		}); err != nil {
			return Result{}, fmt.Errorf("busy-room-heap: posts: %w", err)
		}
		if err := waitFor(ctx, &delivered, before+int64(rooms*batch), time.Minute); err != nil {
			return Result{}, fmt.Errorf("busy-room-heap: posts: %w", err)
		}
		h, _ := memory()
		posting = append(posting, fmt.Sprintf("%d:%.1f", b*batch, (float64(h)-float64(heapRuntime))/float64(rooms)/1024))
		lastPerPost = (float64(h) - float64(heapPrev)) / float64(rooms*batch)
		heapPrev = h
		w.log("busy-room-heap: %d posts to each room, %.1f KiB per room", b*batch, (float64(h)-float64(heapRuntime))/float64(rooms)/1024)
	}

	return Result{Workload: fmt.Sprintf("(10) busy-room heap: %d rooms × %d messages (in-process fake MUC)", rooms, perRoom),
		Unit: "KiB/busy-room", Runtime: busy / 1024,
		Goal: "≤ 64 KiB per busy room", Met: busy <= 64*1024,
		Notes: fmt.Sprintf("idle room %.1f KiB (busy %.1f× idle); fixed %.1f MiB, a connected runtime %+.1f MiB; KiB per room after each round of messages: %s; "+
			"then posts to every room, KiB per room after so many each: %s (the last batch %+.1f bytes per post); %d messages delivered in %s",
			idle/1024, busy/idle, float64(heapFixed)/(1<<20), (float64(heapRuntime)-float64(heapFixed))/(1<<20), strings.Join(samples, " "),
			strings.Join(posting, " "), lastPerPost, rooms*perRoom, feedTime.Round(100*time.Millisecond))}, nil
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

package room

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
)

func deliver(id string) *subscriber.Deliver {
	return &subscriber.Deliver{Msg: seam.Message{BackendMsgID: seam.BackendMsgID(id), Cursor: seam.Cursor(id), Content: "hello"}}
}

// The ring is bounded in count (the oldest entry leaves, its id becomes the
// base) and in bytes (the oldest contents go first, their ids stay; the newest
// is always held); it holds nothing until started, and nothing after stop.
func TestLagRingBounds(t *testing.T) {
	one := messageSize(deliver("m1").Msg)
	r := newLagRing(4, 2*one)
	r.push("m0", deliver("m0"))
	if r.n != 0 {
		t.Fatalf("an inactive ring took an entry")
	}
	r.start("m0")
	for i := 1; i <= 6; i++ {
		r.push(fmt.Sprintf("m%d", i), deliver(fmt.Sprintf("m%d", i)))
	}
	if r.n != 4 || r.base != "m2" || r.at(r.first).id != "m3" || r.newest() != "m6" {
		t.Fatalf("count bound: %d entries, base %q, oldest %q, newest %q; want 4, m2, m3, m6", r.n, r.base, r.at(r.first).id, r.newest())
	}
	var states []entryState
	for num := r.first; num < r.end(); num++ {
		states = append(states, r.at(num).state)
	}
	if want := []entryState{entryDropped, entryDropped, entryHeld, entryHeld}; !slices.Equal(states, want) || r.bytes > r.maxBytes {
		t.Fatalf("byte bound: states %v (%d bytes of %d), want %v", states, r.bytes, r.maxBytes, want)
	}
	if num, ok := r.pos("m2", 0); !ok || num != r.first-1 {
		t.Fatalf("the base is a position: %d %v", num, ok)
	}
	if _, ok := r.pos("m1", 0); ok {
		t.Fatalf("an evicted id is still found")
	}
	if num, ok := r.pos("m4", 0); !ok || r.at(num).id != "m4" {
		t.Fatalf("m4 not found")
	}
	// One message over the byte bound is still held: the newest always is.
	big := newLagRing(4, 1)
	big.start("")
	big.push("x", deliver("x"))
	if big.at(big.first).state != entryHeld {
		t.Fatalf("the newest message's content was dropped")
	}
	end := r.end()
	r.stop()
	if r.active || r.n != 0 || r.ring != nil || r.first != end {
		t.Fatalf("stop: %+v", r)
	}
}

// laggingRig has subscribers a and b with a queue of two; live messages 1 and
// 2 fill both queues, and 3…n find them full.
func laggingRig(t *testing.T, n int, tune func(*Config)) (*rig, *probe, *probe) {
	r := joinedRig(t, func(c *Config) {
		c.SubscriberBuffer = 2
		if tune != nil {
			tune(c)
		}
	})
	a, b := r.subscribe(), r.subscribe()
	r.do(func(ctx actor.Context) {
		for i := 1; i <= n; i++ {
			id := fmt.Sprint(i)
			r.st.onMessage(ctx, reflection(id, "x", id))
		}
	})
	for _, s := range r.st.fan.subs {
		if s.phase != subLagging || s.cursor != "2" {
			t.Fatalf("sub %+v: want lagging at 2", *s)
		}
	}
	return r, a, b
}

// ack acknowledges n messages for every subscriber (the room then feeds the
// lagging ones).
func (r *rig) ack(n int) {
	r.do(func(ctx actor.Context) {
		for _, s := range r.st.fan.subs {
			r.st.fan.onAck(ctx, &subscriber.Ack{Sub: s.pid, N: n})
		}
	})
}

func ids(msgs []any) []string {
	var out []string
	for _, m := range msgs {
		if d, ok := m.(*subscriber.Deliver); ok {
			out = append(out, string(d.Msg.BackendMsgID))
		}
	}
	return out
}

// queries counts the archive reads the room sent.
func (r *rig) queries() []*archive.Query {
	var out []*archive.Query
	for _, m := range r.archive.all() {
		if q, ok := m.(*archive.Query); ok {
			out = append(out, q)
		}
	}
	return out
}

// Lagging subscribers whose cursor lies in the ring are fed from it, in order,
// with the very *Deliver the ring holds (one copy, shared), without reading
// the archive; caught up, they are live again and the ring is emptied.
func TestLaggingFedFromTheSharedRing(t *testing.T) {
	r, a, b := laggingRig(t, 6, nil)
	if !r.st.fan.ring.active || r.st.fan.ring.n != 4 {
		t.Fatalf("ring: active %v with %d entries, want 4 (3…6)", r.st.fan.ring.active, r.st.fan.ring.n)
	}
	r.ack(2)
	r.ack(2)
	ga, gb := a.wait(t, 6), b.wait(t, 6)
	if want := []string{"1", "2", "3", "4", "5", "6"}; !slices.Equal(ids(ga), want) || !slices.Equal(ids(gb), want) {
		t.Fatalf("delivered %v / %v, want %v", ids(ga), ids(gb), want)
	}
	for i := range ga {
		if ga[i] != gb[i] {
			t.Fatalf("message %d: two copies, want the one *Deliver shared", i+1)
		}
	}
	time.Sleep(20 * time.Millisecond) // a read, if any, reaches the probe
	if q := r.queries(); len(q) != 0 {
		t.Fatalf("%d archive reads, want none: the ring holds it all", len(q))
	}
	r.ack(2)
	r.do(func(ctx actor.Context) { r.st.onMessage(ctx, reflection("7", "x", "7")) })
	for _, s := range r.st.fan.subs {
		if s.phase != subLive || s.cursor != "7" {
			t.Fatalf("sub %+v: want live at 7", *s)
		}
	}
	if r.st.fan.ring.active || r.st.fan.ring.n != 0 {
		t.Fatalf("the ring still holds %d entries with nobody lagging", r.st.fan.ring.n)
	}
}

// Subscribers whose cursor lies before the ring read the archive: one read, of
// a full page, shared by both; where the page reaches the ring they go on from
// the ring.
func TestLaggingOutsideTheRingShareOneArchivePage(t *testing.T) {
	r, a, b := laggingRig(t, 8, func(c *Config) { c.RingMessages = 2 })
	if ring := r.st.fan.ring; ring.base != "6" || ring.n != 2 {
		t.Fatalf("ring base %q with %d entries, want 6 and 2 (7, 8)", ring.base, ring.n)
	}
	r.ack(2)
	r.archive.wait(t, 1)
	q := r.queries()
	if len(q) != 1 || *q[0].Since != "2" || q[0].Limit != r.st.cfg.PageSize {
		t.Fatalf("archive reads %+v: want one, after 2, of a full page (%d)", q, r.st.cfg.PageSize)
	}
	page := r.st.fan.pages["2"]
	r.do(func(ctx actor.Context) {
		var entries []archive.Entry
		for _, id := range []string{"3", "4", "5", "6", "7"} {
			entries = append(entries, archive.Entry{Message: deliver(id).Msg})
		}
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readLagging, page: page, epoch: r.st.epoch}, res: &archive.Result{Entries: entries, NextCursor: "7"}})
	})
	for range 3 {
		r.ack(2)
	}
	want := []string{"1", "2", "3", "4", "5", "6", "7", "8"}
	ga, gb := a.wait(t, 8), b.wait(t, 8)
	time.Sleep(20 * time.Millisecond) // a second read, if any, reaches the probe
	if !slices.Equal(ids(ga), want) || !slices.Equal(ids(gb), want) {
		t.Fatalf("delivered %v / %v, want %v", ids(ga), ids(gb), want)
	}
	if ga[6] != gb[6] || ga[7] != gb[7] {
		t.Fatalf("7 and 8 come from the ring: one shared copy each")
	}
	if q := r.queries(); len(q) != 1 {
		t.Fatalf("%d archive reads, want the one shared", len(q))
	}
	if len(r.st.fan.pages) != 0 {
		t.Fatalf("%d pages kept after every subscriber read through them", len(r.st.fan.pages))
	}
}

type gapCounter struct {
	observe.NopRoom
	gaps atomic.Int32
}

func (g *gapCounter) HistoryGap() { g.gaps.Add(1) }

// The archive never supplies messages the room fanned out (their content gone
// from the ring for its byte bound): the subscriber reads again until
// ArchiveWait has passed, then the room reports a HistoryGap naming exactly the
// ids skipped, counts it, and feeds the subscriber on from the ring.
func TestLaggingArchiveNeverSuppliesReportsTheGap(t *testing.T) {
	g := &gapCounter{}
	r, a, _ := laggingRig(t, 5, func(c *Config) {
		c.RingBytes = messageSize(deliver("5").Msg)
		c.ArchiveWait = 100 * time.Millisecond
		c.Metrics = g
	})
	var notified *probe
	r.st.cfg.Notify, notified = r.caller()
	empty := func() {
		p := r.st.fan.pages["2"]
		if p == nil {
			t.Fatalf("no archive read after 2 (pages %v)", r.st.fan.pages)
		}
		r.do(func(ctx actor.Context) {
			r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readLagging, page: p, epoch: r.st.epoch}, res: &archive.Result{NextCursor: "2"}})
		})
	}
	r.ack(2)
	empty()
	if s := r.st.fan.subs[0]; s.phase != subStalled || g.gaps.Load() != 0 {
		t.Fatalf("after one empty read: phase %v, %d gaps; want stalled, none yet", s.phase, g.gaps.Load())
	}
	time.Sleep(150 * time.Millisecond)
	r.do(func(ctx actor.Context) { r.st.fan.feedAllLagging(ctx) }) // the feedRetry timer
	empty()
	got := ids(a.wait(t, 3))
	if !slices.Equal(got, []string{"1", "2", "5"}) {
		t.Fatalf("delivered %v, want 1 2 5 (3 and 4 skipped)", got)
	}
	// The event reaches the notify probe through its own mailbox: it may come
	// after the deliveries.
	var gap *vocab.RoomEvent
	deadline := time.Now().Add(5 * time.Second)
	for gap == nil && time.Now().Before(deadline) {
		for _, m := range notified.all() {
			if e, ok := m.(*vocab.RoomEvent); ok && e.Kind == vocab.RoomHistoryGap {
				gap = e
			}
		}
		if gap == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if gap == nil || !slices.Equal(gap.Skipped, []seam.BackendMsgID{"3", "4"}) || !errors.Is(gap.Err, vocab.ErrArchiveGap) {
		t.Fatalf("gap event %+v: want vocab.RoomHistoryGap naming 3 and 4, vocab.ErrArchiveGap", gap)
	}
	for g.gaps.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := g.gaps.Load(); n != 2 { // one per subscriber
		t.Fatalf("%d gaps counted, want 2", n)
	}
}

// answerPage answers the room's read after since with the messages ids, next
// being the last.
func (r *rig) answerPage(t *testing.T, since string, ids ...string) {
	t.Helper()
	p := r.st.fan.pages[since]
	if p == nil {
		t.Fatalf("no archive read after %s", since)
	}
	var entries []archive.Entry
	for _, id := range ids {
		entries = append(entries, archive.Entry{Message: deliver(id).Msg})
	}
	r.do(func(ctx actor.Context) {
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readLagging, page: p, epoch: r.st.epoch}, res: &archive.Result{Entries: entries, NextCursor: seam.Cursor(ids[len(ids)-1])}})
	})
}

// A subscriber that reads to the end of a page another subscriber still reads
// through goes on with a read after the page, whatever the page holds (it
// once found the same page again, at its end, and looped); the one behind
// finds that read's page kept for it.
func TestLaggingReadsOnAfterASharedPage(t *testing.T) {
	r, a, b := laggingRig(t, 10, func(c *Config) { c.RingMessages = 2 })
	r.ack(2)
	r.archive.wait(t, 1)
	r.answerPage(t, "2", "3", "4", "5", "6")
	first := r.st.fan.subs[0]
	for range 2 { // only the first subscriber moves on
		r.do(func(ctx actor.Context) { r.st.fan.onAck(ctx, &subscriber.Ack{Sub: first.pid, N: 2}) })
	}
	r.archive.wait(t, 2)
	if q := r.queries(); len(q) != 2 || *q[1].Since != "6" {
		t.Fatalf("reads %v: want a second after 6", q)
	}
	r.answerPage(t, "6", "7", "8")
	for range 3 {
		r.ack(2)
	}
	want := []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}
	if ga, gb := ids(a.wait(t, 10)), ids(b.wait(t, 10)); !slices.Equal(ga, want) || !slices.Equal(gb, want) {
		t.Fatalf("delivered %v / %v, want %v", ga, gb, want)
	}
	time.Sleep(20 * time.Millisecond) // a third read, if any, reaches the probe
	if q := r.queries(); len(q) != 2 {
		t.Fatalf("%d reads: the second subscriber read again what the first had read", len(q))
	}
}

// An archive page may end on rows that aren't messages (its NextCursor is
// theirs): the next read starts after them, while the subscriber's position
// stays its last message, which the ring knows, so nothing is reported
// skipped or sent twice.
func TestLaggingPageEndingOnRowsThatAreNotMessages(t *testing.T) {
	r, a, _ := laggingRig(t, 8, func(c *Config) { c.RingBytes = messageSize(deliver("8").Msg) })
	var notified *probe
	r.st.cfg.Notify, notified = r.caller()
	r.ack(2)
	r.archive.wait(t, 1)
	p := r.st.fan.pages["2"]
	r.do(func(ctx actor.Context) {
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readLagging, page: p, epoch: r.st.epoch},
			res: &archive.Result{Entries: []archive.Entry{{Message: deliver("3").Msg}, {Message: deliver("4").Msg}}, NextCursor: "subject"}})
	})
	r.ack(2)
	r.archive.wait(t, 2)
	if q := r.queries(); len(q) != 2 || *q[1].Since != "subject" {
		t.Fatalf("reads %v: want the second after the page's last row", q)
	}
	r.answerPage(t, "subject", "5", "6", "7")
	for range 3 {
		r.ack(2)
	}
	if got := ids(a.wait(t, 8)); !slices.Equal(got, []string{"1", "2", "3", "4", "5", "6", "7", "8"}) {
		t.Fatalf("delivered %v", got)
	}
	time.Sleep(20 * time.Millisecond)
	if got := ids(a.all()); len(got) != 8 {
		t.Fatalf("delivered %v: more than once", got)
	}
	for _, m := range notified.all() {
		if e, ok := m.(*vocab.RoomEvent); ok && e.Kind == vocab.RoomHistoryGap {
			t.Fatalf("a gap reported: %+v", e)
		}
	}
}

// closed reports whether done is closed (without waiting).
func closed(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// An archive read for lagging subscribers says, through Query.Done, when the
// last of them has left while it is in flight: the archive then asks for no
// further page.
func TestLaggingPageReadStopsWhenItsSubscribersLeave(t *testing.T) {
	r, _, _ := laggingRig(t, 8, func(c *Config) { c.RingMessages = 2 })
	r.ack(2)
	r.archive.wait(t, 1)
	q := r.queries()
	if len(q) != 1 || q[0].Done == nil {
		t.Fatalf("archive reads %+v: want one, with a Done", q)
	}
	subs := slices.Clone(r.st.fan.subs)
	r.do(func(ctx actor.Context) { r.st.fan.unsubscribe(ctx, subs[0].pid) })
	if closed(q[0].Done) {
		t.Fatal("the read stopped while a subscriber still waits for it")
	}
	r.do(func(ctx actor.Context) { r.st.fan.unsubscribe(ctx, subs[1].pid) })
	if !closed(q[0].Done) {
		t.Fatal("the read goes on though no subscriber waits for it")
	}
}

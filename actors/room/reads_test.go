package room

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/seam"
)

// A long-poll whose archive read found nothing listens; the next live message
// answers it, with that message's cursor as NextCursor.
func TestReadsLongPollListensThenAnswers(t *testing.T) {
	r := joinedRig(t, nil)
	pid, caller := r.caller()
	since := seam.Cursor("0")
	var w *waiter
	r.do(func(ctx actor.Context) {
		r.st.reads.startWaiter(ctx, &Fetch{Since: &since, Limit: 5, Block: time.Minute, until: time.Now().Add(time.Minute)}, pid)
		for _, w = range r.st.reads.waiters {
		}
		if w.phase != waitReading {
			t.Fatalf("phase %v, want reading", w.phase)
		}
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readWaiter, waiter: w, epoch: r.st.epoch}, res: &archive.Result{NextCursor: "0"}})
		if w.phase != waitListening || !r.st.hasReplayAudience() {
			t.Fatalf("phase %v, want listening (and an audience for a replay)", w.phase)
		}
		r.st.onMessage(ctx, reflection("9", "x", "nine"))
	})
	res := caller.wait(t, 1)[0].(*archive.Result)
	if len(res.Entries) != 1 || res.NextCursor != "9" || len(r.st.reads.waiters) != 0 {
		t.Fatalf("answer %+v, want message 9 with NextCursor 9", res)
	}
}

// A plain read passes the archive's NextCursor through unchanged, also when
// the allowlist withholds entries; a read the lost link cut short waits for
// the next link.
func TestReadsFetchPassesNextCursor(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Allow = &Allowlist{Nicks: []string{"friend"}} })
	pid, caller := r.caller()
	m := &Fetch{Limit: 5}
	stranger := archive.Entry{Message: seam.Message{SenderHandle: "stranger", Cursor: "4"}}
	r.do(func(ctx actor.Context) {
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readFetch, fetch: m, sender: pid}, res: &archive.Result{Entries: []archive.Entry{stranger}, NextCursor: "the-archive's"}})
		r.st.wire.state = linkDown
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readFetch, fetch: m, sender: pid}, res: &archive.Result{Err: errors.New("refused")}})
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readFetch, fetch: m, sender: pid}, res: &archive.Result{Err: fmt.Errorf("x: %w", session.ErrLinkLost)}})
	})
	res := caller.wait(t, 2)
	if a := res[0].(*archive.Result); a.NextCursor != "the-archive's" || len(a.Entries) != 0 {
		t.Fatalf("answer %+v, want the archive's cursor and no entries", a)
	}
	if a := res[1].(*archive.Result); a.Err == nil {
		t.Fatal("a read that failed was answered without its error")
	}
	if len(r.st.reads.awaitingLink) != 1 {
		t.Fatalf("%d reads wait for the link, want the one the lost link cut short", len(r.st.reads.awaitingLink))
	}
}

// A long-poll whose read the link cut short is stalled; expiring then answers
// ErrNotConnected.
func TestReadsStalledExpires(t *testing.T) {
	r := joinedRig(t, nil)
	pid, caller := r.caller()
	r.do(func(ctx actor.Context) {
		r.st.reads.startWaiter(ctx, &Fetch{Limit: 5, Block: time.Minute, until: time.Now().Add(time.Minute)}, pid)
		r.st.linkDown(ctx, errors.New("gone"))
		for id, w := range r.st.reads.waiters {
			if w.phase != waitStalled {
				t.Fatalf("phase %v after the link went down, want stalled", w.phase)
			}
			r.st.reads.onExpired(ctx, id)
		}
	})
	if res := caller.wait(t, 1)[0].(*archive.Result); !errors.Is(res.Err, seam.ErrNotConnected) {
		t.Fatalf("answer %v, want ErrNotConnected", res.Err)
	}
}

package room

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/observe"
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
	r := newRig(t, func(c *Config) { c.Allow = &vocab.Allowlist{Nicks: []string{"friend"}} })
	pid, caller := r.caller()
	m := &Fetch{Limit: 5}
	stranger := archive.Entry{Message: seam.Message{SenderHandle: "stranger", Cursor: "4"}}
	r.do(func(ctx actor.Context) {
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readFetch, fetch: m, sender: pid}, res: &archive.Result{Entries: []archive.Entry{stranger}, NextCursor: "the-archive's"}})
		r.st.wire.state = linkDown
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readFetch, fetch: m, sender: pid}, res: &archive.Result{Err: errors.New("refused")}})
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readFetch, fetch: m, sender: pid}, res: &archive.Result{Err: fmt.Errorf("x: %w", vocab.ErrLinkLost)}})
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

// endlessArchive stands in for the session of a server whose archive pages for
// ever: the room archives (disco#info), and every MAM page holds one chat
// state and says there is more.
type endlessArchive struct {
	mu      sync.Mutex
	queries int
}

func (e *endlessArchive) Receive(ctx actor.Context) {
	iq, ok := ctx.Message().(*session.IQ)
	if !ok {
		return
	}
	if iq.QueryID == "" {
		ctx.Send(ctx.Sender(), &session.IQResult{ID: iq.ID, IQ: stanza.IQ{Type: "result", Features: []string{stanza.NSMAM}}})
		return
	}
	time.Sleep(time.Millisecond) // a server's round trip: the read's own bounds are far off when the room stops
	e.mu.Lock()
	e.queries++
	id := fmt.Sprintf("s%d", e.queries)
	e.mu.Unlock()
	ctx.Send(ctx.Sender(), &session.MAMRow{QueryID: iq.QueryID, Row: stanza.MAMResult{ID: id, QueryID: iq.QueryID, Message: stanza.Forwarded{From: "room@muc.example/alice", Type: "groupchat"}}})
	fin := fmt.Sprintf("<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><first>%s</first><last>%s</last></set></fin>", id, id)
	ctx.Send(ctx.Sender(), &session.IQResult{ID: iq.ID, IQ: stanza.IQ{Type: "result", Payload: []byte(fin)}})
}

func (e *endlessArchive) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.queries
}

// A room that stops takes its archive actor (its child) and the read in
// flight with it: no MAM query after the one in flight.
func TestArchiveReadStopsWithTheRoom(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	t.Cleanup(sys.Shutdown)
	srv := &endlessArchive{}
	cfg := Config{
		JID: "room@muc.example", Topic: "topic", Nick: "me", Online: true, Link: &fakeLink{},
		Session: sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return srv })),
		Metrics: observe.NopRoom{}, IQTimeout: time.Second, JoinTimeout: time.Minute, PostTimeout: time.Minute,
		DefaultLimit: 10, MaxLimit: 100, PageSize: 50, DedupWindow: 64, SubscriberBuffer: 8, RejoinMin: time.Second,
		RejoinMax: time.Minute, MaxBuffered: 100, TargetLookback: 100, PostWindow: 32, RingMessages: 64, RingBytes: 1 << 20,
		ArchiveWait: time.Second,
	}
	room := sys.Root.Spawn(Props(cfg))
	since := seam.Cursor("")
	sys.Root.Send(room, &Fetch{Since: &since, Limit: 10})
	for deadline := time.Now().Add(5 * time.Second); srv.count() < 20; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d queries, want paging under way", srv.count())
		}
	}
	if err := sys.Root.StopFuture(room).Wait(); err != nil {
		t.Fatal(err)
	}
	stopped := srv.count()
	if stopped >= defaults.MaxArchiveExtraPages {
		t.Fatalf("the read ended on its own bounds (%d queries) before the room stopped", stopped)
	}
	time.Sleep(100 * time.Millisecond)
	if n := srv.count() - stopped; n > 1 {
		t.Fatalf("%d queries after the room stopped, want at most the one in flight", n)
	}
}

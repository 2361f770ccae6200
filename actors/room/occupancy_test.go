package room

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
)

// A pinned nick is verified after joining: the probe addressed to our own
// occupant must come back to us before its answer, else the nick is someone
// else's and the queued requests fail with seam.ErrNickConflict.
func TestOccupancyPinnedNickProbe(t *testing.T) {
	for _, seen := range []bool{true, false} {
		r := newRig(t, func(c *Config) { c.Pinned = true })
		o := &r.st.occ
		pid, caller := r.caller()
		r.do(func(ctx actor.Context) {
			o.whenJoined(ctx, &Post{Origin: "a", Content: "a"}, pid)
			if o.phase != checking {
				t.Fatalf("phase %v, want checking (disco#items first)", o.phase)
			}
			o.onIQResult(ctx, &session.IQResult{ID: o.checks.itemsID})
			if o.phase != joining {
				t.Fatalf("phase %v, want joining", o.phase)
			}
			o.onPresence(ctx, stanza.Presence{From: "room@muc.example/me"})
			if o.phase != verifying {
				t.Fatalf("phase %v, want verifying", o.phase)
			}
			if o.onIQResult(ctx, &session.IQResult{ID: "stale"}) {
				t.Fatal("an unknown IQ id was taken as the occupancy's")
			}
			if seen {
				o.onIQ(ctx, stanza.IQ{Type: "get", From: "room@muc.example/me", ID: "p", Payload: []byte(`<query xmlns="` + stanza.NSDiscoInfo + `" node="urn:parley-xmpp:nick-probe:` + o.probe.tok + `"/>`)})
			}
			o.onIQResult(ctx, &session.IQResult{ID: o.probe.id})
		})
		if seen {
			if o.phase != settling || !o.nickHeld {
				t.Fatalf("probe seen: phase %v, held %v; want settling and the nick held", o.phase, o.nickHeld)
			}
			continue
		}
		got := caller.wait(t, 1)[0].(*Posted)
		if o.phase != idle || !errors.Is(got.Err, seam.ErrNickConflict) {
			t.Fatalf("probe not seen: phase %v, post answered %v; want idle and ErrNickConflict", o.phase, got.Err)
		}
	}
}

// A random nick that collides is drawn again; a forbidden join fails with
// ErrBanned, and so does what waited on the room.
func TestOccupancyJoinErrors(t *testing.T) {
	r := newRig(t, nil)
	o := &r.st.occ
	pid, caller := r.caller()
	r.do(func(ctx actor.Context) {
		o.whenJoined(ctx, &Post{Origin: "a", Content: "a"}, pid)
		o.onPresence(ctx, stanza.Presence{From: "room@muc.example/me", Type: "error", Error: &stanza.Error{Condition: "conflict"}})
		if o.nick == "me" || o.phase != joining {
			t.Fatalf("nick %q, phase %v: want another nick, still joining", o.nick, o.phase)
		}
		o.onPresence(ctx, stanza.Presence{From: "room@muc.example/" + o.nick, Type: "error", Error: &stanza.Error{Condition: "forbidden"}})
	})
	got := caller.wait(t, 1)[0].(*Posted)
	if !errors.Is(got.Err, vocab.ErrBanned) || o.phase != idle || len(o.queued) != 0 {
		t.Fatalf("answered %v, phase %v: want vocab.ErrBanned and idle", got.Err, o.phase)
	}
}

// A rejoin with someone to replay to replays from the last message fanned out
// instead of reading the tail; the join completes when the replay does.
func TestOccupancyRejoinReplays(t *testing.T) {
	r := joinedRig(t, nil)
	r.st.fan.last = "5"
	r.subscribe()
	o := &r.st.occ
	r.do(func(ctx actor.Context) {
		r.st.removed(ctx, stanza.Presence{From: "room@muc.example/me", Type: "unavailable"})
		if o.phase != idle {
			t.Fatalf("phase %v after a removal, want idle", o.phase)
		}
		o.startRejoin(ctx)
		o.onPresence(ctx, stanza.Presence{From: "room@muc.example/me"})
		if o.phase != replaying || r.st.fan.stream != catchingUp {
			t.Fatalf("phase %v, stream %v: want replaying and catching up", o.phase, r.st.fan.stream)
		}
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readGap, epoch: r.st.epoch}, res: &archiveResultEmpty})
	})
	if o.phase != joined || o.kind != firstJoin || r.st.fan.stream != streaming {
		t.Fatalf("phase %v, kind %v, stream %v: want joined and streaming", o.phase, o.kind, r.st.fan.stream)
	}
}

// A post still queued for the join is withdrawn from the queue, and only once.
func TestOccupancyWithdrawQueuedPost(t *testing.T) {
	r := newRig(t, nil)
	o := &r.st.occ
	pid, _ := r.caller()
	r.do(func(ctx actor.Context) { o.whenJoined(ctx, &Post{Origin: "a", Content: "a"}, pid) })
	if !o.withdraw("a") || len(o.queued) != 0 || o.withdraw("a") {
		t.Fatalf("withdraw: %d still queued", len(o.queued))
	}
}

// notOwnedCounter counts RoomNotOwned.
type notOwnedCounter struct {
	observe.NopRoom
	mu sync.Mutex
	n  int
}

func (c *notOwnedCounter) RoomNotOwned() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *notOwnedCounter) count() int    { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// A full join whose own presence gives this account less than owner found a
// room another account created first (squatting): it reports NotOwned, naming
// the affiliation, and counts it, once until a join shows it as the owner
// again. A join that made the room (owner) reports nothing, and neither does a
// presence without an affiliation.
func TestOccupancyReportsARoomItDoesNotOwn(t *testing.T) {
	notify := &probe{}
	m := &notOwnedCounter{}
	var notifyPID *actor.PID
	r := newRig(t, func(c *Config) {
		c.Metrics, c.Account = m, "me@example"
	})
	notifyPID = r.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return notify }))
	r.st.cfg.Notify = notifyPID
	o := &r.st.occ
	pid, _ := r.caller()
	join := func(aff string) {
		r.do(func(ctx actor.Context) {
			if o.phase != idle {
				r.st.removed(ctx, stanza.Presence{From: "room@muc.example/" + o.nick, Type: "unavailable"})
			}
			o.forget() // a full join, as after a kick
			o.whenJoined(ctx, &Fetch{}, pid)
			o.onPresence(ctx, stanza.Presence{From: "room@muc.example/" + o.nick, Affiliation: aff, Role: "participant"})
		})
	}
	notOwned := func() []*vocab.RoomEvent {
		var es []*vocab.RoomEvent
		for _, msg := range notify.all() {
			if e, ok := msg.(*vocab.RoomEvent); ok && e.Kind == vocab.RoomNotOwned {
				es = append(es, e)
			}
		}
		return es
	}
	join("owner")
	join("")
	time.Sleep(50 * time.Millisecond)
	if n := len(notOwned()); n != 0 || m.count() != 0 {
		t.Fatalf("an owned room reported: %d events, metric %d", n, m.count())
	}
	join("none")
	join("none") // the same squatted room again: reported once
	deadline := time.Now().Add(5 * time.Second)
	for len(notOwned()) < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	es := notOwned()
	if len(es) != 1 || m.count() != 1 {
		t.Fatalf("a squatted room: %d events, metric %d; want 1 and 1", len(es), m.count())
	}
	if e := es[0]; e.Affiliation != "none" || e.Room != "room@muc.example" || e.Topic != "topic" || !errors.Is(e.Err, vocab.ErrRoomNotOwned) {
		t.Fatalf("event %+v: want the room, its topic, affiliation none and vocab.ErrRoomNotOwned", e)
	}
	join("owner") // the account owns it now (the squatter handed it over)
	join("member")
	time.Sleep(50 * time.Millisecond)
	if es := notOwned(); len(es) != 2 || es[1].Affiliation != "member" || m.count() != 2 {
		t.Fatalf("lost ownership again: %d events, metric %d; want 2 and 2", len(es), m.count())
	}
}

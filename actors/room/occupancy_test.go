package room

import (
	"errors"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/internal/stanza"
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
	if !errors.Is(got.Err, ErrBanned) || o.phase != idle || len(o.queued) != 0 {
		t.Fatalf("answered %v, phase %v: want ErrBanned and idle", got.Err, o.phase)
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

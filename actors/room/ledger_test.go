package room

import (
	"errors"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/seam"
)

func joinedRig(t testing.TB, tune func(*Config)) *rig {
	r := newRig(t, tune)
	r.st.occ.phase = joined
	r.st.fan.stream = streaming
	return r
}

// The window: at most PostWindow posts on the wire; the next goes out when one
// resolves, in order.
func TestLedgerWindow(t *testing.T) {
	r := joinedRig(t, func(c *Config) { c.PostWindow = 2 })
	l := &r.st.ledger
	pid, caller := r.caller()
	r.do(func(ctx actor.Context) {
		for _, o := range []string{"a", "b", "c"} {
			l.onPost(ctx, &Post{Origin: o, Content: o}, pid)
		}
	})
	if len(r.link.sent) != 2 || l.inflight != 2 || l.posts["c"].phase != postWaiting {
		t.Fatalf("sent %d, inflight %d, c %v: want 2 on the wire and c waiting", len(r.link.sent), l.inflight, l.posts["c"].phase)
	}
	r.do(func(ctx actor.Context) { l.resolve(ctx, "a", "id-a") })
	if len(r.link.sent) != 3 || l.posts["c"].phase != postSent {
		t.Fatalf("after a resolved: sent %d, c %v; want c sent", len(r.link.sent), l.posts["c"].phase)
	}
	if got := caller.wait(t, 1)[0].(*Posted); got.ID != "id-a" {
		t.Fatalf("a answered %+v", got)
	}
	if f := l.cancel("a"); !f.Sent || f.ID != "id-a" {
		t.Fatalf("cancel of a settled post: %+v", f)
	}
}

// A lost link leaves posts on the wire in doubt; a post first in line when the
// server ended the stream twice fails as a poison message, and the others are
// sent again in order.
func TestLedgerPoisonStrikes(t *testing.T) {
	r := joinedRig(t, nil)
	l := &r.st.ledger
	pid, caller := r.caller()
	r.do(func(ctx actor.Context) {
		l.onPost(ctx, &Post{Origin: "a", Content: "a"}, pid)
		l.onPost(ctx, &Post{Origin: "b", Content: "b"}, pid)
	})
	for strike := 1; strike <= 2; strike++ {
		r.do(func(ctx actor.Context) {
			l.serverEnded = true
			l.linkLost()
			if l.posts["a"].phase != postInDoubt || !l.posts["a"].onDeadLink || !l.inDoubt() {
				t.Fatalf("strike %d: a is %v, want in doubt on the dead link", strike, l.posts["a"].phase)
			}
			l.resendInDoubt(ctx)
		})
	}
	if _, ok := l.posts["a"]; ok {
		t.Fatal("a is still pending after two strikes")
	}
	got := caller.wait(t, 1)[0].(*Posted)
	if !errors.Is(got.Err, seam.ErrPoisonMessage) {
		t.Fatalf("a answered %v, want ErrPoisonMessage", got.Err)
	}
	if p := l.posts["b"]; p == nil || p.phase != postSent || p.strikes != 0 {
		t.Fatalf("b: %+v, want sent again without strikes", p)
	}
}

// A bounce fails the oldest post on the wire that the room hasn't answered; a
// waiting post is cancelled without ever being sent.
func TestLedgerBounceAndCancel(t *testing.T) {
	r := joinedRig(t, func(c *Config) { c.PostWindow = 1 })
	l := &r.st.ledger
	pid, caller := r.caller()
	r.do(func(ctx actor.Context) {
		l.onPost(ctx, &Post{Origin: "a", Content: "a"}, pid)
		l.onPost(ctx, &Post{Origin: "b", Content: "b"}, pid)
	})
	if f := l.cancel("b"); f.Sent {
		t.Fatalf("cancel of a waiting post: %+v, want not sent", f)
	}
	r.do(func(ctx actor.Context) { r.st.onMessage(ctx, stanzaError()) })
	if got := caller.wait(t, 1)[0].(*Posted); !errors.Is(got.Err, ErrPostRefused) {
		t.Fatalf("a answered %v, want ErrPostRefused", got.Err)
	}
	if len(l.posts) != 0 || len(r.link.sent) != 1 {
		t.Fatalf("%d posts pending, %d sent; want none pending and only a sent", len(l.posts), len(r.link.sent))
	}
}

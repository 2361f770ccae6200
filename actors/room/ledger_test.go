package room

import (
	"errors"
	"fmt"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
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

// The room's bounce of a post (from its bare JID, with the post's id) fails
// that post; a waiting post is cancelled without ever being sent.
func TestLedgerBounceAndCancel(t *testing.T) {
	r := joinedRig(t, func(c *Config) { c.PostWindow = 1 })
	l := &r.st.ledger
	pid, caller := r.caller()
	r.do(func(ctx actor.Context) {
		l.onPost(ctx, &Post{Origin: "a", Content: "a"}, pid)
		l.onPost(ctx, &Post{Origin: "b", Content: "b"}, pid)
	})
	if f := l.cancel("b"); f.Sent {
		t.Fatalf("cancel of a waiting post: %+v", f)
	}
	r.do(func(ctx actor.Context) { r.st.onMessage(ctx, bounce("room@muc.example", "a")) })
	if got := caller.wait(t, 1)[0].(*Posted); !errors.Is(got.Err, vocab.ErrPostRefused) {
		t.Fatalf("a answered %v, want vocab.ErrPostRefused", got.Err)
	}
	if len(l.posts) != 0 || len(r.link.sent) != 1 {
		t.Fatalf("%d posts pending, %d sent; want none pending and only a sent", len(l.posts), len(r.link.sent))
	}
}

// bounce is an error message from from with the stanza id id.
func bounce(from, id string) stanza.Message {
	m := stanzaError()
	m.From, m.ID = from, id
	return m
}

// ownReflection is the room's reflection of our post origin, with the room's
// stanza-id id.
func ownReflection(origin, id string) stanza.Message {
	m := reflection(id, "me", "body of "+origin)
	m.OriginID = origin
	return m
}

// forgedBounces are error messages that are not the room's answer to post
// origin: only an error from the room's bare JID with the post's id is.
func forgedBounces(origin string) map[string]stanza.Message {
	return map[string]stanza.Message{
		"from an occupant":                bounce("room@muc.example/eve", origin),
		"from an occupant, in other case": bounce("ROOM@muc.example/eve", origin),
		"from our own occupant JID":       bounce("room@muc.example/me", origin),
		"from an empty resource":          bounce("room@muc.example/", origin),
		"from another room":               bounce("other@muc.example", origin),
		"from an account":                 bounce("eve@example", origin),
		"from nowhere":                    bounce("", origin),
		"from the room, with another id":  bounce("room@muc.example", origin+"x"),
		"from the room, without an id":    bounce("room@muc.example", ""),
	}
}

// A post settles only on evidence from the room: no forged error fails it, and
// its reflection then resolves it with the room's id.
func TestLedgerForgedBouncesDoNotSettleAPost(t *testing.T) {
	for name, forged := range forgedBounces("a") {
		t.Run(name, func(t *testing.T) {
			r := joinedRig(t, nil)
			l := &r.st.ledger
			pid, caller := r.caller()
			r.do(func(ctx actor.Context) {
				l.onPost(ctx, &Post{Origin: "a", Content: "a"}, pid)
				r.st.onMessage(ctx, forged)
			})
			if p := l.posts["a"]; p == nil || p.phase != postSent {
				t.Fatalf("after the forged error, a is %+v: want still on the wire", p)
			}
			r.do(func(ctx actor.Context) { r.st.onMessage(ctx, ownReflection("a", "sid-a")) })
			if got := caller.wait(t, 1); len(got) != 1 || got[0].(*Posted).Err != nil || got[0].(*Posted).ID != "sid-a" {
				t.Fatalf("a answered %+v, want only its reflection's id", got)
			}
		})
	}
}

// The room's bounce matches its post whatever the case of the room's JID.
func TestLedgerBounceFromTheRoomInOtherCaseFails(t *testing.T) {
	r := joinedRig(t, nil)
	l := &r.st.ledger
	pid, caller := r.caller()
	r.do(func(ctx actor.Context) {
		l.onPost(ctx, &Post{Origin: "a", Content: "a"}, pid)
		l.onPost(ctx, &Post{Origin: "b", Content: "b"}, pid)
		r.st.onMessage(ctx, bounce("Room@MUC.example", "b"))
	})
	got := caller.wait(t, 1)[0].(*Posted)
	if !errors.Is(got.Err, vocab.ErrPostRefused) {
		t.Fatalf("b answered %v, want vocab.ErrPostRefused", got.Err)
	}
	if _, pending := l.posts["b"]; pending || l.posts["a"] == nil {
		t.Fatal("the bounce settled a post other than b")
	}
}

// The room's error with a post's id settles nothing once the post is no longer
// on the wire: in doubt after a lost link (the replay decides), or already
// reflected without an id of the room's (the catch-up decides).
func TestLedgerBounceIgnoredForAPostNotOnTheWire(t *testing.T) {
	r := joinedRig(t, nil)
	l := &r.st.ledger
	pid, caller := r.caller()
	r.do(func(ctx actor.Context) {
		l.onPost(ctx, &Post{Origin: "a", Content: "a"}, pid)
		l.onPost(ctx, &Post{Origin: "b", Content: "b"}, pid)
		r.st.onMessage(ctx, stanza.Message{Type: "groupchat", From: "room@muc.example/me", Body: "b", OriginID: "b"})
		r.st.onMessage(ctx, bounce("room@muc.example", "b"))
		l.linkLost()
		r.st.onMessage(ctx, bounce("room@muc.example", "a"))
	})
	if pa, pb := l.posts["a"], l.posts["b"]; pa == nil || pa.phase != postInDoubt || pb == nil || !pb.answered {
		t.Fatalf("a %+v, b %+v: want a in doubt and b answered, both pending", pa, pb)
	}
	if got := caller.all(); len(got) != 0 {
		t.Fatalf("callers answered %+v, want nothing yet", got)
	}
}

// Many posts on the wire at once, each preceded by every forged error with its
// id: all resolve by their reflections, each with its own id.
func TestLedgerConcurrentPostsResolveByReflectionDespiteForgedBounces(t *testing.T) {
	const n = 300
	r := joinedRig(t, func(c *Config) { c.PostWindow = 64 })
	l := &r.st.ledger
	origin := func(i int) string { return fmt.Sprintf("origin-%03d", i) }
	callers := make([]*probe, n)
	r.do(func(ctx actor.Context) {
		for i := range n {
			pid, p := r.caller()
			callers[i] = p
			l.onPost(ctx, &Post{Origin: origin(i), Content: origin(i)}, pid)
		}
	})
	// The room answers in order; the forgeries arrive before each answer, aimed
	// at the post answered next and at posts still waiting for the window.
	for i := range n {
		r.do(func(ctx actor.Context) {
			for _, target := range []int{i, min(i+63, n-1), n - 1} {
				for _, forged := range forgedBounces(origin(target)) {
					r.st.onMessage(ctx, forged)
				}
			}
			r.st.onMessage(ctx, ownReflection(origin(i), "sid-"+origin(i)))
		})
	}
	for i, p := range callers {
		got := p.wait(t, 1)
		if posted := got[0].(*Posted); len(got) != 1 || posted.Err != nil || posted.ID != seam.BackendMsgID("sid-"+origin(i)) {
			t.Fatalf("post %d answered %+v, want only its reflection's id", i, got)
		}
	}
	if len(l.posts) != 0 || len(r.link.sent) != n {
		t.Fatalf("%d posts pending, %d sent: want none pending, each sent once", len(l.posts), len(r.link.sent))
	}
}

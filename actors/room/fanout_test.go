package room

import (
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
)

// midSecond is when the tests' reflections arrive: well inside a second, so
// the rig's rule (whole-second stamps) knows their stamp.
var midSecond = time.Date(2026, 12, 7, 15, 0, 0, 500_000_000, time.UTC)

func reflection(id, nick, body string) stanza.Message {
	return stanza.Message{Type: "groupchat", From: "room@muc.example/" + nick, Body: body,
		StanzaID: stanza.StanzaID{ID: id, By: "room@muc.example"}, Received: midSecond}
}

func (r *rig) subscribe() *probe {
	pid, p := r.caller()
	r.st.fan.subs = append(r.st.fan.subs, &sub{pid: pid, gate: &subscriber.Gate{}, cursor: r.st.fan.last})
	return p
}

// Every subscriber gets each message once, in order, the same *Deliver; a
// second copy is dropped; a subscriber whose queue is full lags (and leaves
// the live path) while the others go on.
func TestFanoutDeliversOnceAndLags(t *testing.T) {
	r := joinedRig(t, func(c *Config) { c.SubscriberBuffer = 2 })
	a, b := r.subscribe(), r.subscribe()
	r.do(func(ctx actor.Context) {
		r.st.onMessage(ctx, reflection("1", "x", "one"))
		r.st.onMessage(ctx, reflection("1", "x", "one again"))
		r.st.onMessage(ctx, reflection("2", "x", "two"))
	})
	ga, gb := a.wait(t, 2), b.wait(t, 2)
	if ga[0] != gb[0] || ga[0].(*subscriber.Deliver).Msg.BackendMsgID != "1" || ga[1].(*subscriber.Deliver).Msg.BackendMsgID != "2" {
		t.Fatalf("deliveries %v / %v", ga, gb)
	}
	r.do(func(ctx actor.Context) {
		r.st.fan.onAck(ctx, &subscriber.Ack{Sub: r.st.fan.subs[1].pid, N: 2})
		r.st.onMessage(ctx, reflection("3", "x", "three"))
	})
	if s0, s1 := r.st.fan.subs[0], r.st.fan.subs[1]; s0.phase != subLagging || s1.phase != subLive || s1.cursor != "3" || s0.cursor != "2" {
		t.Fatalf("subs %+v %+v: want the first lagging at 2, the second live at 3", *s0, *s1)
	}
	if r.st.fan.last != "3" {
		t.Fatalf("last %q", r.st.fan.last)
	}
}

// While catching up, live messages are held and fanned out after the archive's
// page, each once; the first occupancy is placed at the newest message held.
func TestFanoutHoldPlaceRelease(t *testing.T) {
	r := newRig(t, nil)
	f := &r.st.fan
	r.st.occ.phase = settling
	f.hold()
	if f.stream != unplaced {
		t.Fatalf("stream %v before the first tail, want unplaced", f.stream)
	}
	r.do(func(ctx actor.Context) { r.st.onMessage(ctx, reflection("7", "x", "seven")) })
	f.place("5")
	if f.stream != streaming || f.last != "7" || len(f.buffered) != 0 {
		t.Fatalf("after place: %v at %q with %d held", f.stream, f.last, len(f.buffered))
	}
	f.hold()
	if f.stream != catchingUp {
		t.Fatalf("hold of a placed stream: %v, want catchingUp", f.stream)
	}
	f.release()
	if f.stream != streaming {
		t.Fatalf("release: %v, want streaming", f.stream)
	}
}

// The allowlist withholds a message from everyone and moves the live
// subscribers' positions past it.
func TestFanoutAllowlist(t *testing.T) {
	r := joinedRig(t, func(c *Config) { c.Allow = &vocab.Allowlist{Nicks: []string{"friend"}} })
	p := r.subscribe()
	r.do(func(ctx actor.Context) {
		r.st.onMessage(ctx, reflection("1", "stranger", "no"))
		r.st.onMessage(ctx, reflection("2", "friend", "yes"))
	})
	got := p.wait(t, 1)
	if len(got) != 1 || got[0].(*subscriber.Deliver).Msg.BackendMsgID != "2" {
		t.Fatalf("delivered %v, want only 2", got)
	}
}

// The fan-out of a live message allocates nothing per subscriber: the one
// *Deliver is shared, and the mailboxes don't allocate.
func TestFanoutAllocsPerSubscriber(t *testing.T) {
	allocs := func(subs int) float64 {
		r := joinedRig(t, func(c *Config) { c.SubscriberBuffer = 1 << 30 })
		for range subs {
			r.subscribe()
		}
		var n float64
		r.do(func(ctx actor.Context) {
			i := 0
			msgs := make([]stanza.Message, 1000)
			for k := range msgs {
				msgs[k] = reflection(fmt.Sprint(k), "x", "hi")
			}
			n = testing.AllocsPerRun(len(msgs)-1, func() {
				r.st.onMessage(ctx, msgs[i])
				i++
			})
		})
		return n
	}
	one, many := allocs(1), allocs(8)
	if many > one {
		t.Fatalf("%.1f allocations per message with 8 subscribers, %.1f with 1: the fan-out allocates per subscriber", many, one)
	}
}

// BenchmarkFanout measures one live message through onMessage to 4 subscribers.
func BenchmarkFanout(b *testing.B) {
	r := joinedRig(b, func(c *Config) { c.SubscriberBuffer = 1 << 30; c.DedupWindow = 1024 })
	for range 4 {
		pid := r.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return sink{} }))
		r.st.fan.subs = append(r.st.fan.subs, &sub{pid: pid, gate: &subscriber.Gate{}})
	}
	msgs := make([]stanza.Message, 4096)
	for k := range msgs {
		msgs[k] = reflection(fmt.Sprint(k), "x", "hello @bob")
	}
	done := make(chan struct{})
	r.sys.Root.Send(r.host, &run{f: func(ctx actor.Context) {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			m := msgs[i%len(msgs)]
			m.StanzaID.ID = fmt.Sprint(i)
			r.st.onMessage(ctx, m)
		}
	}, done: done})
	<-done
}

type sink struct{}

func (sink) Receive(actor.Context) {}

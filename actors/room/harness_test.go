package room

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
)

// The machines are tested in place: each test runs its steps inside an actor's
// Receive (so the machines get a real actor.Context), with probe actors
// standing in for the session, the callers and the subscribers.

type run struct {
	f    func(ctx actor.Context)
	done chan struct{}
}

type host struct{}

func (host) Receive(ctx actor.Context) {
	if r, ok := ctx.Message().(*run); ok {
		r.f(ctx)
		close(r.done)
	}
}

// probe records every user message it receives.
type probe struct {
	mu   sync.Mutex
	msgs []any
}

func (p *probe) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case actor.SystemMessage, actor.AutoReceiveMessage:
		return
	}
	p.mu.Lock()
	p.msgs = append(p.msgs, ctx.Message())
	p.mu.Unlock()
}

func (p *probe) all() []any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]any(nil), p.msgs...)
}

// wait returns the probe's messages once there are at least n (or fails).
func (p *probe) wait(t *testing.T, n int) []any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m := p.all(); len(m) >= n || time.Now().After(deadline) {
			if len(m) < n {
				t.Fatalf("probe got %d messages, want %d: %#v", len(m), n, m)
			}
			return m
		}
		time.Sleep(time.Millisecond)
	}
}

type rig struct {
	t       testing.TB
	sys     *actor.ActorSystem
	host    *actor.PID
	session *probe
	archive *probe
	st      *state
	link    *fakeLink
}

// fakeLink records the stanzas written to it.
type fakeLink struct {
	sent [][]byte
}

func (l *fakeLink) Send(b []byte) error {
	l.sent = append(l.sent, b)
	return nil
}
func (l *fakeLink) SendFenced(b []byte, fence func() error) error {
	if fence != nil && fence() != nil {
		return nil // dropped, as the writer drops it
	}
	return l.Send(b)
}
func (l *fakeLink) MaxStanza() int { return 1 << 20 }

func newRig(t testing.TB, tune func(*Config)) *rig {
	t.Helper()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	r := &rig{t: t, sys: sys, session: &probe{}, link: &fakeLink{}}
	sessionPID := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return r.session }))
	r.host = sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return host{} }))
	cfg := Config{
		JID: "room@muc.example", Topic: "topic", Nick: "me", Session: sessionPID, Online: true, Link: r.link,
		Logger: slog.New(slog.DiscardHandler), Metrics: observe.NopRoom{},
		IQTimeout: time.Second, JoinTimeout: time.Minute, PostTimeout: time.Minute,
		PostWindow: 32, DefaultLimit: 10, MaxLimit: 100, PageSize: 50, DedupWindow: 64,
		SubscriberBuffer: 8, RejoinMin: time.Second, RejoinMax: time.Minute, MaxBuffered: 100,
		RingMessages: 64, RingBytes: 1 << 20, ArchiveWait: time.Second, TargetLookback: 100,
	}
	if tune != nil {
		tune(&cfg)
	}
	r.st = newState(cfg)
	// As if learned from a Prosody archive (whole-second stamps): the tests'
	// reflections arrive mid-second (reflection), so their stamp is known and
	// they are fanned out live.
	r.st.stamps.learn([]archive.Entry{{Message: seam.Message{BackendMsgID: "x", Timestamp: midSecond.Truncate(time.Second)}}})
	r.archive = &probe{}
	r.st.archive = sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return r.archive }))
	t.Cleanup(func() { sys.Shutdown() })
	return r
}

// do runs f inside the host actor and waits for it.
func (r *rig) do(f func(ctx actor.Context)) {
	r.t.Helper()
	done := make(chan struct{})
	r.sys.Root.Send(r.host, &run{f: f, done: done})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		r.t.Fatal("the step didn't run")
	}
}

// caller spawns a probe standing in for a caller or a subscriber.
func (r *rig) caller() (*actor.PID, *probe) {
	p := &probe{}
	return r.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return p })), p
}

func stanzaError() stanza.Message {
	return stanza.Message{Type: "error", From: "room@muc.example", Error: &stanza.Error{Condition: "not-acceptable"}}
}

var archiveResultEmpty = archive.Result{}

package runtime_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// events collects a runtime's room events.
type events struct {
	mu sync.Mutex
	es []runtime.RoomEvent
}

func (e *events) add(ev runtime.RoomEvent) { e.mu.Lock(); e.es = append(e.es, ev); e.mu.Unlock() }

func (e *events) has(kind runtime.RoomEventKind) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.es {
		if ev.Kind == kind {
			return true
		}
	}
	return false
}

// collector records what a handler received.
type collector struct {
	mu  sync.Mutex
	ids []seam.BackendMsgID
}

func (c *collector) add(m seam.Message) {
	c.mu.Lock()
	c.ids = append(c.ids, m.BackendMsgID)
	c.mu.Unlock()
}
func (c *collector) got() []seam.BackendMsgID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]seam.BackendMsgID(nil), c.ids...)
}

func postN(t *testing.T, rt *runtime.Runtime, topic seam.Topic, n int) []seam.BackendMsgID {
	t.Helper()
	var ids []seam.BackendMsgID
	for i := range n {
		id, err := rt.Post(ctx5(t), topic, "me", fmt.Sprintf("message %d", i), seam.PostOptions{})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	return ids
}

// A handler that blocks delays only itself: the others get everything at once,
// its queue stays bounded (it falls back to the archive), and once it moves on
// it gets every message exactly once, in order.
func TestBlockedSubscriberNeverStallsTheRoom(t *testing.T) {
	s := xmpptest.Require(t)
	var ev events
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.SubscriberBuffer = 4
		c.OnRoomEvent = ev.add
	}))
	topic := freshTopic()
	release := make(chan struct{})
	var blocked, free collector
	_, err := rt.Subscribe(ctx5(t), topic, func(m seam.Message) {
		<-release
		blocked.add(m)
	})
	require.NoError(t, err)
	_, err = rt.Subscribe(ctx5(t), topic, free.add)
	require.NoError(t, err)

	ids := postN(t, rt, topic, 30)
	require.Eventually(t, func() bool { return len(free.got()) == 30 }, 5*time.Second, 5*time.Millisecond,
		"the free subscriber got everything while the other was blocked")
	assert.Equal(t, ids, free.got())
	assert.True(t, ev.has(runtime.RoomSubscriberLagging), "the blocked one fell back to the archive")

	close(release)
	require.Eventually(t, func() bool { return len(blocked.got()) >= 30 }, 10*time.Second, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, ids, blocked.got(), "once each, in order")
}

// A handler that panics is isolated: it keeps its subscription, the others get
// everything, and the panic is reported.
func TestPanickingHandlerIsIsolated(t *testing.T) {
	s := xmpptest.Require(t)
	var ev events
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) { c.OnRoomEvent = ev.add }))
	topic := freshTopic()
	var calls atomic.Int32
	var other collector
	_, err := rt.Subscribe(ctx5(t), topic, func(seam.Message) {
		calls.Add(1)
		panic("handler bug")
	})
	require.NoError(t, err)
	_, err = rt.Subscribe(ctx5(t), topic, other.add)
	require.NoError(t, err)
	ids := postN(t, rt, topic, 5)
	require.Eventually(t, func() bool { return len(other.got()) == 5 && calls.Load() == 5 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, ids, other.got())
	require.Eventually(t, func() bool { return ev.has(runtime.RoomSubscriberPanicked) }, 2*time.Second, 5*time.Millisecond)
}

// When a Post's ctx ends first, the error says whether the message may land.
func TestPostOutcomeWhenTheContextEnds(t *testing.T) {
	t.Run("not sent: the link is down", func(t *testing.T) {
		f := &fakeMUC{}
		srv := xmpptest.NewScripted(t, "parley.local", f.run)
		rt := scriptedRuntime(t, srv, nil)
		srv.Close() // the link goes, and no new one comes
		require.Eventually(t, func() bool { return rt.State() == runtime.Reconnecting }, 5*time.Second, 5*time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := rt.Post(ctx, hostileTopic, "me", "never sent", seam.PostOptions{})
		assert.ErrorIs(t, err, runtime.ErrPostNotSent)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("in doubt: sent, never reflected", func(t *testing.T) {
		f := &fakeMUC{onMessage: func(*xmpptest.Stream, xmpptest.Element) {}} // swallows posts
		rt := hostileRuntime(t, f, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := rt.Post(ctx, hostileTopic, "me", "lost in the room", seam.PostOptions{})
		assert.ErrorIs(t, err, runtime.ErrPostInDoubt)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

// While the link is down, calls wait for it by default, and fail at once with
// FailFast.
func TestOutageWaitOrFailFast(t *testing.T) {
	for _, failFast := range []bool{false, true} {
		t.Run(fmt.Sprintf("failfast=%v", failFast), func(t *testing.T) {
			f := &fakeMUC{}
			srv := xmpptest.NewScripted(t, "parley.local", f.run)
			rt := scriptedRuntime(t, srv, func(c *runtime.Config) { c.FailFast = failFast })
			srv.Close()
			require.Eventually(t, func() bool { return rt.State() == runtime.Reconnecting }, 5*time.Second, 5*time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: hostileTopic})
			if failFast {
				assert.ErrorIs(t, err, seam.ErrNotConnected)
				assert.Less(t, time.Since(start), 200*time.Millisecond)
			} else {
				assert.ErrorIs(t, err, context.DeadlineExceeded, "waited for the link within ctx")
			}
		})
	}
}

// A half-open link (nothing comes back, not even ping answers) is found by the
// keepalive and replaced.
func TestKeepAliveFindsAHalfOpenLink(t *testing.T) {
	var streams atomic.Int32
	f := &fakeMUC{}
	f.onStream = func() { streams.Add(1) }
	f.onIQ = func(st *xmpptest.Stream, iq xmpptest.Element) bool {
		// The first link goes deaf to pings; the next one answers them.
		return strings.Contains(iq.Inner, "urn:xmpp:ping") && streams.Load() == 1
	}
	states := make(chan runtime.State, 20)
	hostileRuntime(t, f, func(c *runtime.Config) {
		c.KeepAlive, c.KeepAliveTimeout = 100*time.Millisecond, 200*time.Millisecond
		c.OnStateChange = func(sc runtime.StateChange) { states <- sc.To }
	})
	want := []runtime.State{runtime.Connecting, runtime.Online, runtime.Reconnecting, runtime.Online}
	var seen []runtime.State
	for len(seen) < len(want) {
		select {
		case s := <-states:
			seen = append(seen, s)
		case <-time.After(3 * time.Second):
			t.Fatalf("states so far: %v", seen)
		}
	}
	assert.Equal(t, want, seen)
	// The script starts after the server's side of the login, which may be a
	// moment after the client is online.
	assert.Eventually(t, func() bool { return streams.Load() == 2 }, time.Second, 5*time.Millisecond)
}

// With MaxReconnects set, the runtime gives up and says why; calls then fail.
func TestGivesUpAfterMaxReconnects(t *testing.T) {
	f := &fakeMUC{}
	srv := xmpptest.NewScripted(t, "parley.local", f.run)
	closed := make(chan error, 1)
	rt := scriptedRuntime(t, srv, func(c *runtime.Config) {
		c.MaxReconnects = 2
		c.ReconnectWait = 10 * time.Millisecond
		c.OnStateChange = func(sc runtime.StateChange) {
			if sc.To == runtime.Closed {
				closed <- sc.Err
			}
		}
	})
	// A long-poll waiting through the outage fails when the runtime gives up.
	waiting := make(chan error, 1)
	go func() {
		since := seam.Cursor("")
		_, err := rt.FetchRecent(context.Background(), seam.FetchRecentArgs{Topic: hostileTopic, Since: &since, Block: time.Minute})
		waiting <- err
	}()
	time.Sleep(50 * time.Millisecond)
	srv.Close()
	select {
	case err := <-waiting:
		assert.ErrorIs(t, err, seam.ErrNotConnected)
	case <-time.After(5 * time.Second):
		t.Fatal("a call waiting for the link outlived giving up")
	}
	select {
	case err := <-closed:
		assert.ErrorContains(t, err, "gave up reconnecting after 2 attempts")
	case <-time.After(5 * time.Second):
		t.Fatal("never gave up")
	}
	assert.Equal(t, runtime.Closed, rt.State())
	_, err := rt.Post(ctx5(t), hostileTopic, "me", "x", seam.PostOptions{})
	assert.ErrorIs(t, err, seam.ErrNotConnected)
}

// A silent removal (the room forgot us and said nothing) is found by the
// self-ping: the runtime rejoins and reports it.
func TestSilentRemovalFoundBySelfPing(t *testing.T) {
	var joins, pings atomic.Int32
	var ev events
	f := &fakeMUC{onPresence: func() { joins.Add(1) }}
	f.onIQ = func(st *xmpptest.Stream, iq xmpptest.Element) bool {
		if !strings.Contains(iq.Inner, "urn:xmpp:ping") || !strings.HasPrefix(iq.Get("to"), hostileRoom+"/") {
			return false
		}
		if pings.Add(1) == 1 {
			st.Send(`<iq type='error' id='%s' from='%s' to='%s'><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`, iq.Get("id"), iq.Get("to"), st.JID)
			return true
		}
		return false
	}
	rt := hostileRuntime(t, f, func(c *runtime.Config) {
		c.SelfPing = 50 * time.Millisecond
		c.OnRoomEvent = ev.add
	})
	_, err := rt.Subscribe(ctx5(t), hostileTopic, func(seam.Message) {})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return joins.Load() == 2 }, 3*time.Second, 5*time.Millisecond, "rejoined")
	assert.True(t, ev.has(runtime.RoomRemoved))
}

func scriptedRuntime(t *testing.T, srv *xmpptest.Scripted, mod func(*runtime.Config)) *runtime.Runtime {
	t.Helper()
	cfg := runtime.Config{Service: "xmpp://" + srv.Addr, Domain: "parley.local", MUCService: "muc.parley.local",
		RequestTimeout: 2 * time.Second, JoinTimeout: 3 * time.Second, PostTimeout: 3 * time.Second, ReconnectWait: 20 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	rt, err := runtime.New(cfg)
	require.NoError(t, err)
	require.NoError(t, rt.Connect(ctx5(t)))
	t.Cleanup(func() { _ = rt.Disconnect(context.Background()) })
	return rt
}

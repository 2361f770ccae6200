package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/actors/room"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/supervision"
)

// failRoom makes topic's room actor fail, as a bug would, and returns what the
// failing request got back.
func failRoom(t *testing.T, rt *Runtime, topic seam.Topic) any {
	t.Helper()
	local, err := RoomLocalpart(topic)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := rt.asker.Ask(ctx, rt.session, &session.ToRoom{Room: local + "@" + rt.cfg.MUCService, Topic: topic, Msg: &room.Fail{Reason: "injected failure"}})
	require.NoError(t, err)
	return res
}

func liveRuntime(t *testing.T, mod func(*Config)) *Runtime {
	s := xmpptest.Require(t)
	cfg := Config{Service: "xmpp://" + s.Addr, Domain: s.Domain, MUCService: s.MUC, Username: s.Accounts[0][0], Password: s.Accounts[0][1]}
	if mod != nil {
		mod(&cfg)
	}
	rt, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, rt.Connect(ctx))
	t.Cleanup(func() { _ = rt.Disconnect(context.Background()) })
	return rt
}

type received struct {
	mu  sync.Mutex
	ids []seam.BackendMsgID
}

func (r *received) add(m seam.Message) {
	r.mu.Lock()
	r.ids = append(r.ids, m.BackendMsgID)
	r.mu.Unlock()
}
func (r *received) all() []seam.BackendMsgID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seam.BackendMsgID(nil), r.ids...)
}

func post(t *testing.T, rt *Runtime, topic seam.Topic, n int, tag string) []seam.BackendMsgID {
	var ids []seam.BackendMsgID
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		id, err := rt.Post(ctx, topic, "me", fmt.Sprintf("%s %d", tag, i), seam.PostOptions{})
		cancel()
		require.NoError(t, err)
		ids = append(ids, id)
	}
	return ids
}

// A room actor that fails is restarted with its cursor, subscribers and
// pending work intact: the subscriber keeps getting every message once, in
// order; the failing message is answered with an error and not retried.
func TestRoomFailureRestartsWithStateIntact(t *testing.T) {
	rt := liveRuntime(t, nil)
	topic := seam.Topic("supervised " + strings.ToLower(fmt.Sprint(time.Now().UnixNano())))
	var got received
	_, err := rt.Subscribe(context.Background(), topic, got.add)
	require.NoError(t, err)
	ids := post(t, rt, topic, 5, "before")

	res := failRoom(t, rt, topic)
	err, ok := res.(error)
	require.True(t, ok, "the failing request is answered: %T", res)
	assert.ErrorIs(t, err, supervision.ErrActorFailed)

	ids = append(ids, post(t, rt, topic, 5, "after")...)
	require.Eventually(t, func() bool { return len(got.all()) >= 10 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, ids, got.all(), "nothing lost or repeated across the restart")
}

// A room that fails again and again is stopped instead of spinning: its
// subscriptions end, the embedder hears of it, and the next call gets a new
// room actor.
func TestRoomCrashLoopStopsTheRoom(t *testing.T) {
	failed := make(chan RoomEvent, 10)
	rt := liveRuntime(t, func(c *Config) {
		if os.Getenv("DEBUG_ROOM") != "" {
			c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		c.OnRoomEvent = func(e RoomEvent) {
			if e.Kind == RoomFailed {
				failed <- e
			}
		}
	})
	topic := seam.Topic("crash loop " + strings.ToLower(fmt.Sprint(time.Now().UnixNano())))
	var got received
	_, err := rt.Subscribe(context.Background(), topic, got.add)
	require.NoError(t, err)
	for range 6 { // the policy allows 5 within a minute
		failRoom(t, rt, topic)
	}
	select {
	case e := <-failed:
		assert.Equal(t, topic, e.Topic)
	case <-time.After(10 * time.Second):
		t.Fatal("no RoomFailed event")
	}
	// A new room actor serves the topic; the old subscription is gone.
	var again received
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = rt.Subscribe(ctx, topic, again.add)
	require.NoError(t, err)
	ids := post(t, rt, topic, 3, "after the loop")
	require.Eventually(t, func() bool { return len(again.all()) == 3 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, ids, again.all())
	assert.Empty(t, got.all(), "the stopped room's subscription ended")
}

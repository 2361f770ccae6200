package runtime

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/seam"
)

// roomEvents records a runtime's room events.
type roomEvents struct {
	mu  sync.Mutex
	evs []RoomEvent
}

func (r *roomEvents) add(e RoomEvent) {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
}

func (r *roomEvents) of(topic seam.Topic) []RoomEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []RoomEvent
	for _, e := range r.evs {
		if e.Topic == topic {
			out = append(out, e)
		}
	}
	return out
}

// One room crash-loops (fails again and again until the policy stops it)
// while another connection posts to its sibling rooms on the same runtime, on
// a real server: the siblings keep delivering during the loop, and after it
// each sibling's subscriber holds every message posted to it, once, in order,
// with no gap, no rejoin and no failure of their own.
func TestCrashLoopingRoomLeavesSiblingsDelivering(t *testing.T) {
	var events roomEvents
	rt := liveRuntime(t, func(c *Config) { c.OnRoomEvent = events.add })
	s := xmpptest.Env()
	poster, err := New(Config{Service: "xmpp://" + s.Addr, Domain: s.Domain, MUCService: s.MUC,
		Username: s.Accounts[1][0], Password: s.Accounts[1][1]})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, poster.Connect(ctx))
	defer func() { _ = poster.Disconnect(context.Background()) }()

	stamp := fmt.Sprint(time.Now().UnixNano())
	victim := seam.Topic("crash loop victim " + stamp)
	siblings := make([]seam.Topic, 4)
	got := make([]*received, len(siblings))
	var delivered atomic.Int64
	for i := range siblings {
		siblings[i] = seam.Topic(fmt.Sprintf("crash loop sibling %d %s", i, stamp))
		got[i] = &received{}
		g := got[i]
		_, err := rt.Subscribe(ctx, siblings[i], func(m seam.Message) { g.add(m); delivered.Add(1) })
		require.NoError(t, err)
	}
	_, err = rt.Subscribe(ctx, victim, func(seam.Message) {})
	require.NoError(t, err)

	// Another connection posts to the siblings, round robin, until told to stop.
	posted := make([][]seam.BackendMsgID, len(siblings))
	stop := make(chan struct{})
	postErr := make(chan error, 1)
	go func() {
		defer close(postErr)
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			i := n % len(siblings)
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			id, err := poster.Post(pctx, siblings[i], "me", fmt.Sprintf("sibling %d message %d", i, n), seam.PostOptions{})
			pcancel()
			if err != nil {
				postErr <- err
				return
			}
			posted[i] = append(posted[i], id)
		}
	}()
	require.Eventually(t, func() bool { return delivered.Load() >= 8 }, 20*time.Second, 5*time.Millisecond, "siblings deliver before the loop")

	// The loop: the policy restarts 5 failures within a minute and stops the
	// room at the sixth. Spread out so that the siblings' traffic overlaps it.
	before := delivered.Load()
	for range 6 {
		failRoom(t, rt, victim)
		time.Sleep(150 * time.Millisecond)
	}
	require.Eventually(t, func() bool {
		for _, e := range events.of(victim) {
			if e.Kind == RoomFailed {
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond, "the crash-looping room is stopped and reported")
	during := delivered.Load() - before
	assert.Positive(t, during, "the siblings delivered while their neighbour crash-looped")

	time.Sleep(300 * time.Millisecond) // and after it
	close(stop)
	require.NoError(t, <-postErr)
	for i, topic := range siblings {
		posted[i] = append(posted[i], post(t, poster, topic, 1, "after the loop")...)
	}
	for i := range siblings {
		require.Eventually(t, func() bool { return len(got[i].all()) >= len(posted[i]) }, 20*time.Second, 5*time.Millisecond,
			"sibling %d: got %d of %d", i, len(got[i].all()), len(posted[i]))
	}
	time.Sleep(200 * time.Millisecond) // room for a duplicate to show
	for i, topic := range siblings {
		assert.Equal(t, posted[i], got[i].all(), "sibling %d: every message once, in order", i)
		assert.Empty(t, events.of(topic), "sibling %d: no gap, rejoin or failure of its own", i)
	}
	t.Logf("%d sibling deliveries during the crash loop; %d in all", during, delivered.Load())
}

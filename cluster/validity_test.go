package cluster

import (
	"cmp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/parley-go/parley-xmpp/internal/etcdtest"
)

// A lease's local validity counts from when a renewal was sent, never moves
// back, and refuses within the margin of its end.
func TestLeaseClock(t *testing.T) {
	now := time.Now()
	c := newLeaseClock(now, 3*time.Second)
	require.NoError(t, c.check(time.Second))
	assert.InDelta(t, 3*time.Second, c.left(), float64(100*time.Millisecond))

	c.renewed(now.Add(-2*time.Second), 3*time.Second) // an older renewal: no change
	assert.InDelta(t, 3*time.Second, c.left(), float64(100*time.Millisecond))
	c.renewed(now.Add(time.Second), 3*time.Second)
	assert.InDelta(t, 4*time.Second, c.left(), float64(100*time.Millisecond))

	// Granted (or last renewed) 2.5 s ago with a 3 s TTL: 0.5 s left, under a
	// 1 s margin, over none.
	old := newLeaseClock(now.Add(-2500*time.Millisecond), 3*time.Second)
	assert.ErrorIs(t, old.check(time.Second), errLeaseLapsing)
	assert.NoError(t, old.check(0))
	refusals := 0
	assert.ErrorIs(t, old.fence(time.Second, func() { refusals++ })(), errLeaseLapsing)
	assert.NoError(t, old.fence(0, func() { refusals++ })())
	assert.Equal(t, 1, refusals)
	gone := newLeaseClock(now.Add(-4*time.Second), 3*time.Second)
	assert.ErrorIs(t, gone.check(0), errLeaseLapsing)

	assert.Equal(t, 500*time.Millisecond, postMargin(2*time.Second))
	assert.Equal(t, time.Second, postMargin(10*time.Second))
}

// Issue 20 item 4: a node is not ready once its lease's local validity bound
// has passed, although the etcd client still thinks the lease alive (as right
// after SIGCONT, before any of its goroutines ran).
func TestNotReadyPastTheLeaseBound(t *testing.T) {
	ls := liveTestSession(t)
	s := ls.Session
	n := &Node{id: "me"}
	n.ready.Store(true)
	n.view.Store(&registry{leases: map[string]clientv3.LeaseID{"me": s.Lease()}, ids: []string{"me"}})
	n.sess.Store(ls)
	require.True(t, n.Ready(), "a fresh lease: ready")
	n.sess.Store(&nodeLease{Session: s, clock: newLeaseClock(time.Now().Add(-6*time.Second), 5*time.Second), ended: make(chan struct{})})
	select {
	case <-s.Done():
		t.Fatal("the session itself is still live")
	default:
	}
	require.False(t, n.Ready(), "past the bound: not ready, whatever the client says")
}

// liveTestSession is a live lease (5 s) on a real etcd, with a fresh clock.
func liveTestSession(t *testing.T) *nodeLease {
	e := etcdtest.Start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.ClientURL}, DialTimeout: 5 * time.Second, Logger: quietZap()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return &nodeLease{Session: s, clock: newLeaseClock(time.Now(), 5*time.Second), ended: make(chan struct{})}
}

func (n *Node) ttlOr() time.Duration { return cmp.Or(n.ttl, 5*time.Second) }

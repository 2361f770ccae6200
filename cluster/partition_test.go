package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/parley-go/parley-xmpp/cluster"
)

// A node cut off from etcd (its XMPP link stays) stops delivering within its
// lease, its topics move to the others, it exits non-zero (ErrLeaseLost), and
// once the link is back nothing it writes lands: no cursor, no lock, no
// delivery. The cut is a real one: the node runs in a network namespace whose
// etcd path the test takes down (packets dropped, no RST).
func TestPartitionFromEtcd(t *testing.T) {
	testPartition(t, etcdLink, cluster.ErrLeaseLost)
}

// A node cut off from the XMPP server (it keeps etcd) gives its topics up
// within about its lease (it finds the half-open link by its pings, waits half
// a lease, revokes its lease), exits non-zero (ErrLinkLost), and delivers
// nothing late once the link is back.
func TestPartitionFromXMPP(t *testing.T) {
	testPartition(t, xmppLink, cluster.ErrLinkLost)
}

// moveWithin is how long after the cut the isolated node's topics may take to
// be locked by the others: its lease (it expires, or the node revokes it
// after half a lease without its XMPP link), and 2 s.
const moveWithin = leaseTTL + 2*time.Second

func testPartition(t *testing.T, link string, why error) {
	// 10 identities (9 topics, the relay): bounded loads give each of the 3
	// nodes at least 10 − 2·ceil(10/3) = 2, so the isolated node delivers at
	// least one topic of the out route.
	f := newFixture(t, 9)
	f.dumpLogsOnFailure()
	p := newNetPath(t, strings.TrimPrefix(f.etcd.ClientURL, "http://"), f.s.Addr)
	f.startNode("a")
	f.startNode("b")
	c := f.startIsolated("c", p)
	f.post(2)
	f.waitAllDelivered(60 * time.Second)
	for _, n := range f.nodes {
		f.waitMembers(n, 3) // c's metrics come through its namespace's forwarder
	}
	cid := f.nodeID(c)
	oldLease := f.registration(cid)
	require.NotZero(t, oldLease, "the isolated node is registered under its lease")
	cli := f.etcdClient()
	prefix := "/parley-xmpp/" + strings.TrimSuffix(f.relay, "-relayed") + "/"
	held := f.locksOf(cli, prefix, oldLease)
	require.True(t, slices.ContainsFunc(held, func(k string) bool { return strings.HasPrefix(k, prefix+"locks/out/") }),
		"the isolated node delivers a topic of the out route: it holds %v", held)
	watch := watchPrefix(t, cli, prefix)
	mon := f.monitor()

	stop := f.streamer(200 * time.Millisecond)
	time.Sleep(2 * time.Second)
	before := c.records(t)
	lastBefore := map[string]string{}
	for _, r := range before {
		lastBefore[r.Topic] = r.ID
	}
	cut := time.Now()
	p.cut(link)
	// What had been posted a lease after the cut: the isolated node delivers
	// none of it.
	byLease := make(chan map[string]int, 1)
	leaseTimer := time.AfterFunc(leaseTTL, func() {
		m := map[string]int{}
		f.mu.Lock()
		for tp, ids := range f.posted {
			m[tp] = len(ids)
		}
		f.mu.Unlock()
		byLease <- m
	})
	defer leaseTimer.Stop()

	// Wait for the node's end, its registration's, and its locks taken by
	// the others; heal the link as soon as etcd dropped its registration
	// (its lease ended, or it revoked it), whether or not it has exited.
	var exited, unregistered, moved, healed time.Duration
	var atUnregistered, atHeal int // c's records then
	aliveAtHeal := false
	for deadline := cut.Add(within); exited == 0 || moved == 0 || healed == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s after the cut: exited %v, unregistered %v, topics moved %v (0: not yet)", within, exited, unregistered, moved)
		}
		if exited == 0 {
			select {
			case <-c.exited:
				exited = time.Since(cut)
			default:
			}
		}
		if unregistered == 0 && watch.deleted(prefix+"nodes/"+cid) > 0 {
			unregistered = time.Since(cut)
			atUnregistered = len(c.records(t))
		}
		if moved == 0 && watch.takenOver(held, oldLease) {
			moved = time.Since(cut)
		}
		if healed == 0 && unregistered > 0 {
			select {
			case <-c.exited:
			default:
				aliveAtHeal = true
			}
			atHeal = len(c.records(t))
			p.heal(link)
			healed = time.Since(cut)
		}
	}
	time.Sleep(time.Second) // the streamer goes on: the others deliver, c can't
	stop()
	f.waitAllDelivered(within)
	handovers := f.checkDeliveries()
	f.checkRelay() // also gives the healed node's late writes time to show
	gap, latency := mon.stop()

	t.Logf("%s cut: node exited %v after it (%v), unregistered after %v, its %d locks taken by the others after %v; healed at %v (node still running: %v)",
		link, exited.Round(time.Millisecond), c.state, unregistered.Round(time.Millisecond), len(held), moved.Round(time.Millisecond),
		healed.Round(time.Millisecond), aliveAtHeal)
	moves := 0
	for _, h := range handovers {
		moves += h
	}
	t.Logf("max delivery gap per topic %v, max post-to-delivery latency %v; %d handovers over %d topics (the join's included)",
		gap.Round(time.Millisecond), latency.Round(time.Millisecond), moves, len(handovers))

	// It exits, non-zero, and says why.
	require.False(t, c.state.Success(), "the isolated node exits non-zero")
	logb, _ := os.ReadFile(filepath.Join(f.dir, c.name+".log"))
	require.Contains(t, string(logb), why.Error(), "it says why")
	// Its topics moved in time.
	require.LessOrEqual(t, moved, moveWithin, "the isolated node's topics were locked by the others within the lease and 2 s")
	// It delivered nothing after the cut but one delivery in flight per
	// topic, and nothing posted a lease after the cut; nothing at all after
	// the heal.
	postedByLease := <-byLease // the wait above took more than the lease
	after := c.records(t)
	perTopic := map[string]int{}
	for _, r := range after[len(before):] {
		perTopic[r.Topic]++
		require.LessOrEqual(t, perTopic[r.Topic], 1, "the isolated node delivered more than its in-flight message of %s after the %s cut: %v", r.Topic, link, after[len(before):])
		require.Equal(t, f.successor(r.Topic, lastBefore[r.Topic]), r.ID, "the isolated node's late record of %s is the one it had in flight", r.Topic)
		require.Less(t, f.index(r.Topic, r.ID), postedByLease[r.Topic], "the isolated node delivered a message of %s posted a lease after the cut", r.Topic)
	}
	t.Logf("the isolated node's deliveries after the cut: %d (after its registration ended: %d)", len(after)-len(before), len(after)-atUnregistered)
	require.LessOrEqual(t, len(after)-atUnregistered, len(perTopic), "after its registration ended, at most the deliveries in flight")
	require.Equal(t, atHeal, len(after), "the isolated node delivered after the link healed: %v", after[atHeal:])
	// etcd holds nothing it wrote once its registration was gone: no key
	// under its old lease, no cursor in its name.
	for _, ev := range watch.since(prefix + "nodes/" + cid) {
		require.False(t, ev.put && ev.lease == oldLease, "a write under the isolated node's old lease after it ended: %s", ev.key)
		if ev.put && strings.HasPrefix(ev.key, prefix+"cursors/") {
			var cur struct{ Node string }
			require.NoError(t, json.Unmarshal(ev.value, &cur))
			require.NotEqual(t, cid, cur.Node, "a cursor written by the isolated node after it ended: %s", ev.key)
		}
	}
}

// index is id's position in topic's archive (-1: not posted).
func (f *fixture) index(topic, id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Index(f.posted[topic], id)
}

// etcdClient is a client of the test's etcd, closed at the end of the test.
func (f *fixture) etcdClient() *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{f.etcd.ClientURL}, DialTimeout: 5 * time.Second})
	require.NoError(f.t, err)
	f.t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// locksOf lists the lock keys held under lease.
func (f *fixture) locksOf(cli *clientv3.Client, prefix string, lease int64) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, prefix+"locks/", clientv3.WithPrefix())
	require.NoError(f.t, err)
	var out []string
	for _, kv := range resp.Kvs {
		if kv.Lease == lease {
			out = append(out, string(kv.Key))
		}
	}
	return out
}

// etcdEvent is a change in etcd as the test's watch saw it.
type etcdEvent struct {
	rev   int64
	put   bool // else a delete
	key   string
	lease int64
	value []byte
}

// etcdWatch records every change under a prefix.
type etcdWatch struct {
	mu  sync.Mutex
	evs []etcdEvent
}

func watchPrefix(t *testing.T, cli *clientv3.Client, prefix string) *etcdWatch {
	w := &etcdWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := cli.Get(ctx, prefix+"probe")
	require.NoError(t, err)
	wch := cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wr := range wch {
			if err := wr.Err(); err != nil && ctx.Err() == nil {
				t.Errorf("watching etcd: %v", err)
				return
			}
			w.mu.Lock()
			for _, ev := range wr.Events {
				w.evs = append(w.evs, etcdEvent{rev: ev.Kv.ModRevision, put: ev.Type == clientv3.EventTypePut,
					key: string(ev.Kv.Key), lease: ev.Kv.Lease, value: ev.Kv.Value})
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// deleted is the revision key was first deleted at (0: not yet).
func (w *etcdWatch) deleted(key string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range w.evs {
		if !ev.put && ev.key == key {
			return ev.rev
		}
	}
	return 0
}

// since is the events after key's first deletion (none before it).
func (w *etcdWatch) since(key string) []etcdEvent {
	rev := w.deleted(key)
	if rev == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []etcdEvent
	for _, ev := range w.evs {
		if ev.rev > rev {
			out = append(out, ev)
		}
	}
	return out
}

// takenOver says whether every key was created again under another lease
// than lease.
func (w *etcdWatch) takenOver(keys []string, lease int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		ok := false
		for _, ev := range w.evs {
			if ev.put && ev.key == k && ev.lease != lease {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// deliveryMonitor notes when each message was first seen posted and first
// seen delivered (polling every 20 ms).
type deliveryMonitor struct {
	done, finished chan struct{}
	once           sync.Once
	posted         map[string]time.Time // topic/id →
	delivered      map[string]time.Time // topic/id →
	topics         map[string][]time.Time
}

func (f *fixture) monitor() *deliveryMonitor {
	m := &deliveryMonitor{done: make(chan struct{}), finished: make(chan struct{}),
		posted: map[string]time.Time{}, delivered: map[string]time.Time{}, topics: map[string][]time.Time{}}
	var files []string
	for _, n := range f.nodes {
		files = append(files, n.out)
	}
	go func() {
		defer close(m.finished)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			now := time.Now()
			f.mu.Lock()
			for tp, ids := range f.posted {
				for _, id := range ids {
					if _, ok := m.posted[tp+"/"+id]; !ok {
						m.posted[tp+"/"+id] = now
					}
				}
			}
			f.mu.Unlock()
			for _, file := range files {
				fh, err := os.Open(file)
				if err != nil {
					continue
				}
				sc := bufio.NewScanner(fh)
				for sc.Scan() {
					var r record
					if json.Unmarshal(sc.Bytes(), &r) != nil {
						continue
					}
					if _, ok := m.delivered[r.Topic+"/"+r.ID]; !ok {
						m.delivered[r.Topic+"/"+r.ID] = now
						m.topics[r.Topic] = append(m.topics[r.Topic], now)
					}
				}
				_ = fh.Close()
			}
			select {
			case <-m.done:
				return
			case <-tk.C:
			}
		}
	}()
	f.t.Cleanup(func() { m.stop() })
	return m
}

// stop ends the monitor and answers the longest time a topic went without a
// new delivery, and the longest time from a post to its first delivery, since
// the monitor started.
func (m *deliveryMonitor) stop() (gap, latency time.Duration) {
	m.once.Do(func() { close(m.done) })
	<-m.finished
	for _, ts := range m.topics {
		for i := 1; i < len(ts); i++ {
			gap = max(gap, ts[i].Sub(ts[i-1]))
		}
	}
	for k, p := range m.posted {
		if d, ok := m.delivered[k]; ok {
			latency = max(latency, d.Sub(p))
		}
	}
	return gap, latency
}

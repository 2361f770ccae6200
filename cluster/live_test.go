package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// within is how long the dead or paused node's topics may take to deliver
// again: the lease TTL, then a reconcile round and a lock, with room for a
// slow CI machine.
const within = leaseTTL + 20*time.Second

// kill -9 of a node mid-stream: its topics resume on the survivors; per topic
// every archived message is delivered, in archive order, with at most one
// duplicate at the handover; the relay stays exactly once.
func TestKill9MidStream(t *testing.T) {
	f := newFixture(t, 6)
	f.dumpLogsOnFailure()
	for _, name := range []string{"a", "b", "c"} {
		f.startNode(name)
	}
	f.post(2)
	f.waitAllDelivered(60 * time.Second)

	// The victim is the relay's node, so that the relay is handed over too.
	victim := f.relayOwner()
	stop := f.streamer(150 * time.Millisecond)
	time.Sleep(time.Second)
	killed := f.owned(victim.name)
	victim.kill9(t)
	time.Sleep(leaseTTL)
	stop()
	f.waitAllDelivered(within)
	handovers := f.checkDeliveries()
	t.Logf("killed %s owning %v; handovers %v", victim.name, killed, handovers)
	for _, tp := range killed {
		require.GreaterOrEqual(t, handovers[tp], 1, "topic %s moved off the killed node", tp)
	}
	f.checkRelay()
	f.noErrorLogged() // a normal failover logs no ERROR (issue 19)

	// The survivors say so on their metrics endpoints: each is ready and
	// sees the two survivors (the registry in etcd, one truth for all).
	took, owned := 0.0, 0.0
	for _, n := range f.nodes {
		if n == victim {
			continue
		}
		body, ready := n.scrape(t)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if ready == 200 && metricValue(body, "parley_xmpp_cluster_members") == 2 {
				break
			}
			body, ready = n.scrape(t)
		}
		require.Equal(t, 200, ready, "node %s /readyz", n.name)
		require.Equal(t, 2.0, metricValue(body, "parley_xmpp_cluster_members"), "node %s sees the two survivors", n.name)
		took += metricValue(body, "parley_xmpp_cluster_handovers_total")
		owned += metricValue(body, "parley_xmpp_cluster_identities_owned")
	}
	require.GreaterOrEqual(t, took, 1.0, "the survivors counted the handovers")
	require.Equal(t, float64(len(f.topics)+1), owned, "the survivors own every (route, topic)")
}

// waitMembers waits (10 s at most) until node n's members gauge says want.
func (f *fixture) waitMembers(n *node, want float64) {
	f.t.Helper()
	got := -1.0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		body, _ := n.scrape(f.t)
		if got = metricValue(body, "parley_xmpp_cluster_members"); got == want {
			return
		}
	}
	require.Equal(f.t, want, got, "node %s's members gauge", n.name)
}

// successor is the id posted to topic right after id ("" for the first).
func (f *fixture) successor(topic, id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := f.posted[topic]
	if id == "" && len(ids) > 0 {
		return ids[0]
	}
	for i, x := range ids {
		if x == id && i+1 < len(ids) {
			return ids[i+1]
		}
	}
	return "(none)"
}

// busiest is the live node that delivered the last record of most topics.
func (f *fixture) busiest() *node {
	count := map[string]int{}
	for _, n := range f.owners() {
		count[n]++
	}
	var best *node
	for _, n := range f.nodes {
		select {
		case <-n.exited:
			continue
		default:
		}
		if best == nil || count[n.name] > count[best.name] {
			best = n
		}
	}
	return best
}

// owned lists the topics whose last record came from node name.
func (f *fixture) owned(name string) []string {
	var out []string
	for tp, n := range f.owners() {
		if n == name {
			out = append(out, tp)
		}
	}
	return out
}

// A node paused past its lease (SIGSTOP) loses its topics to the others;
// resumed (SIGCONT), it is not ready while its old lease is expired (issue
// 20: /readyz answered 200 for ~50 ms), delivers nothing under the old lease
// but the delivery in flight at the pause, then registers again with a new
// lease and takes its share back through ordinary handovers.
func TestPausedNodeDeliversNothingAfterTakeover(t *testing.T) {
	f := newFixture(t, 6)
	f.dumpLogsOnFailure()
	for _, name := range []string{"a", "b"} {
		f.startNode(name)
	}
	f.post(2)
	f.waitAllDelivered(60 * time.Second)
	for _, n := range f.nodes {
		f.waitMembers(n, 2) // both registered: the gauge shows it
	}
	stop := f.streamer(150 * time.Millisecond)
	time.Sleep(time.Second)
	paused := f.busiest()
	require.NotEmpty(t, f.owned(paused.name))
	pid := f.nodeID(paused)
	oldLease := f.registration(pid)
	require.NotZero(t, oldLease, "the node is registered under its lease")
	// Paused with a backlog: resumed, its workers are in the middle of a page,
	// with the next delivery due at once.
	f.post(10)
	paused.stop(t)
	time.Sleep(leaseTTL + time.Second)
	require.Zero(t, f.registration(pid), "the paused node's registration expired with its lease")
	stop()
	f.waitAllDelivered(within) // taken over: everything posted delivered by the other node
	before := paused.records(t)
	lastBefore := map[string]string{}
	for _, r := range before {
		lastBefore[r.Topic] = r.ID
	}

	// Resumed: it is never ready again (issue 20: /readyz answered 200 for
	// ~50 ms after SIGCONT), and exits non-zero for its supervisor.
	paused.signal(t, syscall.SIGCONT)
	resumed := time.Now()
	readies := 0
	for waiting := true; waiting; {
		select {
		case <-paused.exited:
			waiting = false
			continue
		case <-time.After(5 * time.Millisecond):
		}
		require.Less(t, time.Since(resumed), 10*time.Second, "the resumed node did not exit")
		resp, err := http.Get("http://" + paused.metrics + "/readyz")
		if err != nil {
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode == 200 {
			readies++
		}
	}
	require.Zero(t, readies, "/readyz answered 200 after SIGCONT, under the expired lease")
	require.False(t, paused.state.Success(), "the node that lost its lease exits non-zero")
	logb, _ := os.ReadFile(filepath.Join(f.dir, paused.name+".log"))
	require.Contains(t, string(logb), "lease ended", "it says why")
	t.Logf("resumed node exited %v after SIGCONT", time.Since(resumed).Round(time.Millisecond))
	require.Zero(t, f.registration(pid), "no registration of the old node")

	// Its supervisor starts it again: a fresh node, which takes its share
	// through ordinary handovers.
	fresh := f.startNode(paused.name + "2")
	for _, n := range []*node{fresh, f.nodes[0], f.nodes[1]} {
		if n != paused {
			f.waitMembers(n, 2)
		}
	}
	f.post(2)
	f.waitAllDelivered(within)
	require.NotEmpty(t, fresh.records(t), "the restarted node delivers")
	// Under the old lease, nothing after the takeover but a delivery that was
	// already in flight at the pause (its exec sink started, or its check
	// passed): at most one per topic, the message right after the last one
	// the node delivered before the pause (docs/cluster.md: the window).
	late := paused.records(t)[len(before):]
	perTopic := map[string]int{}
	for _, r := range late {
		perTopic[r.Topic]++
		require.LessOrEqual(t, perTopic[r.Topic], 1, "the resumed node delivered more than its in-flight message of %s: %v", r.Topic, late)
		require.Equal(t, f.successor(r.Topic, lastBefore[r.Topic]), r.ID, "the resumed node's late record of %s is the one it had in flight", r.Topic)
	}
	t.Logf("in flight at the pause, completed after it: %d", len(late))
	handovers := f.checkDeliveries()
	t.Logf("handovers %v", handovers)
	f.checkRelay()
}

// registration is the lease a node's registration key is bound to in etcd
// (0: not registered).
func (f *fixture) registration(id string) int64 {
	f.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{f.etcd.ClientURL}, DialTimeout: 5 * time.Second})
	require.NoError(f.t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/parley-xmpp/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(f.t, err)
	for _, kv := range resp.Kvs {
		if strings.HasSuffix(string(kv.Key), "/nodes/"+id) {
			return kv.Lease
		}
	}
	return 0
}

// A node joins: hashing moves some topics to it, each handed over with the
// same guarantees; cluster status shows it owning them.
func TestNodeJoinRebalances(t *testing.T) {
	f := newFixture(t, 12)
	f.dumpLogsOnFailure()
	f.startNode("a")
	f.startNode("b")
	f.post(2)
	f.waitAllDelivered(60 * time.Second)
	stop := f.streamer(300 * time.Millisecond)
	// Bounded loads give the new node at least 13 − 2·ceil(13/3) = 3 of the
	// 13 identities, whatever its id (plain hashing gave it none about once
	// in 200 starts: issue 13).
	c := f.startNode("c")
	cid := f.nodeID(c)
	require.Eventually(t, func() bool {
		_, _, owners := f.status()
		for _, id := range owners {
			if id == cid {
				return true
			}
		}
		return false
	}, within, 300*time.Millisecond, "the joined node owns topics")
	time.Sleep(2 * time.Second)
	stop()
	f.post(1)
	f.waitAllDelivered(within)
	f.checkDeliveries()
	require.NotEmpty(t, c.records(t), "the joined node delivers")
	f.checkRelay()
}

// etcd restarts: the nodes hold their deliveries while it is away and resume
// without losing anything.
func TestEtcdRestart(t *testing.T) {
	f := newFixture(t, 4)
	f.dumpLogsOnFailure()
	f.startNode("a")
	f.startNode("b")
	f.post(2)
	f.waitAllDelivered(60 * time.Second)
	f.etcd.Stop()
	f.post(3) // while etcd is down
	time.Sleep(leaseTTL + time.Second)
	f.etcd.Start()
	// Away longer than the lease: each node's lease's bound passed, so each
	// stopped and exits non-zero; their supervisor (here the test) starts
	// them again, and they resume from the cursors in etcd.
	for _, n := range append([]*node(nil), f.nodes...) {
		select {
		case <-n.exited:
		case <-time.After(within):
			t.Fatalf("node %s did not exit after losing its lease", n.name)
		}
		require.False(t, n.state.Success(), "node %s exits non-zero", n.name)
		f.startNode(n.name + "2")
	}
	f.post(1)
	f.waitAllDelivered(within)
	f.checkDeliveries()
	f.checkRelay()

	// With etcd away, a node still stops on SIGTERM, in bounded time, exit 0.
	f.etcd.Stop()
	a := f.nodes[2]
	a.signal(t, syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop within 60s of SIGTERM while etcd is away")
	}
	require.True(t, a.state.Success(), "exit status %v", a.state)
}

// Every node restarts (kill -9 all, messages posted while none runs): delivery
// resumes from the cursors in etcd.
func TestAllNodesRestart(t *testing.T) {
	f := newFixture(t, 4)
	f.dumpLogsOnFailure()
	a, b := f.startNode("a"), f.startNode("b")
	f.waitPlaced(a, b) // else a topic b takes from a after a delivered is a handover too
	f.post(3)
	f.waitAllDelivered(60 * time.Second)
	a.kill9(t)
	b.kill9(t)
	f.post(3)
	f.startNode("a2")
	f.startNode("b2")
	f.waitAllDelivered(within)
	handovers := f.checkDeliveries()
	for tp, n := range handovers {
		require.Equal(t, 1, n, "topic %s: resumed once, from its cursor", tp)
	}
	f.checkRelay()
}

// A relay post in flight when its node is paused past its lease is not
// written when the node resumes (issue 13: the pause test once relayed a
// message twice). The relay's node reaches the XMPP server through a tap that
// pauses it (SIGSTOP) as it sends the last query of its PostOnce archive check
// for the relayed message (the check reads the page after the last relayed
// id, and the newest row to verify that id unless the node saw it lately:
// the test counts the queries on a message relayed just before), before the
// query reaches the server: the answers say "not there", and the node reads them only when it
// runs again. Meanwhile the other node takes the relay over, finds nothing
// either, and posts the message. Resumed, the paused node would post it
// again: its lease's fence (runtime.WithPostFence) refuses the write.
func TestPausedRelayPostIsNotWrittenLate(t *testing.T) {
	f := newFixture(t, 1)
	f.dumpLogsOnFailure()
	taps := map[string]*tap{}
	for _, name := range []string{"a", "b"} {
		taps[name] = newTap(t, f.s.Addr)
		f.startNodeWith(name, "127.0.0.1:0", taps[name].addr())
	}
	f.post(2)
	f.waitAllDelivered(60 * time.Second)
	f.checkRelay() // relayed so far, and the relay idle
	r := f.relayOwner()
	local, err := runtime.RoomLocalpart(seam.Topic(f.relay))
	require.NoError(t, err)
	// How many archive queries the check sends depends on what the node's
	// archive actor already knows (it verifies an id it has not seen lately
	// with one more): count them on one more message relayed first, whose
	// check starts, as the next one's will, from an id the node relayed.
	var queries atomic.Int32
	isQuery := func(b []byte) bool {
		return strings.Contains(string(b), local+"@") && strings.Contains(string(b), "urn:xmpp:mam:2")
	}
	taps[r.name].onSend(func(b []byte) {
		if isQuery(b) {
			queries.Add(1)
		}
	})
	f.post(1)
	require.Eventually(t, func() bool { return f.relayedCount(fmt.Sprintf("%s message %d", f.topics[0], 2)) >= 1 }, within, 300*time.Millisecond,
		"node %s relays a third message", r.name)
	perCheck := queries.Load()
	require.Positive(t, perCheck, "node %s checks the relay destination's archive before it posts", r.name)

	paused := make(chan struct{})
	queries.Store(0)
	taps[r.name].onSend(func(b []byte) {
		if isQuery(b) && queries.Add(1) == perCheck {
			r.stop(t)
			close(paused)
			taps[r.name].onSend(nil)
		}
	})

	f.post(1)
	select {
	case <-paused:
	case <-time.After(within):
		t.Fatalf("node %s did not check the relay destination's archive with %d queries (%d seen)", r.name, perCheck, queries.Load())
	}
	want := fmt.Sprintf("%s message %d", f.topics[0], 3)
	require.Eventually(t, func() bool { return f.relayedCount(want) >= 1 }, within, 300*time.Millisecond,
		"the other node took the relay over and posted %q", want)
	r.signal(t, syscall.SIGCONT)
	time.Sleep(2 * leaseTTL) // the resumed node's chance to post it again
	f.checkRelay()
	// Resumed past its lease, it stopped and exited non-zero (its metrics
	// went with it: the fence's refusal is what checkRelay saw, one post).
	select {
	case <-r.exited:
	case <-time.After(within):
		t.Fatalf("node %s did not exit after losing its lease", r.name)
	}
	require.False(t, r.state.Success(), "node %s exits non-zero", r.name)
}

// relayedCount counts the relay destination's messages with content.
func (f *fixture) relayedCount(content string) int {
	n := 0
	var since seam.Cursor
	for {
		page, err := f.poster.FetchRecent(f.ctx, seam.FetchRecentArgs{Topic: seam.Topic(f.relay), Since: &since, Limit: 100})
		if err != nil {
			return n
		}
		for _, m := range page.Messages {
			if m.Content == content {
				n++
			}
		}
		if page.NextCursor != "" {
			since = page.NextCursor
		}
		if len(page.Messages) < 100 {
			return n
		}
	}
}

// noErrorLogged fails the test for every ERROR a node logged (text or JSON):
// a failover the cluster handles is no error. protoactor's are adapted
// (cluster/actorlog.go); the test once saw 14 to 35 of its ERROR lines.
func (f *fixture) noErrorLogged() {
	f.t.Helper()
	for _, n := range f.nodes {
		b, _ := os.ReadFile(filepath.Join(f.dir, n.name+".log"))
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "level=ERROR") || strings.Contains(line, `"level":"ERROR"`) {
				f.t.Errorf("node %s logged an ERROR: %s", n.name, line)
			}
		}
	}
}

// The outside check's sequence (issue 20): a node paused past its lease, then
// another node restarted while the first is still paused, the paused one
// resumed, then a new node joining. Before, topics placed on the paused node
// by the newcomer stopped for good. Now every topic keeps moving: the
// resumed node ends at once (it never delivers again), the rest share the
// topics, and everything posted is delivered in order, checked against the
// archives.
func TestPauseRestartJoin(t *testing.T) {
	f := newFixture(t, 9)
	f.dumpLogsOnFailure()
	a, b := f.startNode("a"), f.startNode("b")
	f.startNode("c")
	f.post(2)
	f.waitAllDelivered(60 * time.Second)
	for _, n := range f.nodes {
		f.waitMembers(n, 3)
	}
	stop := f.streamer(200 * time.Millisecond)

	a.stop(t) // SIGSTOP
	time.Sleep(leaseTTL + time.Second)
	b.kill9(t)
	b2 := f.startNode("b2")
	time.Sleep(leaseTTL)
	heard := len(a.records(t))
	a.signal(t, syscall.SIGCONT)
	select {
	case <-a.exited:
	case <-time.After(within):
		t.Fatal("the node resumed after its lease ended did not exit")
	}
	require.False(t, a.state.Success(), "the resumed node exits non-zero")
	d := f.startNode("d")
	did := f.nodeID(d)
	require.Eventually(t, func() bool {
		_, _, owners := f.status()
		for _, id := range owners {
			if id == did {
				return true
			}
		}
		return false
	}, within, 300*time.Millisecond, "the joined node owns topics")
	for _, n := range []*node{b2, f.nodes[2], d} {
		f.waitMembers(n, 3)
	}
	time.Sleep(2 * time.Second)
	stop()
	f.post(1)
	f.waitAllDelivered(within)
	// Every topic has an owner among the live nodes, and status says so.
	code, out, owners := f.status()
	require.Zero(t, code, out)
	require.Len(t, owners, len(f.topics)+1, "every topic owned: %s", out)
	// After SIGCONT, at most the delivery each topic had in flight at the
	// pause (docs/cluster.md: the window).
	late := map[string]int{}
	for _, r := range a.records(t)[heard:] {
		late[r.Topic]++
		require.LessOrEqual(t, late[r.Topic], 1, "the resumed node delivered more than its in-flight message of %s", r.Topic)
	}
	handovers := f.checkDeliveries()
	worst, which := f.slowest()
	t.Logf("handovers %v; longest wait of a message for its delivery %s (%s), lease_ttl %s", handovers, worst.Round(time.Millisecond), which, leaseTTL)
	require.NotEmpty(t, d.records(t), "the joined node delivers")
	require.NotEmpty(t, b2.records(t), "the restarted node delivers")
	f.checkRelay()
}

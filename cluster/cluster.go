// Package cluster runs serve's routes on several processes (nodes) at once:
// each (route, topic) is delivered by one node at a time, and moves to the
// survivors when its node dies.
//
// One membership truth: every node registers under
// /parley-xmpp/<name>/nodes/<id>, a key bound to its own etcd lease (TTL
// lease_ttl). Every node watches those keys, and places every configured
// (route, topic) on one of the registered nodes by rendezvous hashing with
// bounded loads (assign): each node computes the same placement from the
// same registry and the same configuration, and runs the topics placed on
// it. Nodes never talk to each other; everything goes through etcd.
//
// Fencing: placement alone can run two copies at once for a moment (two
// nodes that have not yet seen the same registry), so a node delivers a topic
// only while it holds the (route, topic)'s lock: a key in etcd created by the
// node's lease. The key's create revision is the fencing token. Before each
// delivery the worker checks in etcd that the key still has that revision,
// and after each delivery it writes its cursor in a transaction that makes
// the same comparison; a refused check or write stops the worker at once. A
// node that stops answering (killed, paused, cut from etcd) loses its lease
// after lease_ttl: its registration and its locks are deleted, the others
// place its topics among themselves and take the locks, and anything the old
// node still attempts is refused.
//
// A node whose lease ended re-registers: a new lease, a new registration
// (the others place topics on it again), new locks (new fencing tokens), its
// topics' workers restarted.
//
// Guarantees (docs/cluster.md has the windows and the tests that prove them):
// sinks get every message at least once, in archive order per topic; a
// message delivered again at a handover keeps its id; at most one message per
// topic is delivered twice at a handover (the one whose delivery finished and
// whose cursor write didn't, because the cursor is written after every single
// delivery); relays stay exactly once (PostOnce and the relay's last id are in
// the cursor, in etcd).
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"golang.org/x/sync/errgroup"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/serve"
)

var errSessionLost = errors.New("the node's etcd lease ended")

// Options configure Start.
type Options struct {
	Config   *config.Cluster
	Client   *clientv3.Client // from Dial; the caller closes it after Stop
	Engine   *serve.Engine    // the routes, bound to their servers; the caller closes it after Stop
	Logger   *slog.Logger     // nil → discard
	Registry prometheus.Registerer
	Progress func(line string) // nil → Info records with attributes (route, topic, node)
	// Online reports whether every XMPP link the routes use is up (nil:
	// always). A node whose links stay down for half its lease gives its
	// topics up and ends (ErrLinkLost): cut off from the XMPP server while
	// it keeps etcd, it would otherwise hold its topics' locks and deliver
	// nothing.
	Online func() bool
}

// Node is this process's member of the cluster.
type Node struct {
	o      Options
	id     string
	addr   string // what cluster status shows beside the id: host name and pid
	keys   keys
	cli    *clientv3.Client
	ttl    time.Duration
	call   time.Duration
	log    *slog.Logger
	m      *nodeMetrics
	topics []serve.Topic
	idents []string

	sess atomic.Pointer[nodeLease]
	view atomic.Pointer[registry] // the registry as last read; nil before the first read

	ctx     context.Context // ends at Stop: every owner's parent
	cancel  context.CancelFunc
	mu      sync.Mutex
	closed  bool
	owners  sync.WaitGroup
	bg      sync.WaitGroup
	kick    chan struct{}
	running map[string]*activation // identity → its owner; the reconciler's alone
	warmed  sync.Map               // identity → struct{}: prepared as this node's backup
	warming atomic.Bool            // warmBackups is running
	ready   atomic.Bool
	lost    chan struct{} // closed when the node ended on its own (not at Stop)
	why     error         // ErrLeaseLost or ErrLinkLost; set before lost is closed
}

// ErrLeaseLost is why a node ends on its own: its etcd lease ended (a pause or
// stall past lease_ttl, etcd unreachable for as long). serve exits non-zero
// on it, for its supervisor to start a fresh process.
var ErrLeaseLost = errors.New("this node's etcd lease ended (paused, stalled or cut off from etcd for lease_ttl): " +
	"its topics moved to the other nodes; exiting so that a supervisor starts it afresh")

// ErrLinkLost is the other reason a node ends on its own: its XMPP links
// stayed down for half of lease_ttl while it kept its etcd lease (cut off
// from the XMPP server). It revokes its lease first, so its topics move at
// once; serve exits non-zero on it.
var ErrLinkLost = errors.New("this node's XMPP links stayed down for half of lease_ttl: " +
	"it gave its topics to the other nodes; exiting so that a supervisor starts it afresh once the server is reachable")

// activation is one owner goroutine of a (route, topic) on this node.
type activation struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the owner returned (its lock released)
}

// registry is the cluster's members as etcd lists them: node id → the lease
// its registration is bound to.
type registry struct {
	leases map[string]clientv3.LeaseID
	ids    []string // sorted
}

// nodeLease is the node's current etcd lease and its local validity.
type nodeLease struct {
	*concurrency.Session
	clock *leaseClock
	ended chan struct{} // closed when this node stops using the lease (Done, or its bound passed)
}

// Dial connects to the cluster's etcd and checks that it answers:
// ErrEtcdUnreachable when it doesn't.
func Dial(ctx context.Context, c *config.Cluster) (*clientv3.Client, error) {
	cli, err := NewEtcdClient(c)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, time.Duration(max(c.Etcd.DialTimeout, config.Duration(5*time.Second))))
	_, err = cli.Get(pctx, keysOf(c.Name).prefix+"probe")
	cancel()
	if err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("%w: %v", ErrEtcdUnreachable, err)
	}
	return cli, nil
}

// Start joins the cluster: it registers this node (once it has a lease),
// watches the registry and runs the topics placed on this node.
func Start(ctx context.Context, o Options) (*Node, error) {
	c := o.Config
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ttl := c.TTL()
	host, _ := os.Hostname()
	n := &Node{o: o, id: newNodeID(), addr: fmt.Sprintf("%s/%d", host, os.Getpid()), keys: keysOf(c.Name), cli: o.Client,
		ttl: ttl, call: min(ttl/2, 5*time.Second), log: o.Logger, m: newNodeMetrics(o.Registry),
		kick: make(chan struct{}, 1), running: map[string]*activation{}, lost: make(chan struct{})}
	n.topics = o.Engine.Topics()
	for _, t := range n.topics {
		n.idents = append(n.idents, identity(t))
	}
	if c.Listen != "" || c.Advertise != "" || c.TLS != nil {
		n.log.Warn("cluster: serve.cluster.listen, advertise and tls are no longer used: nodes don't talk to each other, only to etcd (docs/cluster.md)")
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.bg.Go(n.keepSession)
	n.bg.Go(n.watchRegistry)
	n.bg.Go(n.reconcile)
	n.say(fmt.Sprintf("cluster %s: node %s joined at %s", c.Name, n.id, n.addr),
		slog.String("cluster", c.Name), slog.String("node", n.id), slog.String("address", n.addr))
	return n, nil
}

// newNodeID is a fresh node id: 12 lower-case base32 characters (60 bits).
func newNodeID() string { return strings.ToLower(rand.Text()[:12]) }

// Lost is closed when this node ended on its own (Err says why): it has
// stopped every worker, and the process should exit non-zero.
func (n *Node) Lost() <-chan struct{} { return n.lost }

// Err is why the node ended on its own, once Lost is closed: ErrLeaseLost or
// ErrLinkLost (nil before).
func (n *Node) Err() error {
	select {
	case <-n.lost:
		return n.why
	default:
		return nil
	}
}

// ID is this node's member id.
func (n *Node) ID() string { return n.id }

// Ready says whether the node holds a live etcd lease and its registry lists
// it under that lease. A lease is live only while its local validity bound
// (the last confirmed renewal's send time + TTL, on the monotonic clock) has
// not passed: the etcd client's own view (Done) closes up to a second after
// etcd expired the lease, and a node resumed after a pause past its lease
// answered ready for ~50 ms (issue 20).
func (n *Node) Ready() bool {
	s := n.sess.Load()
	if s == nil || !n.ready.Load() || !s.live() {
		return false
	}
	v := n.view.Load()
	return v != nil && v.leases[n.id] == s.Lease()
}

// live: the lease is surely alive now.
func (s *nodeLease) live() bool {
	if s.clock.left() <= 0 {
		return false
	}
	select {
	case <-s.Done():
		return false
	case <-s.ended:
		return false
	default:
		return true
	}
}

// Stop stops every worker of this node, releases their locks and leaves the
// cluster (revokes its lease, which deletes its registration).
func (n *Node) Stop() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	n.owners.Wait()
	n.bg.Wait()
	if s := n.sess.Load(); s != nil {
		n.revoke(s.Session) // nothing of ours lingers
	}
}

// revoke ends lease s in etcd (its registration and locks go with it), within
// a call's timeout. Not s.Close: that revokes with the session's context, the
// node's, which has ended by Stop (the revocation was canceled before it was
// sent: a stopped node's topics waited for its lease to expire, and so did
// those of a node that gave them up on ErrLinkLost, as serve stops it at once).
func (n *Node) revoke(s *concurrency.Session) {
	s.Orphan()
	ctx, cancel := context.WithTimeout(context.Background(), n.call)
	defer cancel()
	_, _ = n.cli.Revoke(ctx, s.Lease())
}

// say reports progress: to Options.Progress as a line, or as an Info record
// with attrs.
func (n *Node) say(line string, attrs ...slog.Attr) {
	if n.o.Progress != nil {
		n.o.Progress(line)
		return
	}
	n.log.LogAttrs(context.Background(), slog.LevelInfo, line, attrs...)
}

// keepSession gets this node's lease, registers under it and keeps it. When
// the lease ends, the node stops for good (Lost): it doesn't register again in
// the same process. A process stopped past its lease comes back with stale
// state everywhere (its rooms' live buffers, its XMPP streams): issue 20 saw a
// resumed node that re-registered take its topics back and deliver again up
// to 15 messages per topic that the other node had delivered while it was
// stopped. A fresh process starts clean.
func (n *Node) keepSession() {
	wait := 100 * time.Millisecond
	for n.ctx.Err() == nil {
		asked := time.Now()
		s, err := concurrency.NewSession(n.cli, concurrency.WithTTL(int(n.ttl/time.Second)), concurrency.WithContext(n.ctx))
		if err != nil {
			n.log.Warn("cluster: can't get an etcd lease; retrying", slog.Any("err", err), slog.Duration("retry_in", wait))
			sleep(n.ctx, wait)
			wait = min(2*wait, n.ttl/2)
			continue
		}
		wait = 100 * time.Millisecond
		info, _ := json.Marshal(map[string]string{"id": n.id, "address": n.addr})
		pctx, cancel := context.WithTimeout(n.ctx, n.call)
		_, err = n.cli.Put(pctx, n.keys.node(n.id), string(info), clientv3.WithLease(s.Lease()))
		cancel()
		if err != nil {
			_ = s.Close()
			continue
		}
		nl := &nodeLease{Session: s, clock: newLeaseClock(asked, n.ttl), ended: make(chan struct{})}
		kctx, kcancel := context.WithCancel(n.ctx)
		n.bg.Go(func() { nl.clock.keep(kctx, n.cli, s, n.ttl, n.call) })
		n.sess.Store(nl)
		n.ready.Store(true)
		n.kickReconciler()
		// The bound passing is the end of this lease for this node, whether
		// or not the etcd client has noticed (it checks once a second). So
		// are links down for half the lease: the node gives its topics up.
		why := ErrLeaseLost
		var down time.Time // since when a link is down; zero: all up
		linkCheck := time.NewTicker(n.ttl / 10)
		for ended := false; !ended; {
			select {
			case <-s.Done():
				ended = true
			case <-n.ctx.Done():
				ended = true
			case <-time.After(max(nl.clock.left(), 10*time.Millisecond)):
				ended = nl.clock.left() <= 0
			case <-linkCheck.C:
				switch {
				case n.o.Online == nil || n.o.Online():
					down = time.Time{}
				case down.IsZero():
					down = time.Now()
				case time.Since(down) >= n.ttl/2:
					why, ended = ErrLinkLost, true
				}
			}
		}
		linkCheck.Stop()
		close(nl.ended)
		kcancel()
		if n.ctx.Err() == nil {
			if why == ErrLinkLost {
				n.say(fmt.Sprintf("cluster: node %s: XMPP link down for %v: it gives its topics up and stops", n.id, n.ttl/2), slog.String("node", n.id))
			} else {
				n.say(fmt.Sprintf("cluster: node %s lost its etcd lease: its topics stopped; the node stops", n.id), slog.String("node", n.id))
			}
			n.why = why
			n.kickReconciler() // stops every owner: no live lease
			if why == ErrLinkLost {
				// Revoked before the node reports its end: its topics move
				// now, not when the lease would expire.
				n.revoke(s)
			} else {
				// Revoke it, should it still live in etcd (the bound passed
				// first): nothing of the old lease lingers. Not waited for:
				// etcd may be away.
				n.bg.Go(func() { n.revoke(s) })
			}
			close(n.lost)
		}
		return
	}
}

// watchRegistry keeps n.view: the registered nodes, read, then followed by
// a watch, read again whenever the watch fails and every lease TTL.
func (n *Node) watchRegistry() {
	for n.ctx.Err() == nil {
		gctx, cancel := context.WithTimeout(n.ctx, n.call)
		resp, err := n.cli.Get(gctx, n.keys.nodes(), clientv3.WithPrefix())
		cancel()
		if err != nil {
			sleep(n.ctx, n.call/4)
			continue
		}
		leases := map[string]clientv3.LeaseID{}
		for _, kv := range resp.Kvs {
			leases[strings.TrimPrefix(string(kv.Key), n.keys.nodes())] = clientv3.LeaseID(kv.Lease)
		}
		n.setView(leases)
		wctx, wcancel := context.WithTimeout(n.ctx, n.ttl)
		wch := n.cli.Watch(clientv3.WithRequireLeader(wctx), n.keys.nodes(), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				id := strings.TrimPrefix(string(ev.Kv.Key), n.keys.nodes())
				if ev.Type == clientv3.EventTypeDelete {
					delete(leases, id)
				} else {
					leases[id] = clientv3.LeaseID(ev.Kv.Lease)
				}
			}
			n.setView(leases)
		}
		wcancel()
	}
}

// setView publishes the registry (a copy of leases), and kicks the
// reconciler when it changed.
func (n *Node) setView(leases map[string]clientv3.LeaseID) {
	v := &registry{leases: make(map[string]clientv3.LeaseID, len(leases))}
	for id, l := range leases {
		v.leases[id] = l
		v.ids = append(v.ids, id)
	}
	slices.Sort(v.ids)
	old := n.view.Swap(v)
	n.m.members.Set(float64(len(v.ids)))
	if old == nil || !maps2Equal(old.leases, v.leases) {
		n.log.Debug("cluster: members", slog.Any("members", v.ids))
		n.kickReconciler()
	}
}

func maps2Equal(a, b map[string]clientv3.LeaseID) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (n *Node) kickReconciler() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// session waits for a live lease.
func (n *Node) session(ctx context.Context) (*nodeLease, bool) {
	for {
		if s := n.sess.Load(); s != nil && s.live() {
			return s, true
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return nil, false
		}
	}
}

// reconcile runs the topics placed on this node and stops the others, on
// every registry change, every lease change, and every TTL/2.
func (n *Node) reconcile() {
	t := time.NewTicker(n.ttl / 2)
	defer t.Stop()
	var placed *registry // the view the backups were prepared for
	for {
		v := n.apply()
		if v != nil && v != placed && n.warming.CompareAndSwap(false, true) {
			placed = v
			go func() {
				defer n.warming.Store(false)
				n.warmBackups(v)
			}()
		}
		select {
		case <-n.ctx.Done():
			for id, a := range n.running {
				a.cancel()
				delete(n.running, id)
			}
			return
		case <-t.C:
		case <-n.kick:
		}
	}
}

// mine is what this node runs under the registry v: the identities assign
// places on it, if v lists it under its live lease; else none.
func (n *Node) mine(v *registry) map[string]bool {
	s := n.sess.Load()
	if v == nil || s == nil || !s.live() || v.leases[n.id] != s.Lease() {
		return nil
	}
	out := map[string]bool{}
	for id, m := range assign(v.ids, n.idents) {
		if m == n.id {
			out[id] = true
		}
	}
	return out
}

// apply starts and stops owners to match the current placement, and answers
// the registry it placed by.
func (n *Node) apply() *registry {
	v := n.view.Load()
	want := n.mine(v)
	for id, a := range n.running {
		select {
		case <-a.done:
			delete(n.running, id) // returned (stopped earlier): start anew if wanted
			continue
		default:
		}
		if !want[id] {
			a.cancel() // the owner stops its worker and releases the lock
		}
	}
	for i, id := range n.idents {
		if !want[id] {
			continue
		}
		if _, ok := n.running[id]; ok || !n.track() {
			// Running, or still stopping: one owner per topic at a time on
			// a node (its end kicks the reconciler).
			continue
		}
		octx, cancel := context.WithCancel(n.ctx)
		a := &activation{cancel: cancel, done: make(chan struct{})}
		n.running[id] = a
		go func() {
			defer n.kickReconciler()
			defer close(a.done)
			n.own(octx, n.topics[i])
		}()
	}
	return v
}

// warmBackups prepares, once each, the topics this node would take over if
// one other member died (where assign places them without that member): joins
// their rooms and checks their archives ahead of time, so that a takeover
// starts with the read after the cursor (issue 13: joining and checking ~100
// rooms after the locks came took most of a failover).
func (n *Node) warmBackups(v *registry) {
	var todo []serve.Topic
	for _, t := range backups(v.ids, n.id, n.topics) {
		if _, done := n.warmed.Load(identity(t)); !done {
			todo = append(todo, t)
		}
	}
	n.m.unwarmed.Set(float64(len(todo)))
	var g errgroup.Group
	g.SetLimit(warmParallel)
	for _, t := range todo {
		if n.ctx.Err() != nil {
			break
		}
		ident := identity(t)
		n.warmed.Store(ident, struct{}{})
		g.Go(func() error {
			n.warm(n.ctx, t, ident)
			n.m.unwarmed.Dec()
			return nil
		})
	}
	_ = g.Wait()
}

// backups are the topics that assign over members places elsewhere than on
// self and over members without one of the others on self: those self takes
// over if that member dies.
func backups(members []string, self string, topics []serve.Topic) []serve.Topic {
	if len(members) < 2 || !slices.Contains(members, self) {
		return nil
	}
	idents := make([]string, len(topics))
	for i, t := range topics {
		idents[i] = identity(t)
	}
	now := assign(members, idents)
	take := map[string]bool{}
	for _, m := range members {
		if m == self {
			continue
		}
		for id, owner := range assign(without(members, m), idents) {
			if owner == self && now[id] != self {
				take[id] = true
			}
		}
	}
	var out []serve.Topic
	for i, t := range topics {
		if take[idents[i]] {
			out = append(out, t)
		}
	}
	return out
}

// How many backup topics a node prepares at once.
const warmParallel = 16

// track counts an owner in, unless the node is stopping.
func (n *Node) track() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.owners.Add(1)
	return true
}

// own runs one (route, topic) while placement gives it to this node: take the
// lock, run the worker with the cursor in etcd, release; again with the next
// lease if the lease was lost, until the reconciler stops it (ctx).
func (n *Node) own(ctx context.Context, t serve.Topic) {
	defer n.owners.Done()
	ident := identity(t)
	log := n.log.With(slog.String("route", t.Route), slog.String("topic", t.Topic))
	for ctx.Err() == nil {
		sess, ok := n.session(ctx)
		if !ok {
			return
		}
		// Held by another node (a takeover from a dead or paused node, which
		// lasts until its lease ends; or a move): prepare the topic meanwhile,
		// so that it delivers soon after the lock comes (issue 13: the first
		// reads of ~100 topics taken over at once took seconds more).
		warm := sync.OnceFunc(func() { go n.warm(ctx, t, ident) })
		l, err := acquire(ctx, n.cli, sess.Session, n.keys.lock(ident), n.id, n.call, warm)
		if err != nil {
			continue
		}
		saved, prev, err := n.loadCursor(ctx, ident)
		if err != nil {
			l.release()
			if ctx.Err() == nil {
				log.Error("cluster: reading the cursor failed", slog.Any("err", err))
				sleep(ctx, n.call)
			}
			continue
		}
		n.m.owned.Inc()
		if prev != "" && prev != n.id {
			n.m.handovers.Inc()
			n.say(fmt.Sprintf("route %s: %s: taken over from node %s", t.Route, t.Topic, prev),
				slog.String("route", t.Route), slog.String("topic", t.Topic), slog.String("from", prev))
		}
		wctx, wcancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.ended:
				wcancel()
			case <-wctx.Done():
			}
		}()
		store := &etcdStore{l: l, cursorKey: n.keys.cursor(ident), t: t, refused: n.m.refused.Inc, clock: sess.clock}
		// The relay's posts are written only while the lease surely lives
		// (issue 13: a node paused with a post queued wrote it when resumed,
		// after the new owner had looked for it and posted it).
		err = n.o.Engine.RunTopic(runtime.WithPostFence(wctx, sess.clock.fence(postMargin(n.ttl), n.m.fenced.Inc)), t, saved, store)
		leaseEnded := false
		select {
		case <-sess.ended:
			leaseEnded = true
		default:
		}
		// Lost: fenced, or the lease ended under it (whether or not the
		// reconciler, seeing the same, stopped it too).
		lost := errors.Is(err, serve.ErrFenced) || leaseEnded || (ctx.Err() == nil && wctx.Err() != nil)
		wcancel()
		l.release()
		n.m.owned.Dec()
		if lost {
			n.m.lockLosses.Inc()
			n.say(fmt.Sprintf("route %s: %s: lock lost; deliveries stopped", t.Route, t.Topic),
				slog.String("route", t.Route), slog.String("topic", t.Topic))
		} else if errors.Is(err, serve.ErrStopped) {
			// on_exhausted: stop. Taking the lock again would only refuse
			// the same message again: the topic waits here for an operator
			// (a restart of this node, after fixing the sink).
			n.say(fmt.Sprintf("route %s: %s: stopped on a message its sink refused; restart the node once the sink is fixed", t.Route, t.Topic),
				slog.String("route", t.Route), slog.String("topic", t.Topic))
			<-ctx.Done()
			return
		} else if err != nil && ctx.Err() == nil {
			log.Error("cluster: the worker stopped", slog.Any("err", err))
			sleep(ctx, n.call)
		}
	}
}

// warm prepares a topic this node waits to take over (serve.Engine.Warm)
// from its cursor as etcd has it now: joins its room, checks its archive and
// the cursor, within a lease TTL or two.
func (n *Node) warm(ctx context.Context, t serve.Topic, ident string) {
	ctx, cancel := context.WithTimeout(ctx, 2*n.ttl)
	defer cancel()
	saved, _, err := n.loadCursor(ctx, ident)
	if err == nil {
		err = n.o.Engine.Warm(ctx, t, saved)
	}
	if err != nil && ctx.Err() == nil {
		n.log.Debug("cluster: preparing a topic to take over failed (its worker reads it anyway)", slog.String("identity", ident), slog.Any("err", err))
	}
}

// loadCursor reads a topic's cursor (nil: none yet) and the node that wrote it.
func (n *Node) loadCursor(ctx context.Context, ident string) (*serve.State, string, error) {
	cctx, cancel := context.WithTimeout(ctx, n.call)
	defer cancel()
	key := n.keys.cursor(ident)
	resp, err := n.cli.Get(cctx, key)
	if err != nil {
		return nil, "", err
	}
	if len(resp.Kvs) == 0 {
		return nil, "", nil
	}
	c, err := decodeCursor(key, resp.Kvs[0].Value)
	if err != nil {
		return nil, "", err
	}
	return &c.State, c.Node, nil
}

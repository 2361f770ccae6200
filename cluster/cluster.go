// Package cluster runs serve's routes on several processes (nodes) at once:
// each (route, topic) is a virtual actor of protoactor-go's cluster, placed by
// rendezvous hashing over the members that etcd lists, and fenced by a lock in
// etcd, so that a topic is delivered by one node at a time and moves to the
// survivors when its node dies.
//
// Placement: every node runs a reconciler that touches every configured
// (route, topic) at start, on every membership change and every lease TTL / 2,
// so each is activated on the member that rendezvous hashing picks without
// waiting for traffic. A membership change stops, on each node, the
// activations that hashing now places elsewhere.
//
// Fencing: placement alone can run two copies at once (a requester with a
// stale member list activates an identity on the wrong node), so an activation
// delivers nothing before it holds the (route, topic)'s lock: a key in etcd
// created by the node's lease (one lease per node, TTL lease_ttl). The key's
// create revision is the fencing token. Before each delivery the worker checks
// in etcd that the key still has that revision, and after each delivery it
// writes its cursor in a transaction that makes the same comparison; a refused
// check or write stops the worker at once. A node that stops answering
// (killed, paused, cut from etcd) loses its lease after lease_ttl: its keys are
// deleted, another node takes them, and anything the old node still attempts
// is refused.
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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pacluster "github.com/asynkron/protoactor-go/cluster"
	etcdprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/serve"
)

// kind is the cluster kind of every (route, topic).
const kind = "parley-route-topic"

var errSessionLost = errors.New("the node's etcd lease ended")

// Options configure Start.
type Options struct {
	Config   *config.Cluster
	Client   *clientv3.Client // from Dial; the caller closes it after Stop
	Engine   *serve.Engine    // the routes, bound to their servers; the caller closes it after Stop
	Logger   *slog.Logger     // nil → discard
	Registry prometheus.Registerer
	Progress func(line string) // nil → Info records with attributes (route, topic, node)
}

// Node is this process's member of the cluster.
type Node struct {
	o      Options
	id     string
	keys   keys
	cli    *clientv3.Client
	system *actor.ActorSystem
	cl     *pacluster.Cluster
	ttl    time.Duration
	call   time.Duration
	log    *slog.Logger
	m      *nodeMetrics

	sess atomic.Pointer[nodeLease]

	ctx     context.Context // ends at Stop: every owner's parent
	cancel  context.CancelFunc
	mu      sync.Mutex
	closed  bool
	owners  sync.WaitGroup
	bg      sync.WaitGroup
	kick    chan struct{}
	round   atomic.Int64                         // bumped by every kick
	placer  atomic.Pointer[pacluster.Rendezvous] // the latest topology's hashing; nil before the first
	members atomic.Pointer[pacluster.Members]    // the latest topology's members
	warmed  sync.Map                             // identity → struct{}: prepared as this node's backup
	touches sync.WaitGroup                       // the reconciler's requests in flight
	warming atomic.Bool                          // warmBackups is running
	ready   atomic.Bool
	// dropped: this node was in its own member list and no longer is
	// (protoactor's etcd provider, upstream #1133: see noteSelf).
	dropped atomic.Bool
	listed  atomic.Bool // it was in its own member list once
}

// nodeLease is the node's current etcd lease and its local validity.
type nodeLease struct {
	*concurrency.Session
	clock *leaseClock
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

// Start joins the cluster: it starts this node's member and its reconciler.
func Start(ctx context.Context, o Options) (*Node, error) {
	c := o.Config
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cli := o.Client
	ttl := c.TTL()
	n := &Node{o: o, keys: keysOf(c.Name), cli: cli, ttl: ttl, call: min(ttl/2, 5*time.Second), log: o.Logger,
		m: newNodeMetrics(o.Registry), kick: make(chan struct{}, 1)}

	host, portStr, err := net.SplitHostPort(c.ListenAddr())
	if err != nil {
		return nil, fmt.Errorf("%w: serve.cluster.listen: %v", config.ErrConfig, err)
	}
	port, _ := strconv.Atoi(portStr)
	if port == 0 {
		// protoactor advertises the configured port: pick a free one first.
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("serve.cluster.listen: %w", err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
	}
	ropts, err := remoteTLS(c)
	if err != nil {
		return nil, err
	}
	if c.Advertise != "" {
		ropts = append(ropts, remote.WithAdvertisedHost(net.JoinHostPort(c.Advertise, strconv.Itoa(port))))
	}
	n.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return actorLogger(o.Logger) }))
	n.id = n.system.ID
	provider, err := etcdprovider.NewWithConfig(n.keys.members(), mustEtcdConfig(c))
	if err != nil {
		return nil, fmt.Errorf("%w: serve.cluster.etcd: %v", config.ErrConfig, err)
	}
	props := actor.PropsFromProducer(func() actor.Actor { return &grain{n: n} })
	cfg := pacluster.Configure(c.Name, provider, disthash.New(), remote.Configure(host, port, ropts...),
		pacluster.WithKinds(pacluster.NewKind(kind, props)), pacluster.WithRequestTimeout(n.call))
	n.cl = pacluster.New(n.system, cfg)
	n.ctx, n.cancel = context.WithCancel(context.Background())

	// Before StartMember: it publishes the first topology (the members etcd
	// lists as it joins), which placedHere needs.
	// The members gauge is set here too: the topologies StartMember publishes
	// (every member already registered) come before any later subscriber, and
	// a gauge set only from a later one stayed at 0 with three live nodes
	// until the next membership change (issue 13).
	n.system.EventStream.Subscribe(func(evt any) {
		if t, ok := evt.(*pacluster.ClusterTopology); ok {
			rdv := pacluster.NewRendezvous()
			rdv.UpdateMembers(t.Members)
			n.placer.Store(rdv)
			ms := pacluster.Members(t.Members)
			n.members.Store(&ms)
			n.m.members.Set(float64(len(t.Members)))
			ids := make([]string, 0, len(t.Members))
			self := false
			for _, m := range t.Members {
				ids = append(ids, m.Id)
				self = self || m.Address() == n.system.Address()
			}
			n.noteSelf(self)
			n.log.Debug("cluster: topology", slog.Any("members", ids), slog.Int("joined", len(t.Joined)), slog.Int("left", len(t.Left)), slog.Any("blocked", t.Blocked))
		}
	})
	n.cl.StartMember() // before keepSession: it gives the actor system its address, which keepSession records
	n.bg.Go(n.keepSession)
	// After StartMember: subscribers run in order, and disthash's (which
	// StartMember adds) must place by the new topology before a round starts.
	n.system.EventStream.Subscribe(func(evt any) {
		if _, ok := evt.(*pacluster.ClusterTopology); ok {
			n.kickReconciler()
		}
	})
	n.bg.Go(n.reconcile)
	n.say(fmt.Sprintf("cluster %s: node %s joined at %s", c.Name, n.id, n.system.Address()),
		slog.String("cluster", c.Name), slog.String("node", n.id), slog.String("address", n.system.Address()))
	return n, nil
}

// mustEtcdConfig is etcdConfig once NewEtcdClient accepted it.
func mustEtcdConfig(c *config.Cluster) clientv3.Config {
	cfg, _ := etcdConfig(c)
	return cfg
}

// ID is this node's member id.
func (n *Node) ID() string { return n.id }

// Ready says whether the node holds a live etcd lease, has joined, and is
// still in its own member list.
func (n *Node) Ready() bool {
	s := n.sess.Load()
	if s == nil || !n.ready.Load() || n.dropped.Load() {
		return false
	}
	select {
	case <-s.Done():
		return false
	default:
		return true
	}
}

// Stop stops every worker of this node, releases their locks and leaves the
// cluster.
func (n *Node) Stop() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	n.owners.Wait()
	n.bg.Wait()
	n.touches.Wait()
	if s := n.sess.Load(); s != nil {
		_ = s.Close() // revokes the lease (bounded by the TTL): nothing of ours lingers
	}
	// protoactor's shutdown deregisters from etcd without a deadline: with etcd
	// away it would never return. The lease ends our membership anyway.
	done := make(chan struct{})
	go func() {
		n.cl.Shutdown(true)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownWait):
		n.log.Warn("cluster: leaving the cluster did not finish in time (is etcd reachable?); stopping anyway: the node's lease ends its membership")
	}
}

// shutdownWait bounds leaving the cluster at Stop.
const shutdownWait = 10 * time.Second

// say reports progress: to Options.Progress as a line, or as an Info record
// with attrs.
func (n *Node) say(line string, attrs ...slog.Attr) {
	if n.o.Progress != nil {
		n.o.Progress(line)
		return
	}
	n.log.LogAttrs(context.Background(), slog.LevelInfo, line, attrs...)
}

// keepSession keeps this node's lease: a new one whenever the last ended.
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
		info, _ := json.Marshal(map[string]string{"id": n.id, "address": n.system.Address()})
		pctx, cancel := context.WithTimeout(n.ctx, n.call)
		_, err = n.cli.Put(pctx, n.keys.node(n.id), string(info), clientv3.WithLease(s.Lease()))
		cancel()
		if err != nil {
			_ = s.Close()
			continue
		}
		nl := &nodeLease{Session: s, clock: newLeaseClock(asked, n.ttl)}
		kctx, kcancel := context.WithCancel(n.ctx)
		n.bg.Go(func() { nl.clock.keep(kctx, n.cli, s, n.ttl, n.call) })
		n.sess.Store(nl)
		n.ready.Store(true)
		n.kickReconciler()
		select {
		case <-s.Done():
			if n.ctx.Err() == nil {
				n.say(fmt.Sprintf("cluster: node %s lost its etcd lease: its topics stop until it gets a new one", n.id), slog.String("node", n.id))
			}
		case <-n.ctx.Done():
		}
		kcancel()
	}
}

// noteSelf records whether the latest topology lists this node. protoactor's
// etcd provider registers each member under a key with a fixed 3 s lease
// (whatever lease_ttl says); a node that stalls past it (paused, starved of
// CPU, etcd slow) sees its own key deleted and removes itself from its member
// list, and the other members block it: neither takes it back when it
// registers again (upstream #1133; seen in issue 13 as a members gauge of 1
// after a kill). Such a node holds and delivers nothing (every activation is
// placed elsewhere) until it is restarted: it says so, and is not ready.
func (n *Node) noteSelf(listed bool) {
	if listed {
		n.listed.Store(true)
		return
	}
	if n.listed.Load() && n.ctx.Err() == nil && !n.dropped.Swap(true) {
		n.log.Error(fmt.Sprintf("cluster: node %s was dropped from the cluster's member list (its membership key in etcd expired: "+
			"a pause or stall of the process or of etcd); it takes no topics until it is restarted: restart it", n.id))
	}
}

func (n *Node) kickReconciler() {
	n.round.Add(1) // a round in progress stops touching: the next one starts at once
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// session waits for a live lease.
func (n *Node) session(ctx context.Context) (*nodeLease, bool) {
	for {
		if s := n.sess.Load(); s != nil {
			select {
			case <-s.Done():
			default:
				return s, true
			}
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return nil, false
		}
	}
}

// reconcile touches every (route, topic) at start, on membership changes and
// every TTL/2, so each is activated where hashing places it.
func (n *Node) reconcile() {
	t := time.NewTicker(n.ttl / 2)
	defer t.Stop()
	for {
		n.touchAll()
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
		}
	}
}

func (n *Node) touchAll() {
	round := n.round.Load()
	stale := func() bool { return n.ctx.Err() != nil || n.round.Load() != round }
	// The slots are this round's: a request to a member that just died can
	// take protoactor's own 5 s activation timeout (whatever WithTimeout
	// says), and the round that follows the membership change must not wait
	// for those (issue 13: takeovers started 5 s late). Stragglers of a stale
	// round finish on their own (n.touches).
	slots := make(chan struct{}, touchParallel)
	var wg sync.WaitGroup
	for _, t := range n.o.Engine.Topics() {
		if stale() {
			break // stopping, or the members changed: a fresh round follows
		}
		got := false
		select {
		case slots <- struct{}{}:
			got = true
		case <-n.kick:
			n.kickReconciler() // for the loop: a fresh round follows at once
		}
		if !got || stale() {
			if got {
				<-slots
			}
			break
		}
		id := identity(t)
		wg.Add(1)
		n.touches.Add(1)
		go func() {
			defer func() { <-slots; wg.Done(); n.touches.Done() }()
			// Short and without retries: an identity placed on a member that
			// just died times out, and must not hold up the others (the next
			// round, on the membership change, places it anew).
			_, err := n.cl.Request(id, kind, wrapperspb.String("touch"), pacluster.WithTimeout(touchTimeout), pacluster.WithRetryCount(1))
			if err != nil && n.ctx.Err() == nil {
				n.log.Debug("cluster: touching an identity failed; the next round retries", slog.String("identity", id), slog.Any("err", err))
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(50 * time.Millisecond):
			if stale() {
				return // the fresh round starts now; this one's stragglers end on their own
			}
		}
	}
	if n.warming.CompareAndSwap(false, true) { // never holds up the next round
		go func() {
			defer n.warming.Store(false)
			n.warmBackups()
		}()
	}
}

// warmBackups prepares, once each, the topics this node would take over if
// their owner died (where hashing places them without the owner): joins
// their rooms and checks their archives ahead of time, so that a takeover
// starts with the read after the cursor (issue 13: joining and checking ~100
// rooms after the locks came took most of a failover). A member's death
// makes this node the owner of exactly these topics.
func (n *Node) warmBackups() {
	rdv, ms := n.placer.Load(), n.members.Load()
	if rdv == nil || ms == nil {
		return
	}
	var todo []serve.Topic
	for _, t := range backups(rdv, *ms, n.system.Address(), n.o.Engine.Topics()) {
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

// backups are the topics that rdv (the hashing over members) places on
// another member and that the hashing over the members without that one
// places on self: those self takes over if their owner dies.
func backups(rdv *pacluster.Rendezvous, members pacluster.Members, self string, topics []serve.Topic) []serve.Topic {
	if len(members) < 2 {
		return nil
	}
	without := map[string]*pacluster.Rendezvous{} // by owner: hashing without it
	var out []serve.Topic
	for _, t := range topics {
		ci := pacluster.NewClusterIdentity(identity(t), kind)
		owner := rdv.GetByClusterIdentity(ci)
		if owner == "" || owner == self {
			continue
		}
		next, ok := without[owner]
		if !ok {
			rest := pacluster.Members{}
			for _, m := range members {
				if m.Address() != owner {
					rest = append(rest, m)
				}
			}
			next = pacluster.NewRendezvous()
			next.UpdateMembers(rest)
			without[owner] = next
		}
		if next.GetByClusterIdentity(ci) == self {
			out = append(out, t)
		}
	}
	return out
}

// The reconciler's touches: how many at once, and how long each may take;
// and how many backup topics it prepares at once.
const (
	touchParallel = 64
	touchTimeout  = time.Second
	warmParallel  = 16
)

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

// own runs one (route, topic) while this node hosts its activation: take the
// lock, run the worker with the cursor in etcd, release; again if the lease
// was lost, until the activation stops (ctx).
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
			case <-sess.Done():
				wcancel()
			case <-wctx.Done():
			}
		}()
		store := &etcdStore{l: l, cursorKey: n.keys.cursor(ident), t: t, refused: n.m.refused.Inc, clock: sess.clock}
		// The relay's posts are written only while the lease surely lives
		// (issue 13: a node paused with a post queued wrote it when resumed,
		// after the new owner had looked for it and posted it).
		err = n.o.Engine.RunTopic(runtime.WithPostFence(wctx, sess.clock.fence(postMargin(n.ttl), n.m.fenced.Inc)), t, saved, store)
		lost := errors.Is(err, serve.ErrFenced) || (ctx.Err() == nil && wctx.Err() != nil)
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

// placedHere says whether this node's latest topology places the identity on
// this node (true before the first topology: nothing to judge by).
//
// disthash's placement actor activates whatever it is asked for, and stops
// activations that moved only when its own topology changes. A member with a
// stale topology (it has not yet seen a node join) asks the old owner, which
// then activates the identity anew after it stopped it for the move, and keeps
// that activation: it holds the lock for good, and the identity's rightful
// activation on the joined node waits for the lock for ever (issue 13:
// TestNodeJoinRebalances). So a grain checks its placement itself.
func (n *Node) placedHere(ident string) bool {
	rdv := n.placer.Load()
	if rdv == nil {
		return true
	}
	owner := rdv.GetByClusterIdentity(pacluster.NewClusterIdentity(ident, kind))
	return owner == "" || owner == n.system.Address()
}

// grain is the activation of one (route, topic) on this node.
type grain struct {
	n      *Node
	ident  string
	cancel context.CancelFunc
	check  *time.Timer // sends placementCheck
}

// placementCheck: a grain looks whether its node still places it here.
type placementCheck struct{}

func (g *grain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *pacluster.ClusterInit:
		t, err := parseIdentity(msg.Identity.Identity)
		if err != nil {
			g.n.log.Error("cluster: bad identity", slog.Any("err", err))
			return
		}
		g.ident = msg.Identity.Identity
		if !g.n.placedHere(g.ident) {
			// Asked by a member with a stale topology: stop at once, take
			// no lock; the requester's next round asks the right member.
			g.n.log.Debug("cluster: activation placed elsewhere; stopping it", slog.String("identity", g.ident))
			ctx.Poison(ctx.Self())
			return
		}
		if !g.n.track() {
			return
		}
		octx, cancel := context.WithCancel(g.n.ctx)
		g.cancel = cancel
		go g.n.own(octx, t)
		// A stray nobody touches must still stop: check again now and then.
		// A timer of its own: protoactor's receive timeout races with the
		// mailbox (the race detector failed TestGrainStrayStopsWhenIdle on it).
		self, root := ctx.Self(), ctx.ActorSystem().Root
		g.check = time.AfterFunc(g.n.ttl/2, func() { root.Send(self, placementCheck{}) })
	case placementCheck:
		g.check.Reset(g.n.ttl / 2)
		g.stopIfElsewhere(ctx)
	case *wrapperspb.StringValue:
		ctx.Respond(wrapperspb.String(g.n.id))
		g.stopIfElsewhere(ctx)
	case *actor.Stopping:
		if g.check != nil {
			g.check.Stop()
		}
		if g.cancel != nil {
			g.cancel() // the owner stops its worker and releases the lock
		}
	}
}

// stopIfElsewhere stops a stray: an activation that this node's topology
// places elsewhere (disthash stops it only at the next topology change).
func (g *grain) stopIfElsewhere(ctx actor.Context) {
	if g.ident != "" && !g.n.placedHere(g.ident) {
		g.n.log.Debug("cluster: activation placed elsewhere; stopping it", slog.String("identity", g.ident))
		ctx.Poison(ctx.Self())
	}
}

package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/parley-go/parley-xmpp/cluster"
)

// Issue 20 item 2 bounds how long a topic stays unowned after a failure of
// its owner. Measured per topic from its deliveries alone, a stall that spans
// failures of successive owners (the owner paused past its lease, then the
// node taking over cut off as it takes over) sums them. The soak measures
// each failure on its own: it follows, from etcd's own history, who held each
// topic's lock and which node placement gave the topic to (the registry as
// the nodes see it, and the nodes' own placement), knows when it struck which
// node, and splits a topic's stall at each failure of a node that held the
// topic or was given it. Each part must stay within the bound, the part
// before the first failure included, so a stall no failure explains is still
// caught whole.

// holding is a node's hold of a topic: of its lock, from its creation to its
// deletion, or placement's giving it the topic, from the registry change that
// did to the one that undid it (zero: still held at the end).
type holding struct {
	pid      int
	from, to time.Time
}

// failure is a fault struck on a node (by pid): at its onset, until the node
// came back (a short pause's SIGCONT; zero: the node ended).
type failure struct {
	pid       int
	at, until time.Time
	kind      string
}

// failuresWithin are the times in (from, to) at which a topic's owner failed:
// a fault on a node holding it, from the later of the fault's onset and the
// start of the hold (a node that is given a topic, or takes it over, while cut
// off fails it then), in time order.
func failuresWithin(from, to time.Time, held []holding, fails []failure) []time.Time {
	var out []time.Time
	for _, h := range held {
		for _, f := range fails {
			if f.pid != h.pid || (!h.to.IsZero() && !f.at.Before(h.to)) || (!f.until.IsZero() && !f.until.After(h.from)) {
				continue // another node, or the fault was not during this hold
			}
			at := f.at
			if h.from.After(at) {
				at = h.from
			}
			if at.After(from) && at.Before(to) {
				out = append(out, at)
			}
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return slices.Compact(out)
}

// longestPart is the longest part of the stall (from, to) once split at each
// failure of the topic's owner within it.
func longestPart(from, to time.Time, held []holding, fails []failure) time.Duration {
	worst, prev := time.Duration(0), from
	for _, at := range append(failuresWithin(from, to, held, fails), to) {
		worst = max(worst, at.Sub(prev))
		prev = at
	}
	return worst
}

// lockHistory follows the cluster's keys in etcd from the start: which node
// (by pid, from its registry entry) held which topic's lock, and which node
// placement gave it, and when (as the test saw the event: within
// milliseconds on loopback).
type lockHistory struct {
	mu      sync.Mutex
	topics  []string             // the out route's
	idents  []string             // every (route, topic) identity, as the nodes place them
	pids    map[string]int       // node id → pid
	members map[string]bool      // the registry now
	held    map[string][]holding // topic → its holds (locks and placement), in order
	lock    map[string]int       // topic → index of its lock hold in progress
	given   map[string]int       // topic → index of its placement hold in progress
	odd     []string             // lock owners no registry entry named
	stop    context.CancelFunc
	done    chan struct{}
}

// watchLocks starts following the fixture's cluster in etcd; holds ends it.
func (f *fixture) watchLocks() *lockHistory {
	cli := f.etcdClient()
	prefix := "/parley-xmpp/" + f.name + "/"
	ctx, cancel := context.WithCancel(context.Background())
	h := &lockHistory{topics: f.topics, pids: map[string]int{}, members: map[string]bool{}, held: map[string][]holding{},
		lock: map[string]int{}, given: map[string]int{}, stop: cancel, done: make(chan struct{})}
	for _, tp := range f.topics {
		h.idents = append(h.idents, cluster.Identity("out", tp))
	}
	h.idents = append(h.idents, cluster.Identity("copy", f.topics[0]))
	f.t.Cleanup(func() { cancel(); <-h.done })
	wch := cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(1))
	go func() {
		defer close(h.done)
		for wr := range wch {
			now := time.Now()
			h.mu.Lock()
			for _, ev := range wr.Events {
				h.apply(prefix, ev, now)
			}
			h.mu.Unlock()
		}
	}()
	return h
}

func (h *lockHistory) apply(prefix string, ev *clientv3.Event, now time.Time) {
	key := strings.TrimPrefix(string(ev.Kv.Key), prefix)
	switch {
	case strings.HasPrefix(key, "nodes/"):
		id := strings.TrimPrefix(key, "nodes/")
		if ev.Type == clientv3.EventTypePut {
			var info struct{ Address string }
			if json.Unmarshal(ev.Kv.Value, &info) == nil {
				_, pid, _ := strings.Cut(info.Address, "/")
				h.pids[id], _ = strconv.Atoi(pid)
			}
			h.members[id] = true
		} else {
			delete(h.members, id)
		}
		h.place(now)
	case strings.HasPrefix(key, "locks/out/"):
		topic := strings.TrimPrefix(key, "locks/out/")
		if ev.Type == clientv3.EventTypePut {
			if _, ok := h.lock[topic]; ok {
				return // a rewrite of a held lock
			}
			pid, ok := h.pids[string(ev.Kv.Value)]
			if !ok {
				h.odd = append(h.odd, string(ev.Kv.Value))
			}
			h.lock[topic] = h.open(topic, pid, now)
			return
		}
		if i, ok := h.lock[topic]; ok {
			h.held[topic][i].to = now
			delete(h.lock, topic)
		}
	}
}

// place follows placement over the registry as it is now.
func (h *lockHistory) place(now time.Time) {
	placed := cluster.Assign(slices.Sorted(maps.Keys(h.members)), h.idents)
	for _, tp := range h.topics {
		pid := h.pids[placed[cluster.Identity("out", tp)]]
		if i, ok := h.given[tp]; ok {
			if h.held[tp][i].pid == pid {
				continue
			}
			h.held[tp][i].to = now
			delete(h.given, tp)
		}
		if pid != 0 {
			h.given[tp] = h.open(tp, pid, now)
		}
	}
}

func (h *lockHistory) open(topic string, pid int, now time.Time) int {
	h.held[topic] = append(h.held[topic], holding{pid: pid, from: now})
	return len(h.held[topic]) - 1
}

// holds ends the watch and gives the holds by topic.
func (h *lockHistory) holds(t *testing.T) map[string][]holding {
	h.stop()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Empty(t, h.odd, "locks held by nodes that never registered")
	return maps.Clone(h.held)
}

// longestStallPerFailure is longestStall split at each failure of a topic's
// owner: the longest part, and where it was.
func (f *fixture) longestStallPerFailure(held map[string][]holding, fails []failure) (time.Duration, string) {
	f.mu.Lock()
	sent := maps.Clone(f.sent)
	f.mu.Unlock()
	var worst time.Duration
	which := ""
	for tp, rs := range f.delivered() {
		rs = slices.DeleteFunc(rs, func(r record) bool { return r.When.IsZero() })
		slices.SortFunc(rs, func(a, b record) int { return a.When.Compare(b.When) })
		for i := 1; i < len(rs); i++ {
			from := rs[i-1].When
			if at, ok := sent[rs[i].ID]; ok && at.After(from) {
				from = at
			}
			if d := longestPart(from, rs[i].When, held[tp], fails); d > worst {
				worst, which = d, fmt.Sprintf("%s before %s on %s", tp, rs[i].ID, rs[i].Node)
			}
		}
	}
	return worst, which
}

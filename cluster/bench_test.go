package cluster_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/seam"
)

// arrivals is a webhook sink that records when each message first arrived
// from a node other than the one named in skip.
type arrivals struct {
	mu   sync.Mutex
	seen map[string]time.Time // message id → first arrival
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var m struct{ ID string }
	_ = json.Unmarshal(body, &m)
	a.mu.Lock()
	if _, ok := a.seen[m.ID]; !ok {
		a.seen[m.ID] = time.Now()
	}
	a.mu.Unlock()
}

func (a *arrivals) at(id string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.seen[id]
	return t, ok
}

// TestFailoverBench measures failover: from a kill -9 until every topic the
// dead node delivered has delivered again on the survivors (a message posted
// to each right after the kill has reached the sink), over several kills. It
// runs only with PARLEY_CLUSTER_BENCH set, e.g.
//
//	PARLEY_CLUSTER_BENCH=nodes=3,topics=300,kills=20,ttl=5s go test -run TestFailoverBench -timeout 60m -v ./cluster
//
// (docs/performance.md has the figures). Each round then starts a new node in
// place of the dead one and waits until every topic is owned again.
func TestFailoverBench(t *testing.T) {
	spec := os.Getenv("PARLEY_CLUSTER_BENCH")
	if spec == "" {
		t.Skip("set PARLEY_CLUSTER_BENCH=nodes=3,topics=300,kills=20,ttl=5s to measure failover")
	}
	p := map[string]string{"nodes": "3", "topics": "300", "kills": "20", "ttl": "5s"}
	for _, kv := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(kv, "=")
		p[k] = v
	}
	nodes, err1 := strconv.Atoi(p["nodes"])
	topics, err2 := strconv.Atoi(p["topics"])
	kills, err3 := strconv.Atoi(p["kills"])
	ttl, err4 := time.ParseDuration(p["ttl"])
	require.NoError(t, firstErr(err1, err2, err3, err4), "PARLEY_CLUSTER_BENCH=%s", spec)

	hook := &arrivals{seen: map[string]time.Time{}}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	f := newFixtureWith(t, topics, fmt.Sprintf(`webhook: {url: %q, timeout: 5s}`, srv.URL), ttl)
	f.dumpLogsOnFailure()
	for i := range nodes {
		f.startNode(fmt.Sprintf("n%d", i))
	}
	// Every (route, topic) owned, and spread over the live nodes as
	// placement spreads it (at most 1.25:1), so that each kill is of a node
	// holding its share of a full cluster: not of one of two, while the node
	// started in place of the last victim has not registered yet.
	allOwned := func() map[string]string {
		var live []string
		for _, n := range f.nodes {
			if !exited(n) {
				live = append(live, f.nodeID(n))
			}
		}
		var owners map[string]string
		require.Eventually(t, func() bool {
			_, _, owners = f.status()
			held := map[string]int{}
			for key, id := range owners {
				if strings.HasPrefix(key, "out ") {
					held[id]++
				}
			}
			least, most := topics, 0
			for _, id := range live {
				least, most = min(least, held[id]), max(most, held[id])
			}
			return len(owners) == topics+1 && len(held) == len(live) && 4*most <= 5*least
		}, 5*time.Minute, 500*time.Millisecond, "every (route, topic) owned, spread over the %d live nodes", len(live))
		// And every node prepared its backups: a kill right after a join
		// measures the preparing, not the failover.
		require.Eventually(t, func() bool {
			for _, n := range f.nodes {
				select {
				case <-n.exited:
					continue
				default:
				}
				if body, _ := n.scrape(t); metricValue(body, "parley_xmpp_cluster_backups_unprepared") != 0 {
					return false
				}
			}
			return true
		}, 5*time.Minute, 500*time.Millisecond, "every node prepared its backups")
		return owners
	}
	f.post(1) // the poster joins every room now, not on the measured path
	var samples, bares []time.Duration
	before := map[string]string{} // topic → its last message
	for _, tp := range f.topics {
		before[tp] = f.posted[tp][len(f.posted[tp])-1]
	}
	for k := range kills {
		owners := allOwned()
		time.Sleep(2 * time.Second) // settle: handovers of the last join done
		byNode := map[string][]string{}
		for key, id := range owners {
			if tp, ok := strings.CutPrefix(key, "out "); ok {
				byNode[id] = append(byNode[id], tp)
			}
		}
		var victim *node
		for _, n := range f.nodes {
			select {
			case <-n.exited:
				continue
			default:
			}
			if victim == nil || len(byNode[f.nodeID(n)]) > len(byNode[f.nodeID(victim)]) {
				victim = n
			}
		}
		moved := byNode[f.nodeID(victim)]
		t0 := time.Now()
		victim.kill9(t)
		ids := make([]string, len(moved))
		var g errgroup.Group
		g.SetLimit(64) // posting must not be what is measured
		for i, tp := range moved {
			g.Go(func() error {
				id, err := f.poster.Post(f.ctx, seam.Topic(tp), "me", "probe", seam.PostOptions{})
				ids[i] = string(id)
				return err
			})
		}
		require.NoError(t, g.Wait())
		posted := time.Since(t0)
		var last time.Time
		require.Eventually(t, func() bool {
			last = time.Time{}
			for _, id := range ids {
				at, ok := hook.at(id)
				if !ok {
					return false
				}
				if at.After(last) {
					last = at
				}
			}
			return true
		}, 2*ttl+2*time.Minute, 50*time.Millisecond, "kill %d: the dead node's %d topics deliver again", k, len(moved))
		d := last.Sub(t0)
		samples = append(samples, d)
		var each []time.Duration
		for _, id := range ids {
			at, _ := hook.at(id)
			each = append(each, at.Sub(t0))
		}
		slices.Sort(each)
		t.Logf("kill %d: node %s with %d topics: all delivering again after %s (first %s, median %s; the probes were posted within %s)",
			k, victim.name, len(moved), d.Round(time.Millisecond), each[0].Round(time.Millisecond), each[len(each)/2].Round(time.Millisecond),
			posted.Round(time.Millisecond))
		// The baseline, in the same round: a bare client does the XMPP reads
		// a takeover does for the same rooms (the archive after the last
		// message delivered: the probe's predecessor).
		bare := bareTakeover(t, f, moved, before)
		bares = append(bares, bare)
		t.Logf("kill %d: bare client's archive reads of the same %d rooms: %s", k, len(moved), bare.Round(time.Millisecond))
		for i, tp := range moved {
			before[tp] = ids[i]
		}
		f.startNode(fmt.Sprintf("n%d", nodes+k))
	}
	slices.Sort(samples)
	slices.Sort(bares)
	pct := func(ds []time.Duration, q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	t.Logf("failover over %d kills, %d nodes x %d topics, lease_ttl %s: p50 %s, p99 %s, max %s; bare client's reads of the same rooms: p50 %s, p99 %s",
		len(samples), nodes, topics, ttl, pct(samples, 0.5).Round(time.Millisecond), pct(samples, 0.99).Round(time.Millisecond),
		samples[len(samples)-1].Round(time.Millisecond), pct(bares, 0.5).Round(time.Millisecond), pct(bares, 0.99).Round(time.Millisecond))
}

// bareTakeover times a bare client (a fresh connection, account 2, in the
// rooms) reading each room's archive after before[topic], 16 at a time.
func bareTakeover(t *testing.T, f *fixture, topics []string, before map[string]string) time.Duration {
	cl, err := xmpptest.Dial(f.s, 2)
	require.NoError(t, err)
	defer cl.Close()
	nick := "bare-" + strings.ToLower(rand.Text()[:6])
	// Joined first, not timed: a survivor's backups are prepared ahead
	// (joined), and its takeover reads the archive after the cursor.
	var g errgroup.Group
	g.SetLimit(16)
	for _, tp := range topics {
		g.Go(func() error { return cl.Join(tp+"@"+f.s.MUC, nick) })
	}
	require.NoError(t, g.Wait())
	t0 := time.Now()
	for _, tp := range topics {
		g.Go(func() error {
			_, _, _, err := cl.ArchivePage(tp+"@"+f.s.MUC, before[tp], 50)
			return err
		})
	}
	require.NoError(t, g.Wait())
	return time.Since(t0)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

package cluster_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/cluster"
	"github.com/parley-go/parley-xmpp/internal/etcdtest"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// serveBinary builds parley-xmpp once per test binary.
func serveBinary(t testing.TB) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "parley-cluster-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "parley-xmpp")
		args := []string{"build", "-race", "-o", binPath, "../cmd/parley-xmpp"}
		if os.Getenv("PARLEY_CLUSTER_RACE") == "0" {
			// Long soaks: without the race detector, several nodes cost
			// a fraction of the CPU (the tests keep it on).
			args = slices.Delete(args, 1, 2)
		}
		cmd := exec.Command("go", args...)
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	require.NoError(t, buildErr)
	return binPath
}

// fixture is a cluster under test: etcd, a config, nodes started from the
// built binary, and a poster.
type fixture struct {
	t      *testing.T
	s      xmpptest.Server
	etcd   *etcdtest.Server
	dir    string
	cfg    string
	name   string // the cluster's name (its etcd keys' prefix)
	topics []string
	relay  string // the relay route's destination topic
	nodes  []*node
	poster *runtime.Runtime
	ctx    context.Context
	postMu sync.Mutex
	mu     sync.Mutex
	posted map[string][]string  // topic → ids in archive order
	sent   map[string]time.Time // id → when its post resolved
}

const leaseTTL = 3 * time.Second

func newFixture(t *testing.T, ntopics int) *fixture {
	return newFixtureWith(t, ntopics, "", leaseTTL)
}

// newFixtureWith takes the out route's sink (YAML; "" for the exec sink that
// appends to the node's file; NODE is replaced by the node's name) and the
// lease TTL.
func newFixtureWith(t *testing.T, ntopics int, sinkYAML string, ttl time.Duration) *fixture {
	if sinkYAML == "" {
		// Each line: the delivery's time (ns), then the message's JSON.
		sinkYAML = fmt.Sprintf(`exec: {command: ["sh", "-c", "m=$(cat); printf '%%s %%s\\n' \"$(date +%%s%%N)\" \"$m\" >> \"$0\"; sleep %s", "OUTFILE"]}`, sinkDelay)
	}
	s := xmpptest.Require(t)
	e := etcdtest.Start(t)
	bin := serveBinary(t)
	_ = bin
	dir, err := os.MkdirTemp("", "parley-cluster-test-")
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("PARLEY_CLUSTER_KEEP") != "" {
			t.Logf("kept %s (node logs, sink files, configs)", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	f := &fixture{t: t, s: s, etcd: e, dir: dir, posted: map[string][]string{}, sent: map[string]time.Time{}}
	base := fmt.Sprintf("cl-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano()%1000000)
	f.name = base
	for i := range ntopics {
		f.topics = append(f.topics, fmt.Sprintf("%s-t%d", base, i))
	}
	f.relay = base + "-relayed"
	quoted := make([]string, len(f.topics))
	for i, tp := range f.topics {
		quoted[i] = fmt.Sprintf("%q", tp)
	}
	f.cfg = filepath.Join(f.dir, "serve.yaml")
	require.NoError(t, os.WriteFile(f.cfg, []byte(fmt.Sprintf(`
backend_config:
  service: "xmpp://%s"
  domain: %q
  muc_service: %q
  username: %q
serve:
  metrics_listen: "METRICS"
  cluster:
    name: %q
    etcd:
      endpoints: [%q]
    lease_ttl: %s
  routes:
    - name: out
      topics: [%s]
      start: start
      retry_wait: 50ms
      max_retry_wait: 500ms
      sink:
        %s
    - name: copy
      topics: [%q]
      start: start
      retry_wait: 50ms
      max_retry_wait: 500ms
      sink:
        relay: {topic: %q}
`, s.Addr, s.Domain, s.MUC, s.Accounts[0][0], base, e.ClientURL, ttl, strings.Join(quoted, ", "), sinkYAML,
		f.topics[0], f.relay)), 0o600))

	// The test's own deadline where it has one (the failover bench runs for
	// many minutes), else 5 minutes.
	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	f.ctx = ctx
	p, err := runtime.New(runtime.Config{Service: "xmpp://" + s.Addr, Domain: s.Domain, MUCService: s.MUC,
		Username: s.Accounts[1][0], Password: s.Accounts[1][1]})
	require.NoError(t, err)
	require.NoError(t, p.Connect(ctx))
	t.Cleanup(func() { p.Disconnect(context.Background()) })
	f.poster = p
	return f
}

// logFormat is the nodes' log format: PARLEY_CLUSTER_LOG_FORMAT=json gives
// every line a time (for reading a failover's steps).
var logFormat = cmp.Or(os.Getenv("PARLEY_CLUSTER_LOG_FORMAT"), "text")

// logLevel is the nodes' log level: PARLEY_CLUSTER_LOG_LEVEL=debug logs
// every topology change and failed touch.
var logLevel = cmp.Or(os.Getenv("PARLEY_CLUSTER_LOG_LEVEL"), "info")

// sinkDelay is how long the exec sink takes per message: long enough that a
// node has deliveries in flight when it is killed or paused.
const sinkDelay = "0.05"

// node is one serve process; its exec sink appends each message to a file.
type node struct {
	name    string
	cmd     *exec.Cmd
	out     string
	metrics string // host:port of /metrics
	exited  chan struct{}
	state   *os.ProcessState // once exited is closed
	handled bool             // the soak expected its end (it runs on the test's goroutine)
}

func (f *fixture) startNode(name string) *node {
	return f.startNodeAt(name, "127.0.0.1:0")
}

// startNodeAt starts a node whose cluster member listens on listen.
func (f *fixture) startNodeAt(name, listen string) *node {
	return f.startNodeWith(name, listen, f.s.Addr)
}

// startNodeWith starts a node whose cluster member listens on listen and that
// reaches the XMPP server at xmppAddr (host:port: the server, or a proxy).
func (f *fixture) startNodeWith(name, listen, xmppAddr string) *node {
	return f.startNodeOpts(name, nodeOpts{listen: listen, xmppAddr: xmppAddr})
}

// nodeOpts is how a node is started; zero fields take the fixture's own.
type nodeOpts struct {
	listen   string // the cluster member's listen address ("": 127.0.0.1:0)
	xmppAddr string // host:port of the XMPP server, or of a proxy ("": the server)
	etcd     string // the etcd endpoint ("": the test's etcd)
	// metricsListen is the node's metrics listen address and metricsAddr
	// where the test reaches it ("": both a free loopback port).
	metricsListen, metricsAddr string
	yaml                       string   // appended to the node's config (top-level keys)
	prefix                     []string // the command runs under it (e.g. ip netns exec NS)
}

func (f *fixture) startNodeOpts(name string, o nodeOpts) *node {
	t := f.t
	n := &node{name: name, out: filepath.Join(f.dir, name+".jsonl"), exited: make(chan struct{})}
	o.listen = cmp.Or(o.listen, "127.0.0.1:0")
	o.xmppAddr = cmp.Or(o.xmppAddr, f.s.Addr)
	if o.metricsListen == "" {
		o.metricsListen = fmt.Sprintf("127.0.0.1:%d", etcdtest.FreePort(t))
		o.metricsAddr = o.metricsListen
	}
	n.metrics = o.metricsAddr
	outf, err := os.OpenFile(filepath.Join(f.dir, name+".stdout"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	errf, err := os.OpenFile(filepath.Join(f.dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	tmpl, err := os.ReadFile(f.cfg)
	require.NoError(t, err)
	cfg := filepath.Join(f.dir, name+".yaml")
	r := []string{"METRICS", o.metricsListen, "OUTFILE", n.out, "NODE", n.name, `listen: "127.0.0.1:0"`, fmt.Sprintf("listen: %q", o.listen),
		fmt.Sprintf(`service: "xmpp://%s"`, f.s.Addr), fmt.Sprintf(`service: "xmpp://%s"`, o.xmppAddr)}
	if o.etcd != "" {
		r = append(r, fmt.Sprintf("endpoints: [%q]", f.etcd.ClientURL), fmt.Sprintf("endpoints: [%q]", o.etcd))
	}
	require.NoError(t, os.WriteFile(cfg, []byte(strings.NewReplacer(r...).Replace(string(tmpl))+o.yaml), 0o600))
	args := append(append([]string(nil), o.prefix...), serveBinary(t), "--config", cfg, "--log-level", logLevel, "--log-format", logFormat, "serve")
	n.cmd = exec.Command(args[0], args[1:]...)
	// The binary is built with -race; protoactor itself has races (upstream),
	// which must not change the exit status: ourRaces reads the reports.
	n.cmd.Env = append(os.Environ(), "PARLEY_XMPP_PASS="+f.s.Accounts[0][1], "PARLEY_XMPP_SERVICE=xmpp://"+o.xmppAddr,
		"GORACE=exitcode=0")
	n.cmd.Stdout, n.cmd.Stderr = outf, errf
	require.NoError(t, n.cmd.Start())
	go func() { n.state, _ = n.cmd.Process.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
		_ = n.cmd.Process.Kill()
		<-n.exited
		_ = outf.Close()
		_ = errf.Close()
	})
	f.nodes = append(f.nodes, n)
	return n
}

func (n *node) signal(t *testing.T, sig syscall.Signal) {
	require.NoError(t, n.cmd.Process.Signal(sig))
}

// stop pauses the node (SIGSTOP) and waits until the kernel says it is
// stopped.
func (n *node) stop(t *testing.T) {
	n.signal(t, syscall.SIGSTOP)
	stat := fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(stat)
		// The state follows the command name, which is in parentheses.
		if i := strings.LastIndexByte(string(b), ')'); err == nil && i > 0 && strings.HasPrefix(string(b[i:]), ") T") {
			return
		}
	}
	t.Errorf("node %s did not stop within 5s of SIGSTOP", n.name)
}

func (n *node) kill9(t *testing.T) {
	n.signal(t, syscall.SIGKILL)
	<-n.exited
}

// record is a line of a node's sink file.
type record struct {
	Topic string    `json:"topic"`
	ID    string    `json:"id"`
	Node  string    `json:"-"`
	At    int       `json:"-"` // line number in its node's file
	When  time.Time `json:"-"` // when the sink ran (zero for a sink that doesn't say)
}

func (n *node) records(t *testing.T) []record {
	data, err := os.ReadFile(n.out)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []record
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for i := 0; sc.Scan(); i++ {
		line := sc.Text()
		if !strings.HasSuffix(line, "}") {
			continue // a line cut by kill -9
		}
		var r record
		if stamp, rest, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "{") {
			ns, err := strconv.ParseInt(stamp, 10, 64)
			require.NoError(t, err, "%s: %q", n.name, line)
			r.When, line = time.Unix(0, ns), rest
		}
		require.NoError(t, json.Unmarshal([]byte(line), &r), "%s: %q", n.name, line)
		r.Node, r.At = n.name, i
		out = append(out, r)
	}
	return out
}

// post posts n messages to each topic, round robin; one post at a time (the
// streamer posts too), so that message k of a topic is its k-th.
func (f *fixture) post(n int) {
	f.postMu.Lock()
	defer f.postMu.Unlock()
	for range n {
		for _, tp := range f.topics {
			f.mu.Lock()
			k := len(f.posted[tp])
			f.mu.Unlock()
			id, err := f.poster.Post(f.ctx, seam.Topic(tp), "me", fmt.Sprintf("%s message %d", tp, k), seam.PostOptions{})
			if err != nil {
				f.t.Errorf("posting to %s: %v", tp, err) // not FailNow: post runs in the streamer's goroutine too
				return
			}
			f.mu.Lock()
			f.posted[tp] = append(f.posted[tp], string(id))
			f.sent[string(id)] = time.Now()
			f.mu.Unlock()
		}
	}
}

// delivered is every node's records, by topic.
func (f *fixture) delivered() map[string][]record {
	out := map[string][]record{}
	for _, n := range f.nodes {
		for _, r := range n.records(f.t) {
			out[r.Topic] = append(out[r.Topic], r)
		}
	}
	return out
}

// slowest is the longest wait of a message between its post and its first
// delivery, and the topic and id of that message: with a streamer posting to
// every topic, a bound on how long a topic went undelivered (unowned, or
// owned by a node that delivered nothing).
func (f *fixture) slowest() (time.Duration, string) {
	first := map[string]time.Time{}
	for _, rs := range f.delivered() {
		for _, r := range rs {
			if t, ok := first[r.ID]; !r.When.IsZero() && (!ok || r.When.Before(t)) {
				first[r.ID] = r.When
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var worst time.Duration
	which := ""
	for tp, ids := range f.posted {
		for _, id := range ids {
			if d := first[id].Sub(f.sent[id]); first[id].After(f.sent[id]) && d > worst {
				worst, which = d, tp+":"+id
			}
		}
	}
	return worst, which
}

// longestStall is the longest time a topic delivered nothing while it had a
// message waiting: per topic, between two deliveries (any node's, in time
// order), counted from the earlier one or from the later message's post,
// whichever came last. A failure of the topic's owner shows as one stall
// (lease_ttl and the takeover), two failures of successive owners as two.
func (f *fixture) longestStall() (time.Duration, string) {
	return f.longestStallPerFailure(nil, nil) // no failure splits a stall
}

// waitAllDelivered waits until every posted message of every topic was
// delivered by some node.
func (f *fixture) waitAllDelivered(within time.Duration) {
	f.t.Helper()
	var missing []string
	ok := false
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		missing = missing[:0]
		got := f.delivered()
		f.mu.Lock()
		for _, tp := range f.topics {
			seen := map[string]bool{}
			for _, r := range got[tp] {
				seen[r.ID] = true
			}
			for _, id := range f.posted[tp] {
				if !seen[id] {
					missing = append(missing, tp+":"+id)
				}
			}
		}
		f.mu.Unlock()
		if len(missing) == 0 {
			ok = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.True(f.t, ok, "not delivered within %s: %v", within, missing)
}

// checkDeliveries checks every node's records against the archive (what was
// posted, in order): per topic every message delivered, each node's records
// in archive order, and a message delivered twice only where one node's run
// ends and the next one's starts (a handover), at most once per handover. It
// answers the number of handovers per topic.
func (f *fixture) checkDeliveries() map[string]int {
	t := f.t
	t.Helper()
	got := f.delivered()
	handovers := map[string]int{}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tp := range f.topics {
		index := map[string]int{}
		for i, id := range f.posted[tp] {
			index[id] = i
		}
		// Each node's records of tp, split into runs of consecutive archive
		// positions: a run is one spell of ownership.
		type run struct {
			node       string
			start, end int // archive positions, inclusive
		}
		var runs []run
		// Records are taken in the order they were delivered (the exec sink
		// stamps each): a run goes on only while no other node delivered tp
		// meanwhile (a node that handed a topic over and later took it back
		// after the other's one message has two runs, not one around that
		// message).
		recs := slices.Clone(got[tp])
		slices.SortStableFunc(recs, func(a, b record) int { return a.When.Compare(b.When) })
		for _, r := range recs {
			i, ok := index[r.ID]
			if !ok {
				t.Errorf("topic %s: node %s delivered %s, which was never posted", tp, r.Node, r.ID)
				continue
			}
			if r.When.IsZero() {
				t.Errorf("topic %s: node %s's record of %s has no delivery time (checkDeliveries needs the exec sink's stamps)", tp, r.Node, r.ID)
			}
			if n := len(runs); n > 0 && runs[n-1].node == r.Node && i == runs[n-1].end+1 {
				runs[n-1].end = i
			} else {
				runs = append(runs, run{node: r.Node, start: i, end: i})
			}
		}
		sortRuns := func() {
			for a := 1; a < len(runs); a++ {
				// Same start: the shorter run first (a node that delivered
				// the first message and handed over before its cursor
				// write, then the next owner's run from that message).
				for b := a; b > 0 && (runs[b].start < runs[b-1].start || (runs[b].start == runs[b-1].start && runs[b].end < runs[b-1].end)); b-- {
					runs[b], runs[b-1] = runs[b-1], runs[b]
				}
			}
		}
		sortRuns()
		next := 0 // the first archive position not yet covered
		for _, r := range runs {
			switch {
			case r.start > next:
				t.Errorf("topic %s: positions %d..%d never delivered (runs %+v)", tp, next, r.start-1, runs)
			case r.start < next-1:
				t.Errorf("topic %s: node %s redelivered %d messages at a handover (positions %d..%d), more than one (runs %+v)",
					tp, r.node, next-r.start, r.start, next-1, runs)
			}
			next = max(next, r.end+1)
		}
		if next < len(f.posted[tp]) {
			t.Errorf("topic %s: positions %d..%d never delivered (runs %+v)", tp, next, len(f.posted[tp])-1, runs)
		}
		handovers[tp] = max(0, len(runs)-1)
	}
	return handovers
}

// checkRelay checks that the relay destination holds every message of the
// relayed topic exactly once, in order.
func (f *fixture) checkRelay() {
	t := f.t
	t.Helper()
	src := f.topics[0]
	var want []string
	f.mu.Lock()
	for i := range f.posted[src] {
		want = append(want, fmt.Sprintf("%s message %d", src, i))
	}
	f.mu.Unlock()
	var got []string
	var since seam.Cursor
	require.Eventually(t, func() bool {
		for {
			page, err := f.poster.FetchRecent(f.ctx, seam.FetchRecentArgs{Topic: seam.Topic(f.relay), Since: &since, Limit: 100})
			if err != nil {
				return false
			}
			for _, m := range page.Messages {
				got = append(got, m.Content)
			}
			if page.NextCursor != "" {
				since = page.NextCursor
			}
			if len(page.Messages) < 100 {
				return len(got) >= len(want)
			}
		}
	}, 30*time.Second, 300*time.Millisecond, "the relay destination got %d of %d", len(got), len(want))
	time.Sleep(time.Second) // room for a duplicate to show
	page, err := f.poster.FetchRecent(f.ctx, seam.FetchRecentArgs{Topic: seam.Topic(f.relay), Since: &since, Limit: 100})
	require.NoError(t, err)
	for _, m := range page.Messages {
		got = append(got, m.Content)
	}
	require.Equal(t, want, got, "every relayed message exactly once, in order")
}

// owners answers, per topic of the out route, the node that delivered its
// last record.
func (f *fixture) owners() map[string]string {
	out := map[string]string{}
	for tp, rs := range f.delivered() {
		if len(rs) > 0 {
			out[tp] = rs[len(rs)-1].Node
		}
	}
	return out
}

// streamer posts a message to every topic every period until stopped.
func (f *fixture) streamer(period time.Duration) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tk := time.NewTicker(period)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				if f.ctx.Err() != nil {
					return
				}
				f.post(1)
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(done); <-finished }) }
	f.t.Cleanup(stop) // also when the test fails before stopping it
	return stop
}

func (f *fixture) dumpLogsOnFailure() {
	f.t.Cleanup(func() {
		for _, n := range f.nodes {
			b, _ := os.ReadFile(filepath.Join(f.dir, n.name+".log"))
			for _, r := range ourRaces(string(b)) {
				f.t.Errorf("node %s: a data race in this module's code:\n%s", n.name, r)
			}
		}
		if !f.t.Failed() {
			return
		}
		for _, n := range f.nodes {
			b, _ := os.ReadFile(filepath.Join(f.dir, n.name+".log"))
			f.t.Logf("== node %s log:\n%s", n.name, tail(string(b), 6000))
		}
	})
}

// ourRaces answers the race detector's reports in log where a racing access
// is made by this module's code (its first frame, past the Go runtime's). The
// others are inside protoactor-go and grpc (upstream; docs/cluster.md).
func ourRaces(log string) []string {
	var out []string
	for _, block := range strings.Split(log, "==================") {
		if !strings.Contains(block, "WARNING: DATA RACE") {
			continue
		}
		lines := strings.Split(block, "\n")
		for i, l := range lines {
			l = strings.TrimSpace(l)
			if !strings.HasPrefix(l, "Read at") && !strings.HasPrefix(l, "Write at") && !strings.HasPrefix(l, "Previous") {
				continue
			}
			for _, frame := range lines[i+1:] {
				frame = strings.TrimSpace(frame)
				if frame == "" || strings.HasPrefix(frame, "/") || strings.HasPrefix(frame, "runtime.") || strings.HasPrefix(frame, "sync/atomic.") {
					continue
				}
				if strings.Contains(frame, "parley-go/parley-xmpp/") {
					out = append(out, block)
				}
				break
			}
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// nodeID is the member id a node announced in its log.
func (f *fixture) nodeID(n *node) string { return f.announced(n, " as node ", "id") }

// announced is the word after marker in a node's log (text or JSON).
func (f *fixture) announced(n *node, marker, what string) string {
	var word string
	require.Eventually(f.t, func() bool {
		b, _ := os.ReadFile(filepath.Join(f.dir, n.name+".log"))
		_, rest, ok := strings.Cut(string(b), marker)
		if !ok {
			return false
		}
		line, _, _ := strings.Cut(rest, "\n")
		fs := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '"' })
		if len(fs) == 0 {
			return false
		}
		word = fs[0]
		return true
	}, 30*time.Second, 100*time.Millisecond, "node %s announced its %s", n.name, what)
	return word
}

// status runs `parley-xmpp cluster status` and answers its exit code, output
// and, per "route topic", the owner's node id.
func (f *fixture) status() (int, string, map[string]string) {
	cmd := exec.Command(serveBinary(f.t), "--config", f.cfg, "cluster", "status")
	cmd.Env = append(os.Environ(), "PARLEY_XMPP_PASS="+f.s.Accounts[0][1])
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(f.t, err)
	}
	owners := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		fs := strings.Fields(line)
		if len(fs) >= 4 && fs[0] == "topic" && fs[3] != "unowned" {
			owners[fs[1]+" "+fs[2]] = fs[3]
		}
	}
	return code, string(out), owners
}

// relayOwner is the node delivering the relay route, per cluster status.
func (f *fixture) relayOwner() *node {
	f.t.Helper()
	var out string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		code, o, owners := f.status()
		out = fmt.Sprintf("exit %d: %s", code, o)
		id := owners["copy "+f.topics[0]]
		for _, n := range f.nodes {
			if f.nodeID(n) == id {
				return n
			}
		}
	}
	f.t.Fatalf("cluster status names no owner of the relay: %s", out)
	return nil
}

// scrape answers a node's /metrics body and its /readyz status code.
func (n *node) scrape(t *testing.T) (string, int) {
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + n.metrics + path)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, body := get("/metrics")
	code, _ := get("/readyz")
	return body, code
}

// metricValue reads an unlabelled sample from a /metrics body (-1: absent).
func metricValue(body, name string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

// TestMain removes the binary serveBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// tap is a TCP proxy on loopback in front of the XMPP server (plaintext on
// the dev servers) that shows a test what its client sends.
type tap struct {
	ln   net.Listener
	mu   sync.Mutex
	hook func([]byte)
}

func newTap(t *testing.T, upstream string) *tap {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	x := &tap{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = c.Close()
				continue
			}
			t.Cleanup(func() { _ = c.Close(); _ = up.Close() })
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
			go x.forward(up, c)
		}
	}()
	return x
}

func (x *tap) addr() string { return x.ln.Addr().String() }

// onSend calls h (nil: nothing) with each chunk the client sends, before the
// chunk goes on to the server.
func (x *tap) onSend(h func([]byte)) {
	x.mu.Lock()
	x.hook = h
	x.mu.Unlock()
}

func (x *tap) forward(up, c net.Conn) {
	defer up.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			x.mu.Lock()
			h := x.hook
			x.mu.Unlock()
			if h != nil {
				h(buf[:n])
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// waitPlaced waits until every (route, topic) is held by the node placement
// gives it among nodes, as cluster status shows the locks: a test that counts
// handovers starts from there, not while a join still moves topics.
func (f *fixture) waitPlaced(nodes ...*node) {
	f.t.Helper()
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = f.nodeID(n)
	}
	slices.Sort(ids)
	idents := map[string]string{"copy " + f.topics[0]: cluster.Identity("copy", f.topics[0])} // "route topic" → identity
	for _, tp := range f.topics {
		idents["out "+tp] = cluster.Identity("out", tp)
	}
	want := cluster.Assign(ids, slices.Collect(maps.Values(idents)))
	require.Eventually(f.t, func() bool {
		_, _, owners := f.status()
		for key, ident := range idents {
			if owners[key] != want[ident] {
				return false
			}
		}
		return true
	}, within, 200*time.Millisecond, "every topic held where placement puts it among %v", ids)
}

package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Waits for conditions, generous for a loaded CI machine; conditions are
// polled, never slept on.
const (
	waitFor = 30 * time.Second
	tick    = 10 * time.Millisecond
)

// noLeaks fails the test if a goroutine started during it outlives it. Call it
// first: cleanups run last-in first-out, so the check runs after the runtimes
// are disconnected and the test servers closed.
func noLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// connectedRuntime is a runtime on account i of the test server, disconnected
// when the test ends.
func connectedRuntime(t *testing.T, s xmpptest.Server, account int) *runtime.Runtime {
	t.Helper()
	rt, err := runtime.New(runtime.Config{
		Service:    "xmpp://" + s.Addr,
		Domain:     s.Domain,
		MUCService: s.MUC,
		Username:   s.Accounts[account][0],
		Password:   s.Accounts[account][1],
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rt.Disconnect(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, rt.Connect(ctx))
	return rt
}

// freshTopic has upper case and a space, so its room localpart (and state file
// name) is encoded.
func freshTopic(what string) seam.Topic {
	return seam.Topic("Serve " + what + " " + strings.ToLower(rand.Text()[:10]))
}

func post(t *testing.T, rt *runtime.Runtime, topic seam.Topic, contents ...string) []seam.BackendMsgID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var ids []seam.BackendMsgID
	for _, c := range contents {
		id, err := rt.Post(ctx, topic, "tester", c, seam.PostOptions{})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	return ids
}

// running is a Run in progress.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// start runs Run until stop (or the test's end).
func start(t *testing.T, o Options) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- Run(ctx, o) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and requires it to return nil promptly.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			require.NoError(t, err)
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	})
}

// syncBuffer is an io.Writer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines are the complete lines written so far.
func (s *syncBuffer) lines() []string {
	text := s.String()
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		return strings.Split(text[:i], "\n")
	}
	return nil
}

// testLogger logs into a buffer, shown when the test fails.
func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve's log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// fakeRecorder records the engine's measurements.
type fakeRecorder struct {
	mu        sync.Mutex
	delivered map[string]int // by route/topic
	failures  map[string]int // by route
	backlog   map[string]int // by route/topic, the last value
	loops     map[string]int // by route: messages refused as a relay loop
	skipped   map[string]int // by route/reason
	dead      map[string]int // by route
	stopped   map[string]int // by route/topic
}

func newFakeRecorder() *fakeRecorder {
	return &fakeRecorder{delivered: map[string]int{}, failures: map[string]int{}, backlog: map[string]int{}, loops: map[string]int{},
		skipped: map[string]int{}, dead: map[string]int{}, stopped: map[string]int{}}
}

func (f *fakeRecorder) Delivered(route, topic string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delivered[route+"/"+topic]++
}

func (f *fakeRecorder) SinkFailure(route string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[route]++
}

func (f *fakeRecorder) Backlog(route, topic string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backlog[route+"/"+topic] = n
}

func (f *fakeRecorder) RelayLoopRefused(route string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loops[route]++
}

func (f *fakeRecorder) loopsRefused(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loops[route]
}

func (f *fakeRecorder) Skipped(route, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.skipped[route+"/"+reason]++
}

func (f *fakeRecorder) DeadLettered(route string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dead[route]++
}

func (f *fakeRecorder) Stopped(route, topic string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped[route+"/"+topic]++
}

// policy is what the policy counted: skipped by route/reason, dead letters
// by route, stops by route/topic.
func (f *fakeRecorder) policy() (skipped, dead, stopped map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.skipped), maps.Clone(f.dead), maps.Clone(f.stopped)
}

func (f *fakeRecorder) counts(route string, topic seam.Topic) (delivered, failures, backlog int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := route + "/" + string(topic)
	return f.delivered[key], f.failures[route], f.backlog[key]
}

// stateOf is the state file of route's topic under dir.
func stateOf(t *testing.T, dir, route string, topic seam.Topic) stateFile {
	t.Helper()
	local, err := runtime.RoomLocalpart(topic)
	require.NoError(t, err)
	return stateFile{path: filepath.Join(dir, route, stateFileName(local))}
}

// waitForState waits until the worker has saved a state: its starting point.
func waitForState(t *testing.T, f stateFile) topicState {
	t.Helper()
	var st topicState
	require.Eventually(t, func() bool {
		var found bool
		st, found, _ = f.load()
		return found
	}, waitFor, tick, "no state saved in %s", f.path)
	return st
}

// waitForCursor waits until the worker has recorded the message with cursor c.
func waitForCursor(t *testing.T, f stateFile, c seam.Cursor) topicState {
	t.Helper()
	var st topicState
	require.Eventually(t, func() bool {
		st, _, _ = f.load()
		return st.Cursor == c
	}, waitFor, tick, "the cursor in %s never reached %s", f.path, c)
	return st
}

// archive is the whole of topic's archive, read through rt.
func archive(t *testing.T, rt *runtime.Runtime, topic seam.Topic) []seam.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := seam.Cursor("")
	page, err := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Since: &start, Limit: 1000})
	require.NoError(t, err)
	return page.Messages
}

func contents(ms []seam.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Content)
	}
	return out
}

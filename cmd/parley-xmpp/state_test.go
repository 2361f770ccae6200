package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/serve"
)

// stateConfig writes a configuration whose route r has topics a and "B c",
// its cursors in a fresh state dir; it needs no server.
func stateConfig(t *testing.T, extra string) (cfg, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	require.NoError(t, os.Mkdir(stateDir, 0o700))
	cfg = filepath.Join(dir, "serve.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("serve:\n  state_dir: "+stateDir+"\n"+extra+
		"  routes:\n    - {name: r, topics: [a, 'B c'], sink: {stdout: {}}}\n"), 0o600))
	return cfg, stateDir
}

// state show, set and skip: what they print, what they write, their exit
// statuses; set and skip refuse while a serve holds the state dir's lock.
func TestStateCommand(t *testing.T) {
	cfg, dir := stateConfig(t, "")
	code, out, errOut := runCLI(t, "", "--config", cfg, "state", "show")
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `r\s+a\s+none yet \(starts at the newest message\)`, out)
	assert.Regexp(t, `r\s+B c\s+none yet`, out)

	code, out, errOut = runCLI(t, "", "--config", cfg, "state", "set", "--route", "r", "--topic", "B c", "--to", "id-1")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "route r: topic B c: cursor start → id-1\n", out)
	st, found, err := serve.ReadState(dir, "r", "B c")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, serve.State{Cursor: "id-1"}, st)
	code, out, _ = runCLI(t, "", "--config", cfg, "state", "show", "--topic", "B c")
	require.Equal(t, 0, code)
	assert.Regexp(t, `r\s+B c\s+id-1\s+-`, out)
	assert.NotContains(t, out, "none yet", "only the topic asked for")

	// relay_last is kept; '' is the archive's start; nothing is left behind.
	path, err := serve.StateFile(dir, "r", "B c")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte(`{"topic": "B c", "cursor": "id-1", "relay_last": "d-9"}`), 0o600))
	code, _, errOut = runCLI(t, "", "--config", cfg, "state", "set", "--route", "r", "--topic", "B c", "--to", "")
	require.Equal(t, 0, code, errOut)
	st, _, err = serve.ReadState(dir, "r", "B c")
	require.NoError(t, err)
	assert.Equal(t, serve.State{Cursor: "", RelayLast: "d-9"}, st)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temp file left")

	// Bad usage: exit 2, and the cursor is untouched.
	for _, args := range [][]string{
		{"state"},
		{"state", "set", "--route", "r", "--topic", "a"},                            // no --to
		{"state", "set", "--topic", "a", "--to", "x"},                               // no --route
		{"state", "set", "--route", "nope", "--topic", "a", "--to", "x"},            // unknown route
		{"state", "set", "--route", "r", "--topic", "zz", "--to", "x"},              // unknown topic
		{"state", "set", "--route", "r", "--topic", "B c", "--to", "not a\ncursor"}, // not a cursor
		{"state", "show", "--route", "nope"},
		{"state", "skip", "--route", "r"},
	} {
		code, _, errOut := runCLI(t, "", append([]string{"--config", cfg}, args...)...)
		assert.Equal(t, 2, code, "%q: %s", args, errOut)
	}
	code, _, _ = runCLI(t, "", "state", "show")
	assert.Equal(t, 2, code, "no --config")
	st, _, err = serve.ReadState(dir, "r", "B c")
	require.NoError(t, err)
	assert.Equal(t, serve.State{Cursor: "", RelayLast: "d-9"}, st)

	// Nothing saved, nothing stuck: skip fails (1) before any network.
	code, _, errOut = runCLI(t, "", "--config", cfg, "state", "skip", "--route", "r", "--topic", "a")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "nothing is stuck")

	// A serve holds the lock: set and skip refuse (1), show still reads.
	f, err := config.Load(cfg)
	require.NoError(t, err)
	engine, err := serve.Prepare(serve.Options{Routes: f.Serve.Routes, StateDir: dir})
	require.NoError(t, err)
	code, _, errOut = runCLI(t, "", "--config", cfg, "state", "set", "--route", "r", "--topic", "a", "--to", "id-2")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "in use by another serve process")
	assert.Contains(t, errOut, "stop serve before changing its cursors")
	code, _, _ = runCLI(t, "", "--config", cfg, "state", "show")
	assert.Equal(t, 0, code)
	engine.Close()
	code, _, errOut = runCLI(t, "", "--config", cfg, "state", "set", "--route", "r", "--topic", "a", "--to", "id-2")
	assert.Equal(t, 0, code, errOut)

	// A cluster keeps its cursors in etcd: refused, saying what to do.
	cluster, _ := stateConfig(t, "  cluster: {name: bridge, etcd: {endpoints: ['127.0.0.1:1']}, listen: '127.0.0.1:0'}\n")
	code, _, errOut = runCLI(t, "", "--config", cluster, "state", "show")
	assert.Equal(t, 2, code, errOut)
	assert.Contains(t, errOut, "etcd")
	assert.Contains(t, errOut, "/parley-xmpp/bridge/cursors/")
}

// The way out of a stopped topic: a webhook refuses one message for good,
// the route (on_exhausted: stop, the default) stops on it; state skip refuses
// while serve runs, passes over it once serve is stopped, and the restarted
// serve delivers the later messages.
func TestStateSkipUnsticksAStoppedRoute(t *testing.T) {
	s := xmpptest.Require(t)
	var (
		mu       sync.Mutex
		refused  int
		accepted []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m serve.Message
		_ = json.Unmarshal(body, &m)
		mu.Lock()
		defer mu.Unlock()
		if m.Content == "message 1" {
			refused++
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		accepted = append(accepted, m.Content)
	}))
	t.Cleanup(hook.Close)
	topic := topicFor(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	cfg := serveConfig(t, s, "  state_dir: "+stateDir+"\n  routes:\n    - {name: hook, topics: ["+topic+
		"], start: start, retry_wait: 10ms, max_retry_wait: 50ms, sink: {webhook: {url: '"+hook.URL+"'}}}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := postAs(t, ctx, s, topic, 3)

	serveUntil := func(done func() bool) {
		sctx, stop := context.WithCancel(ctx)
		exited := make(chan int, 1)
		go func() { exited <- runCtx(sctx, &syncBuffer{}, "--config", cfg, "serve") }()
		require.Eventually(t, done, 30*time.Second, 20*time.Millisecond)
		time.Sleep(200 * time.Millisecond) // room for a wrong delivery to show
		// While it runs, skip is refused.
		code, _, errOut := runCLI(t, "", "--config", cfg, "state", "skip", "--route", "hook", "--topic", topic)
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, "stop serve before changing its cursors")
		stop()
		assert.Equal(t, 0, <-exited)
	}
	serveUntil(func() bool { mu.Lock(); defer mu.Unlock(); return refused == 1 && len(accepted) == 1 })
	st, _, err := serve.ReadState(stateDir, "hook", topic)
	require.NoError(t, err)
	assert.Equal(t, ids[0], string(st.Cursor), "stopped before the refused message")
	mu.Lock()
	assert.Equal(t, 1, refused, "refused for good: once, then the topic stopped")
	mu.Unlock()

	code, out, errOut := runCLI(t, "", "--config", cfg, "state", "skip", "--route", "hook", "--topic", topic)
	require.Equal(t, 0, code, errOut)
	// Its id, never its content (an id may itself read "message 1...": ejabberd's are numbers).
	assert.Equal(t, "route hook: topic "+topic+": skipped message "+ids[1]+" (cursor "+ids[0]+" → "+ids[1]+")\n", out)

	serveUntil(func() bool { mu.Lock(); defer mu.Unlock(); return len(accepted) == 2 })
	mu.Lock()
	assert.Equal(t, []string{"message 0", "message 2"}, accepted)
	assert.Equal(t, 1, refused)
	mu.Unlock()

	// Nothing after the cursor: nothing to skip (1).
	code, _, errOut = runCLI(t, "", "--config", cfg, "state", "skip", "--route", "hook", "--topic", topic)
	assert.Equal(t, 1, code)
	assert.True(t, strings.Contains(errOut, "nothing to skip"), errOut)
}

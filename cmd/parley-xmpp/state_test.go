package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/etcdtest"
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

	// A cluster whose etcd can't be reached: 1, saying so.
	cluster, _ := stateConfig(t, fmt.Sprintf("  cluster: {name: bridge, etcd: {endpoints: ['127.0.0.1:%d'], dial_timeout: 1s}}\n", etcdtest.FreePort(t)))
	for _, args := range [][]string{
		{"state", "show"},
		{"state", "set", "--route", "r", "--topic", "a", "--to", "x"},
	} {
		code, _, errOut = runCLI(t, "", append([]string{"--config", cluster}, args...)...)
		assert.Equal(t, 1, code, errOut)
		assert.Contains(t, errOut, "etcd is unreachable")
	}
}

// clusterStateConfig writes a cluster configuration (its etcd: e) whose route
// r has topics a and "B c", and answers a client of e.
func clusterStateConfig(t *testing.T, e *etcdtest.Server, name string) (string, *clientv3.Client) {
	t.Helper()
	cfg, _ := stateConfig(t, "  cluster: {name: "+name+", etcd: {endpoints: ['"+e.ClientURL+"']}, lease_ttl: 2s}\n")
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.ClientURL}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cfg, cli
}

// savedCursor reads a cursor as the cluster keeps it in etcd (nil: none).
func savedCursor(t *testing.T, cli *clientv3.Client, name, route, topic string) map[string]any {
	t.Helper()
	resp, err := cli.Get(context.Background(), "/parley-xmpp/"+name+"/cursors/"+url.PathEscape(route)+"/"+url.PathEscape(topic))
	require.NoError(t, err)
	if len(resp.Kvs) == 0 {
		return nil
	}
	var c map[string]any
	require.NoError(t, json.Unmarshal(resp.Kvs[0].Value, &c))
	return c
}

// state show and set on a cluster configuration: the cursors in etcd; set
// takes the topic's lock as a node does, and while a node holds it set waits
// --wait, then exits 1 changing nothing.
func TestStateCommandCluster(t *testing.T) {
	e := etcdtest.Start(t)
	cfg, cli := clusterStateConfig(t, e, "st")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	code, out, errOut := runCLI(t, "", "--config", cfg, "state", "show")
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `r\s+a\s+none yet \(starts at the newest message\)`, out)
	assert.Regexp(t, `r\s+B c\s+none yet`, out)

	code, out, errOut = runCLI(t, "", "--config", cfg, "state", "set", "--route", "r", "--topic", "B c", "--to", "id-1")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "route r: topic B c: cursor start → id-1\n", out)
	c := savedCursor(t, cli, "st", "r", "B c")
	require.NotNil(t, c)
	assert.Equal(t, "id-1", c["cursor"])
	assert.Equal(t, "r", c["route"])
	assert.Equal(t, "B c", c["topic"])
	assert.Contains(t, c["edited_by"], "parley-xmpp-state@")
	resp, err := cli.Get(ctx, "/parley-xmpp/st/locks/", clientv3.WithPrefix())
	require.NoError(t, err)
	assert.Empty(t, resp.Kvs, "the lock is released")

	// A node's cursor: relay_last and its node are kept.
	key := "/parley-xmpp/st/cursors/r/B%20c"
	_, err = cli.Put(ctx, key, `{"cursor":"id-1","relay_last":"d-9","route":"r","topic":"B c","node":"node-7","at":"x"}`)
	require.NoError(t, err)
	code, out, _ = runCLI(t, "", "--config", cfg, "state", "show", "--topic", "B c")
	require.Equal(t, 0, code)
	assert.Regexp(t, `r\s+B c\s+id-1\s+d-9`, out)
	assert.NotContains(t, out, "none yet", "only the topic asked for")
	code, _, errOut = runCLI(t, "", "--config", cfg, "state", "set", "--route", "r", "--topic", "B c", "--to", "")
	require.Equal(t, 0, code, errOut)
	c = savedCursor(t, cli, "st", "r", "B c")
	assert.Equal(t, "", c["cursor"])
	assert.Equal(t, "d-9", c["relay_last"])
	assert.Equal(t, "node-7", c["node"])

	// Bad usage: 2, nothing written.
	for _, args := range [][]string{
		{"state", "set", "--route", "r", "--topic", "a"},
		{"state", "set", "--route", "nope", "--topic", "a", "--to", "x"},
		{"state", "set", "--route", "r", "--topic", "zz", "--to", "x"},
		{"state", "set", "--route", "r", "--topic", "a", "--to", "not a\ncursor"},
		{"state", "set", "--route", "r", "--topic", "a", "--to", "x", "--wait", "soon"},
		{"state", "show", "--route", "nope"},
	} {
		code, _, errOut := runCLI(t, "", append([]string{"--config", cfg}, args...)...)
		assert.Equal(t, 2, code, "%q: %s", args, errOut)
	}
	assert.Nil(t, savedCursor(t, cli, "st", "r", "a"))

	// A node holds topic a's lock (the key a node creates, on its lease):
	// set waits --wait, then exits 1; the cursor and the lock are untouched.
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	require.NoError(t, err)
	defer sess.Close()
	lockKey := "/parley-xmpp/st/locks/r/a"
	held, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(lockKey), "=", 0)).
		Then(clientv3.OpPut(lockKey, "node-7", clientv3.WithLease(sess.Lease()))).Commit()
	require.NoError(t, err)
	require.True(t, held.Succeeded)
	_, err = cli.Put(ctx, "/parley-xmpp/st/cursors/r/a", `{"cursor":"id-5","relay_last":"","route":"r","topic":"a","node":"node-7","at":"x"}`)
	require.NoError(t, err)
	start := time.Now()
	code, out, errOut = runCLI(t, "", "--config", cfg, "state", "set", "--route", "r", "--topic", "a", "--to", "id-6", "--wait", "1s")
	assert.Equal(t, 1, code, errOut)
	assert.Empty(t, out)
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "it waited")
	assert.Contains(t, errOut, "a node holds its lock; waiting up to 1s")
	assert.Contains(t, errOut, "still held by node node-7")
	assert.Contains(t, errOut, "stop the node delivering it, or retry")
	assert.Equal(t, "id-5", savedCursor(t, cli, "st", "r", "a")["cursor"], "unchanged")
	resp, err = cli.Get(ctx, lockKey)
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	assert.Equal(t, held.Header.Revision, resp.Kvs[0].CreateRevision, "the node's lock is untouched")
	code, _, _ = runCLI(t, "", "--config", cfg, "state", "show", "--topic", "a")
	assert.Equal(t, 0, code, "show reads while a node holds the lock")

	// Released (the node stopped) while set waits: set goes through.
	go func() { time.Sleep(300 * time.Millisecond); _, _ = cli.Delete(context.Background(), lockKey) }()
	code, out, errOut = runCLI(t, "", "--config", cfg, "state", "set", "--route", "r", "--topic", "a", "--to", "id-6", "--wait", "20s")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "route r: topic a: cursor id-5 → id-6\n", out)
	assert.Equal(t, "id-6", savedCursor(t, cli, "st", "r", "a")["cursor"])
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

// state skip on a cluster configuration: it reads the message after the
// cursor in etcd from the route's server and moves the cursor past it, under
// the topic's lock; with nothing saved, or nothing after the cursor, it fails
// (1) writing nothing.
func TestStateSkipCluster(t *testing.T) {
	s := xmpptest.Require(t)
	e := etcdtest.Start(t)
	topic := topicFor(t)
	cfg := serveConfig(t, s, "  cluster: {name: sk, etcd: {endpoints: ['"+e.ClientURL+"']}, lease_ttl: 2s}\n"+
		"  routes:\n    - {name: hook, topics: ["+topic+"], start: start, sink: {stdout: {}}}\n")
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.ClientURL}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := postAs(t, ctx, s, topic, 3)

	code, _, errOut := runCLI(t, "", "--config", cfg, "state", "skip", "--route", "hook", "--topic", topic)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "nothing is stuck")
	assert.Nil(t, savedCursor(t, cli, "sk", "hook", topic))

	code, _, errOut = runCLI(t, "", "--config", cfg, "state", "set", "--route", "hook", "--topic", topic, "--to", ids[0])
	require.Equal(t, 0, code, errOut)
	code, out, errOut := runCLI(t, "", "--config", cfg, "state", "skip", "--route", "hook", "--topic", topic)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "route hook: topic "+topic+": skipped message "+ids[1]+" (cursor "+ids[0]+" → "+ids[1]+")\n", out)
	assert.Equal(t, ids[1], savedCursor(t, cli, "sk", "hook", topic)["cursor"])
	code, out, _ = runCLI(t, "", "--config", cfg, "state", "show")
	require.Equal(t, 0, code)
	assert.Regexp(t, `hook\s+`+topic+`\s+`+ids[1], out)

	// A node holds the lock: skip waits, then fails, changing nothing.
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	require.NoError(t, err)
	lockKey := "/parley-xmpp/sk/locks/hook/" + url.PathEscape(topic)
	_, err = cli.Put(ctx, lockKey, "node-1", clientv3.WithLease(sess.Lease()))
	require.NoError(t, err)
	code, _, errOut = runCLI(t, "", "--config", cfg, "state", "skip", "--route", "hook", "--topic", topic, "--wait", "500ms")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "stop the node delivering it, or retry")
	assert.Equal(t, ids[1], savedCursor(t, cli, "sk", "hook", topic)["cursor"])
	require.NoError(t, sess.Close())

	code, _, errOut = runCLI(t, "", "--config", cfg, "state", "skip", "--route", "hook", "--topic", topic)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, ids[2], savedCursor(t, cli, "sk", "hook", topic)["cursor"])
	code, _, errOut = runCLI(t, "", "--config", cfg, "state", "skip", "--route", "hook", "--topic", topic)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "nothing to skip")
	assert.Equal(t, ids[2], savedCursor(t, cli, "sk", "hook", topic)["cursor"])
}

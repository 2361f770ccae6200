package serve

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Saving replaces the file whole and leaves no temp file behind; temp files a
// crash left are removed at start.
func TestStateFilesAreReplacedAtomically(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	rt := connectedRuntime(t, s, 0)
	topic := freshTopic("state")
	dir := t.TempDir()
	routeDir := filepath.Join(dir, "atomic")
	require.NoError(t, os.MkdirAll(routeDir, 0o700))
	leftover := filepath.Join(routeDir, ".x.json.tmp-123456")
	require.NoError(t, os.WriteFile(leftover, []byte("{"), 0o600))

	log, _ := testLogger(t)
	run := start(t, Options{Routes: []config.Route{stdoutRoute("atomic", topic, "newest")}, StateDir: dir,
		Backends: map[string]Backend{"": rt}, Stdout: &syncBuffer{}, Logger: log, Wait: 5 * time.Second})
	file := stateOf(t, dir, "atomic", topic)
	waitForState(t, file)
	ids := post(t, rt, topic, "s1", "s2", "s3")
	waitForCursor(t, file, seam.Cursor(ids[2]))
	run.stop(t)

	entries, err := os.ReadDir(routeDir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{filepath.Base(file.path)}, names, "only the state file: no temp file, the leftover removed")
	info, err := os.Stat(routeDir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	st, found, err := file.load()
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, topicState{Topic: string(topic), Cursor: seam.Cursor(ids[2])}, st)
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	f := stateFile{path: filepath.Join(dir, "~t.json")}
	_, found, err := f.load()
	require.NoError(t, err)
	assert.False(t, found)
	want := topicState{Topic: "T", Cursor: "c1", RelayLast: "r1"}
	require.NoError(t, f.save(want))
	require.NoError(t, f.save(want)) // replacing works too
	got, found, err := f.load()
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, want, got)
	data, err := os.ReadFile(f.path)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"cursor": "c1"`)
	assert.Contains(t, string(data), `"relay_last": "r1"`)
}

// Problems Run can see before it starts are errors at once, naming what is
// wrong; no route runs.
func TestSetupErrors(t *testing.T) {
	noLeaks(t)
	// Never connected: Run must fail before it uses it.
	rt, err := runtime.New(runtime.Config{Service: "xmpp://127.0.0.1:1"})
	require.NoError(t, err)
	backends := map[string]Backend{"": rt}
	topic := seam.Topic("General Chat")
	local, err := runtime.RoomLocalpart(topic)
	require.NoError(t, err)

	withState := func(content string) string {
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "r"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "r", local+".json"), []byte(content), 0o600))
		return dir
	}
	aFile := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(aFile, nil, 0o600))
	route := stdoutRoute("r", topic, "")

	cases := []struct {
		name    string
		options Options
		want    []string
	}{
		{"corrupt state file", Options{StateDir: withState(`{"cursor": `), Routes: []config.Route{route}},
			[]string{"corrupt", filepath.Join("r", local+".json")}},
		{"state without a cursor", Options{StateDir: withState(`{"topic": "General Chat"}`), Routes: []config.Route{route}},
			[]string{"corrupt", "no \"cursor\"", local + ".json"}},
		{"state of another topic", Options{StateDir: withState(`{"topic": "other", "cursor": "x"}`), Routes: []config.Route{route}},
			[]string{`topic "other"`}},
		{"state dir unwritable", Options{StateDir: aFile, Routes: []config.Route{route}},
			[]string{"serve.state_dir", "a-file"}},
		{"unknown server", Options{StateDir: t.TempDir(), Routes: []config.Route{{Name: "r", Server: "elsewhere",
			Topics: []string{"t"}, Sink: config.Sink{Stdout: &config.StdoutSink{}}}}},
			[]string{`route "r"`, `server "elsewhere"`}},
		{"unknown relay server", Options{StateDir: t.TempDir(), Routes: []config.Route{{Name: "r", Topics: []string{"t"},
			Sink: config.Sink{Relay: &config.RelaySink{Server: "elsewhere", Topic: "u"}}}}},
			[]string{"relay", `server "elsewhere"`}},
		{"route name outside the state dir", Options{StateDir: t.TempDir(), Routes: []config.Route{stdoutRoute("../up", topic, "")}},
			[]string{`serve.routes[0].name: "../up"`, "can't name a directory"}},
		{"two routes with one name", Options{StateDir: t.TempDir(), Routes: []config.Route{route, route}},
			[]string{`"r"`, "two routes"}},
		{"exec command not found", Options{StateDir: t.TempDir(), Routes: []config.Route{{Name: "r", Topics: []string{"t"},
			Sink: config.Sink{Exec: &config.ExecSink{Command: []string{"no-such-command-xyz", "--token=secret"}}}}}},
			[]string{"exec", "no-such-command-xyz"}},
		{"no sink", Options{StateDir: t.TempDir(), Routes: []config.Route{{Name: "r", Topics: []string{"t"}}}},
			[]string{"sink: exactly one of"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.options.Backends == nil {
				c.options.Backends = backends
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := Run(ctx, c.options)
			require.Error(t, err)
			require.NoError(t, ctx.Err(), "returned at once, not when ctx ended")
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "secret", "arguments may hold secrets")
		})
	}
}

func TestRelayKeyIsShortStableAndDistinct(t *testing.T) {
	secret := bytes.Repeat([]byte{1}, 32)
	key := func(secret []byte, route string, topic seam.Topic, id seam.BackendMsgID) string {
		k, err := relayKey(secret, route, topic, id)
		require.NoError(t, err)
		return k
	}
	k := key(secret, "route", "topic", "id-1")
	assert.Equal(t, k, key(secret, "route", "topic", "id-1"))
	assert.True(t, strings.HasPrefix(k, "relay-"))
	assert.Len(t, k, len("relay-")+32+16+16)
	assert.LessOrEqual(t, len(k), 128, "a PostOnce key holds at most 128 bytes")
	for _, other := range []string{key(secret, "route2", "topic", "id-1"), key(secret, "route", "topic2", "id-1"),
		key(secret, "route", "topic", "id-2"), key(secret, "rou", "te\x00topic", "id-1"),
		key(bytes.Repeat([]byte{2}, 32), "route", "topic", "id-1")} {
		assert.NotEqual(t, k, other)
	}
	_, err := relayKey(nil, "route", "topic", "id-1")
	assert.Error(t, err, "no key without a secret")
}

func TestEncode(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 8, time.FixedZone("X", 3600))
	m := Encode(seam.Message{Topic: "T", SenderHandle: "alice", Content: "hi @bob", Timestamp: at,
		BackendMsgID: "id", Cursor: "cur", Mentions: []seam.Handle{"bob"}})
	assert.Equal(t, Message{Topic: "T", ID: "id", Cursor: "cur", Sender: "alice", Timestamp: at.UTC(),
		Content: "hi @bob", Mentions: []string{"bob"}}, m)
	line, err := marshalLine(seam.Message{Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err, "a timestamp JSON can't hold doesn't make a message undeliverable")
	assert.True(t, strings.HasSuffix(string(line), "}\n"))
	assert.Contains(t, string(line), `"mentions":[]`, "mentions is [] when there are none, never left out")
}

// Two engines never share a state dir: the second is refused at once.
func TestStateDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockStateDir(dir)
	require.NoError(t, err)
	_, err = lockStateDir(dir)
	require.ErrorContains(t, err, "in use by another serve process")
	unlock()
	unlock2, err := lockStateDir(dir)
	require.NoError(t, err, "free again once released")
	unlock2()
}

// A topic's room localpart may hold 1023 bytes, far over a file name's limit:
// long ones get a shortened, hashed state file name; short ones keep theirs,
// so existing state stays readable.
func TestLongTopicsGetSafeStateFileNames(t *testing.T) {
	assert.Equal(t, "general.json", stateFileName("general"))
	long1, long2 := strings.Repeat("a", 1000)+"1", strings.Repeat("a", 1000)+"2"
	n1, n2 := stateFileName(long1), stateFileName(long2)
	assert.LessOrEqual(t, len(n1), maxStateName)
	assert.NotEqual(t, n1, n2, "names differ where the topics do, past the cut")
	assert.True(t, strings.HasSuffix(n1, ".json"))
	assert.Contains(t, n1, "+", "a hashed name can't be a plain one: localparts never hold '+'")

	// The engine prepares (and saves state for) topics that long.
	dir := t.TempDir()
	topics := []string{strings.Repeat("Long topic ", 60), strings.Repeat("Long topic ", 60) + "!", "general"}
	p, err := Prepare(Options{StateDir: dir, Routes: []config.Route{{Name: "r", Topics: topics, Sink: config.Sink{Stdout: &config.StdoutSink{}}}}})
	require.NoError(t, err)
	defer p.Close()
	for i, ft := range p.topics {
		assert.LessOrEqual(t, len(filepath.Base(ft.store.file.path)), maxStateName)
		require.NoError(t, ft.store.Save(context.Background(), State{Cursor: "c"}))
		st, found, err := ft.store.file.load()
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, topics[i], st.Topic)
	}
	p.Close()
	p, err = Prepare(Options{StateDir: dir, Routes: []config.Route{{Name: "r", Topics: topics, Sink: config.Sink{Stdout: &config.StdoutSink{}}}}})
	require.NoError(t, err, "prepared again: every state file is found and is its own topic's")
	for _, ft := range p.topics {
		assert.NotNil(t, ft.saved, "%s: its state is found", ft.t.Topic)
	}
	p.Close()
}

// Prepare holds the state dir's lock until Close (or the end of Run), and
// needs no server; Run refuses a route whose server has no backend.
func TestPrepareLocksAndRunBindsBackends(t *testing.T) {
	dir := t.TempDir()
	o := Options{StateDir: dir, Routes: []config.Route{{Name: "r", Server: "two", Topics: []string{"t"}, Sink: config.Sink{Stdout: &config.StdoutSink{}}}}}
	p, err := Prepare(o)
	require.NoError(t, err)
	_, err = Prepare(o)
	require.ErrorContains(t, err, "in use by another serve process")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = p.Run(ctx, map[string]Backend{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `serve.routes[0] (route "r")`)
	assert.Contains(t, err.Error(), `server "two"`)
	require.NoError(t, ctx.Err(), "returned at once")
	p2, err := Prepare(o)
	require.NoError(t, err, "Run released the lock")
	p2.Close()
}

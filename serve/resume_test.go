package serve

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

func stdoutRoute(name string, topic seam.Topic, startAt string) config.Route {
	return config.Route{Name: name, Topics: []string{string(topic)}, Start: startAt, Sink: config.Sink{Stdout: &config.StdoutSink{}}}
}

func idsOf(t *testing.T, lines []string) []seam.BackendMsgID {
	t.Helper()
	var ids []seam.BackendMsgID
	for _, line := range lines {
		var m Message
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		ids = append(ids, seam.BackendMsgID(m.ID))
	}
	return ids
}

// Run again on the same state dir delivers exactly what was posted while it was
// stopped: nothing twice, nothing skipped.
func TestRestartResumesAfterTheLastDelivery(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	rt := connectedRuntime(t, s, 0)
	topic := freshTopic("restart")
	dir := t.TempDir()
	log, _ := testLogger(t)
	file := stateOf(t, dir, "resumer", topic)
	route := stdoutRoute("resumer", topic, "newest")
	route.Batch = 2 // the backlog spans pages
	progress := &syncBuffer{}
	options := func(out *syncBuffer) Options {
		return Options{Routes: []config.Route{route}, StateDir: dir, Backends: map[string]Backend{"": rt},
			Stdout: out, Logger: log, Wait: 5 * time.Second,
			Progress: func(line string) { _, _ = progress.Write([]byte(line + "\n")) }}
	}

	first := &syncBuffer{}
	run := start(t, options(first))
	waitForState(t, file)
	delivered := post(t, rt, topic, "a1", "a2")
	waitForCursor(t, file, seam.Cursor(delivered[1]))
	run.stop(t)
	assert.Equal(t, delivered, idsOf(t, first.lines()))

	whileStopped := post(t, rt, topic, "b1", "b2", "b3")

	second := &syncBuffer{}
	run = start(t, options(second))
	waitForCursor(t, file, seam.Cursor(whileStopped[2]))
	run.stop(t)
	assert.Equal(t, whileStopped, idsOf(t, second.lines()), "exactly the messages posted while stopped")
	prefix := "route resumer: " + string(topic) + ": "
	assert.Contains(t, progress.lines(), prefix+"resuming after cursor "+string(delivered[1]))
	assert.Contains(t, progress.lines(), prefix+"2+ messages behind")
	assert.Contains(t, progress.lines(), prefix+"caught up (3 messages delivered)")
}

// start: "start" delivers the whole archive, oldest first.
func TestStartFromTheArchiveStart(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	rt := connectedRuntime(t, s, 0)
	topic := freshTopic("from start")
	ids := post(t, rt, topic, "c1", "c2", "c3")

	dir, out := t.TempDir(), &syncBuffer{}
	log, _ := testLogger(t)
	run := start(t, Options{Routes: []config.Route{stdoutRoute("whole", topic, "start")}, StateDir: dir,
		Backends: map[string]Backend{"": rt}, Stdout: out, Logger: log, Wait: 5 * time.Second})
	waitForCursor(t, stateOf(t, dir, "whole", topic), seam.Cursor(ids[2]))
	run.stop(t)
	assert.Equal(t, ids, idsOf(t, out.lines()))
}

// A saved cursor the archive doesn't know is reported, and the route goes on
// from the archive's start: it neither fails nor loops.
func TestUnknownSavedCursorRestartsFromTheArchiveStart(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	rt := connectedRuntime(t, s, 0)
	topic := freshTopic("unknown cursor")
	ids := post(t, rt, topic, "d1", "d2", "d3")

	dir, out := t.TempDir(), &syncBuffer{}
	file := stateOf(t, dir, "gap", topic)
	require.NoError(t, os.MkdirAll(dir+"/gap", 0o700))
	require.NoError(t, file.save(topicState{Topic: string(topic), Cursor: "1234567890123456"}))

	log, logged := testLogger(t)
	run := start(t, Options{Routes: []config.Route{stdoutRoute("gap", topic, "newest")}, StateDir: dir,
		Backends: map[string]Backend{"": rt}, Stdout: out, Logger: log, Wait: 5 * time.Second})
	waitForCursor(t, file, seam.Cursor(ids[2]))
	later := post(t, rt, topic, "d4")
	waitForCursor(t, file, seam.Cursor(later[0]))
	run.stop(t)

	assert.Equal(t, append(ids, later...), idsOf(t, out.lines()), "the whole archive once, then on as usual")
	assert.Contains(t, logged.String(), "level=ERROR")
	assert.Contains(t, logged.String(), "messages in between may have been lost")
}

// A relay posts every message once, in order, and a crash between a post and
// the save of its state (the state rolled back, or lost) posts nothing twice.
func TestRelayIsExactlyOnceAcrossCrashes(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	source := connectedRuntime(t, s, 0)
	other := connectedRuntime(t, s, 1) // the "other" server: another account
	from, to := freshTopic("relay from"), freshTopic("relay to")
	dir := t.TempDir()
	log, _ := testLogger(t)
	file := stateOf(t, dir, "relay", from)
	options := Options{
		Routes: []config.Route{{Name: "relay", Topics: []string{string(from)}, Start: "start",
			Sink: config.Sink{Relay: &config.RelaySink{Server: "other", Topic: string(to)}}}},
		StateDir: dir, Backends: map[string]Backend{"": source, "other": other}, Logger: log, Wait: 5 * time.Second,
	}
	relayed := func() []string { return contents(archive(t, other, to)) }

	ids := post(t, source, from, "m1", "m2")
	run := start(t, options)
	waitForCursor(t, file, seam.Cursor(ids[1]))
	run.stop(t)
	require.Equal(t, []string{"m1", "m2"}, relayed())
	afterTwo, err := os.ReadFile(file.path)
	require.NoError(t, err)

	ids = append(ids, post(t, source, from, "m3")...)
	run = start(t, options)
	afterThree := waitForCursor(t, file, seam.Cursor(ids[2]))
	run.stop(t)
	require.Equal(t, []string{"m1", "m2", "m3"}, relayed())
	require.NotEmpty(t, afterThree.RelayLast)

	// A crash after m3's post, before its state was saved: the state on disk
	// is still the one after m2.
	require.NoError(t, os.WriteFile(file.path, afterTwo, 0o600))
	run = start(t, options)
	st := waitForCursor(t, file, seam.Cursor(ids[2]))
	run.stop(t)
	assert.Equal(t, afterThree.RelayLast, st.RelayLast, "PostOnce found the earlier post")
	assert.Equal(t, []string{"m1", "m2", "m3"}, relayed(), "no duplicate after a rolled-back state")

	// The state lost altogether: start over from the source's start, and every
	// post is found in the destination's whole archive.
	require.NoError(t, os.Remove(file.path))
	run = start(t, options)
	waitForCursor(t, file, seam.Cursor(ids[2]))
	ids = append(ids, post(t, source, from, "m4")...)
	waitForCursor(t, file, seam.Cursor(ids[3]))
	run.stop(t)
	assert.Equal(t, []string{"m1", "m2", "m3", "m4"}, relayed(), "no duplicate after a lost state, and m4 once")
}

// An occupant of the destination who sees the source can compute an unkeyed
// relay key (a hash of the route, topic and message id) and post it first; the
// relay's keys are keyed with the state dir's secret, so that doesn't suppress
// the relayed message.
func TestRelayIsNotSuppressedByAForgedKey(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	source := connectedRuntime(t, s, 0)
	dest := connectedRuntime(t, s, 1)
	from, to := freshTopic("relay forged from"), freshTopic("relay forged to")
	ids := post(t, source, from, "m1")

	stranger, err := xmpptest.Dial(s, 2)
	require.NoError(t, err)
	defer stranger.Close()
	local, err := runtime.RoomLocalpart(to)
	require.NoError(t, err)
	room := local + "@" + s.MUC
	require.NoError(t, stranger.Join(room, "stranger"))
	sum := sha256.Sum256([]byte("relay\x00" + string(from) + "\x00" + string(ids[0])))
	_, err = stranger.PostWithOrigin(room, "forged", "relay-"+hex.EncodeToString(sum[:])[:32], "")
	require.NoError(t, err)

	dir := t.TempDir()
	log, _ := testLogger(t)
	file := stateOf(t, dir, "relay", from)
	run := start(t, Options{
		Routes: []config.Route{{Name: "relay", Topics: []string{string(from)}, Start: "start",
			Sink: config.Sink{Relay: &config.RelaySink{Server: "other", Topic: string(to)}}}},
		StateDir: dir, Backends: map[string]Backend{"": source, "other": dest}, Logger: log, Wait: 5 * time.Second,
	})
	waitForCursor(t, file, seam.Cursor(ids[0]))
	run.stop(t)
	assert.Equal(t, []string{"forged", "m1"}, contents(archive(t, dest, to)), "relayed despite the forged key")
}

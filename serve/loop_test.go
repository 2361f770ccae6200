package serve

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// A relay loop brings a message this engine relayed back into the source
// topic, with the engine's relay key as its origin-id: what another engine
// with the same secret relaying the destination back would post, or the
// engine's own relayed copy itself. The relay passes over it (counted, logged
// by its id, never its key or the secret) and relays the messages around it,
// in order, exactly once.
func TestRelayRefusesItsOwnRelayKeys(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	source := connectedRuntime(t, s, 0)
	dest := connectedRuntime(t, s, 1)
	from, to := freshTopic("loop from"), freshTopic("loop to")
	dir := t.TempDir()
	secret, err := loadSecret(dir) // made now: the engine reads the same
	require.NoError(t, err)
	ids := post(t, source, from, "m1")

	looper, err := xmpptest.Dial(s, 2)
	require.NoError(t, err)
	defer looper.Close()
	local, err := runtime.RoomLocalpart(from)
	require.NoError(t, err)
	room := local + "@" + s.MUC
	require.NoError(t, looper.Join(room, "looper"))
	// A route "back" of an engine with this secret, relaying `to` into `from`.
	back, err := relayKey(secret, "back", to, "an-id-in-to")
	require.NoError(t, err)
	cameBack, err := looper.PostWithOrigin(room, "came back", back, "")
	require.NoError(t, err)
	ids = append(ids, post(t, source, from, "m2")...)

	log, logged := testLogger(t)
	rec := newFakeRecorder()
	file := stateOf(t, dir, "relay", from)
	options := Options{
		Routes: []config.Route{{Name: "relay", Topics: []string{string(from)}, Start: "start",
			Sink: config.Sink{Relay: &config.RelaySink{Server: "other", Topic: string(to)}}}},
		StateDir: dir, Backends: map[string]Backend{"": source, "other": dest}, Logger: log, Metrics: rec, Wait: 5 * time.Second,
	}
	run := start(t, options)
	waitForCursor(t, file, seam.Cursor(ids[1]))
	run.stop(t)
	relayed := archive(t, dest, to)
	assert.Equal(t, []string{"m1", "m2"}, contents(relayed), "the message that came back is not relayed")
	assert.Equal(t, 1, rec.loopsRefused("relay"))
	delivered, _, _ := rec.counts("relay", from)
	assert.Equal(t, 2, delivered)
	assert.Contains(t, logged.String(), "relay loop")
	assert.Contains(t, logged.String(), cameBack, "logged by its id")
	assert.NotContains(t, logged.String(), back, "never the key")
	assert.NotContains(t, logged.String(), hex.EncodeToString(secret), "never the secret")

	// The loop at its shortest: the engine's relayed copy of m1, with the
	// origin-id it was posted under, read back from the destination and
	// posted into the source again.
	require.NotEmpty(t, relayed)
	_, own := ownRelayKey(secret, relayed[0].OriginID)
	require.True(t, own, "the relayed copy, read back, carries the engine's key: %q", relayed[0].OriginID)
	copied, err := looper.PostWithOrigin(room, relayed[0].Content, relayed[0].OriginID, "")
	require.NoError(t, err)
	later := post(t, source, from, "m3")
	run = start(t, options)
	waitForCursor(t, file, seam.Cursor(later[0]))
	run.stop(t)
	assert.Equal(t, []string{"m1", "m2", "m3"}, contents(archive(t, dest, to)), "in order, exactly once")
	assert.Equal(t, 2, rec.loopsRefused("relay"))
	assert.Contains(t, logged.String(), copied)
	assert.NotContains(t, logged.String(), relayed[0].OriginID)
}

// A chain of the engine's own relays (a → b → c, which the configuration
// allows) is no loop: what the first relay posted into b carries the
// engine's key, made by a relay into b, and the second relays it on.
func TestRelayChainIsNoLoop(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	source := connectedRuntime(t, s, 0)
	dest := connectedRuntime(t, s, 1)
	a, b, c := freshTopic("chain a"), freshTopic("chain b"), freshTopic("chain c")
	ids := post(t, source, a, "m1", "m2")
	dir := t.TempDir()
	log, logged := testLogger(t)
	rec := newFakeRecorder()
	relay := func(name string, from, to seam.Topic) config.Route {
		return config.Route{Name: name, Server: "other", Topics: []string{string(from)}, Start: "start",
			Sink: config.Sink{Relay: &config.RelaySink{Server: "other", Topic: string(to)}}}
	}
	first := relay("ab", a, b)
	first.Server = ""
	run := start(t, Options{
		Routes: []config.Route{first, relay("bc", b, c)}, StateDir: dir,
		Backends: map[string]Backend{"": source, "other": dest}, Logger: log, Metrics: rec, Wait: 5 * time.Second,
	})
	waitForCursor(t, stateOf(t, dir, "ab", a), seam.Cursor(ids[1]))
	require.Eventually(t, func() bool { return len(archive(t, dest, c)) >= 2 }, waitFor, 100*time.Millisecond,
		"the chain's second relay never relayed both")
	run.stop(t)
	assert.Equal(t, []string{"m1", "m2"}, contents(archive(t, dest, b)))
	assert.Equal(t, []string{"m1", "m2"}, contents(archive(t, dest, c)))
	assert.Zero(t, rec.loopsRefused("bc"))
	assert.NotContains(t, logged.String(), "relay loop")
}

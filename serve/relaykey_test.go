package serve

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// A relay key is "relay-" and 64 hex characters, an id XMPP carries, and this
// engine recognises any of its own from the key alone; another secret's key,
// a key with a changed character, a random origin-id and a key of the old
// format ("relay-" + 32 hex, before keys were self-authenticating) are not
// its own.
func TestRelayKeyIsRecognisedAsOwn(t *testing.T) {
	secret, other := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	k, err := relayKey(secret, "route", "topic", "id-1")
	require.NoError(t, err)
	require.Len(t, k, relayKeyLen)
	require.NoError(t, stanza.CheckID(k), "an origin-id XMPP carries")
	rest, _ := strings.CutPrefix(k, "relay-")
	assert.Equal(t, strings.Trim(rest, "0123456789abcdef"), "", "lower-case hex after the prefix")

	maker, ok := ownRelayKey(secret, k)
	require.True(t, ok, "our own key")
	want, err := makerTag(secret, "route", "topic")
	require.NoError(t, err)
	assert.Equal(t, want, maker, "the relay that made it")
	k2, err := relayKey(secret, "route", "topic", "id-2")
	require.NoError(t, err)
	maker2, ok := ownRelayKey(secret, k2)
	assert.True(t, ok)
	assert.Equal(t, maker, maker2, "one relay, one maker tag")
	k3, err := relayKey(secret, "route", "topic2", "id-1")
	require.NoError(t, err)
	maker3, ok := ownRelayKey(secret, k3)
	assert.True(t, ok)
	assert.NotEqual(t, maker, maker3, "another topic of the route is another relay")

	theirs, err := relayKey(other, "route", "topic", "id-1")
	require.NoError(t, err)
	oldFormat, err := runtime.OriginKey(secret, "relay", "route", "topic", "id-1")
	require.NoError(t, err)
	flipped := k[:len(k)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", k[len(k)-1])+1)%16])
	for name, id := range map[string]string{
		"another secret's key":       theirs,
		"a random origin-id":         rand.Text(),
		"a random relay-like id":     "relay-" + strings.Repeat("ab", 32),
		"the old format":             "relay-" + oldFormat,
		"its X and M, another tag":   flipped,
		"upper case":                 strings.ToUpper(k),
		"longer":                     k + "0",
		"no origin-id":               "",
		"the key without its prefix": strings.TrimPrefix(k, "relay-"),
	} {
		_, ok := ownRelayKey(secret, id)
		assert.False(t, ok, name)
	}
	_, ok = ownRelayKey(nil, k)
	assert.False(t, ok, "no secret, nothing is ours")
}

// The guard of a relay route's topic refuses a message carrying one of this
// engine's relay keys, unless one of its relays posts into that topic's room
// (a chain, A → B → C, which the configuration allows); other messages pass.
func TestLoopGuardRefusesOwnKeysButNotChains(t *testing.T) {
	secret := bytes.Repeat([]byte{1}, 32)
	relay := func(name, from, server, to string) config.Route {
		return config.Route{Name: name, Topics: []string{from},
			Sink: config.Sink{Relay: &config.RelaySink{Server: server, Topic: to}}}
	}
	o := Options{secret: secret, Routes: []config.Route{
		relay("ab", "a", "", "b"),
		relay("bc", "b", "", "c"),
		relay("xc", "x", "", "c"),
		{Name: "out", Topics: []string{"c"}, Sink: config.Sink{Stdout: &config.StdoutSink{}}},
	}}
	key := func(route string, topic seam.Topic) string {
		k, err := relayKey(secret, route, topic, "id")
		require.NoError(t, err)
		return k
	}
	msg := func(origin string) seam.Message { return seam.Message{BackendMsgID: "m", OriginID: origin} }

	onB := newLoopGuard(o, o.Routes[1], "b")
	require.NotNil(t, onB)
	assert.False(t, onB.refuses(msg(key("ab", "a"))), "a → b → c is a chain: ab posts into b")
	assert.True(t, onB.refuses(msg(key("bc", "b"))), "bc's own post come back to b: a loop")
	assert.True(t, onB.refuses(msg(key("xc", "x"))), "xc posts into c, not b")
	assert.True(t, onB.refuses(msg(key("elsewhere", "a"))), "a relay not in this configuration (another engine's)")
	assert.True(t, onB.refuses(msg(key("ab", "other"))), "a topic route ab doesn't relay")
	assert.False(t, onB.refuses(msg("")), "an ordinary message")
	assert.False(t, onB.refuses(msg(rand.Text())), "an ordinary message with an origin-id")
	other, err := relayKey(bytes.Repeat([]byte{2}, 32), "ab", "a", "id")
	require.NoError(t, err)
	assert.False(t, onB.refuses(msg(other)), "another secret's relay: not ours")

	onA := newLoopGuard(o, o.Routes[0], "a")
	assert.True(t, onA.refuses(msg(key("ab", "a"))), "nothing of ours relays into a")
	assert.True(t, onA.refuses(msg(key("bc", "b"))))
	assert.Nil(t, newLoopGuard(o, o.Routes[3], "c"), "a route that doesn't relay has no guard")

	// Rooms decide what "into" means: with RoomJID saying that b on server
	// two is b here, ab's posts into b@two pass on b.
	o.Routes[0] = relay("ab", "a", "two", "b")
	assert.True(t, newLoopGuard(o, o.Routes[1], "b").refuses(msg(key("ab", "a"))), "by name, b on two is another room")
	o.RoomJID = func(_, topic string) string { return topic + "@muc" }
	assert.False(t, newLoopGuard(o, o.Routes[1], "b").refuses(msg(key("ab", "a"))), "one room under two server names")
}

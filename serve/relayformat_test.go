package serve

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/seam"
)

// A relay with a format keeps the original sender; a formatted text too long
// for the destination is relayed as the content alone (the route never
// stalls on it).
func TestRelayFormatKeepsTheSender(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	source := connectedRuntime(t, s, 0)
	other := connectedRuntime(t, s, 1)
	from, to := freshTopic("relay fmt from"), freshTopic("relay fmt to")
	dir := t.TempDir()
	log, _ := testLogger(t)
	file := stateOf(t, dir, "relay", from)
	options := Options{
		Routes: []config.Route{{Name: "relay", Topics: []string{string(from)}, Start: "start",
			Sink: config.Sink{Relay: &config.RelaySink{Server: "other", Topic: string(to), Format: "<{sender}> {content} {{{topic}}}"}}}},
		StateDir: dir, Backends: map[string]Backend{"": source, "other": other}, Logger: log, Wait: 5 * time.Second,
	}
	long := strings.Repeat("x", source.MaxContentBytes()-2) // fits alone, not with the sender
	ids := post(t, source, from, "hello @bob", long)
	run := start(t, options)
	waitForCursor(t, file, seam.Cursor(ids[1]))
	run.stop(t)
	got := contents(archive(t, other, to))
	require.Len(t, got, 2)
	assert.Equal(t, "<"+source.Nick()+"> hello @bob {"+string(from)+"}", got[0])
	assert.Equal(t, long, got[1], "too long once formatted: the content alone")
}

func TestRelayFormatText(t *testing.T) {
	s := &relaySink{format: "[{topic}] <{sender}> {content} ({id} at {timestamp})"}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	m := seam.Message{Topic: "t", SenderHandle: "alice", Content: "hi", BackendMsgID: "id1", Timestamp: at}
	assert.Equal(t, "[t] <alice> hi (id1 at 2026-01-02T02:04:05Z)", s.text(m))
	assert.Equal(t, "hi", (&relaySink{}).text(m), "no format: the content alone")
}

package serve

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// A webhook that answers 400 for one message (a poison message) no longer
// holds up its topic: with on_exhausted: skip the later messages are
// delivered, and the poison one is logged by id (never its content) and
// counted, after a single attempt (a 400 is no retry's to mend).
func TestPoisonWebhookMessageIsSkipped(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	rt := connectedRuntime(t, s, 0)
	topic := freshTopic("poison webhook")

	var (
		mu       sync.Mutex
		refused  int
		accepted []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m Message
		_ = json.Unmarshal(body, &m)
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(m.Content, "poison") {
			refused++
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		accepted = append(accepted, m.Content)
	}))
	t.Cleanup(hook.Close)

	dir, rec := t.TempDir(), newFakeRecorder()
	log, logged := testLogger(t)
	run := start(t, Options{
		Routes: []config.Route{{
			Name: "to-hook", Topics: []string{string(topic)},
			Sink:        config.Sink{Webhook: &config.WebhookSink{URL: hook.URL}},
			OnExhausted: config.OnExhausted{Action: config.ExhaustedSkip},
			RetryWait:   config.Duration(10 * time.Millisecond), MaxRetryWait: config.Duration(50 * time.Millisecond),
		}},
		StateDir: dir, Backends: map[string]Backend{"": rt}, Logger: log, Metrics: rec, Wait: 5 * time.Second,
	})
	file := stateOf(t, dir, "to-hook", topic)
	waitForState(t, file)
	ids := post(t, rt, topic, "one", "poison content zqxj", "three", "four")
	waitForCursor(t, file, seam.Cursor(ids[3]))
	run.stop(t)

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"one", "three", "four"}, accepted, "the later messages delivered, in order")
	assert.Equal(t, 1, refused, "refused for good: one attempt")
	skipped, _, stopped := rec.policy()
	assert.Equal(t, map[string]int{"to-hook/refused": 1}, skipped)
	assert.Empty(t, stopped)
	delivered, _, _ := rec.counts("to-hook", topic)
	assert.Equal(t, 3, delivered)
	assert.Contains(t, logged.String(), "id="+string(ids[1]))
	assert.NotContains(t, logged.String(), "zqxj", "never the content (not hex: no id holds it)")
}

// An occupant posts a message too large for a relay's destination (here the
// destination's runtime takes 1000 bytes of content): it no longer stalls the
// relay. A route whose oversize is on_exhausted (the default) with
// on_exhausted: skip passes over it and relays the later messages; one with
// oversize: split relays it in parts, in order, then the later messages.
func TestOversizeRelayDoesNotStall(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	source := connectedRuntime(t, s, 0)
	dest, err := runtime.New(runtime.Config{
		Service: "xmpp://" + s.Addr, Domain: s.Domain, MUCService: s.MUC,
		Username: s.Accounts[1][0], Password: s.Accounts[1][1],
		MaxContentBytes: 1000, // the destination's limit
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = dest.Disconnect(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, dest.Connect(ctx))

	from, toSkip, toSplit := freshTopic("oversize from"), freshTopic("oversize skip"), freshTopic("oversize split")
	big := strings.Repeat("0123456789 ", 250) // 2750 bytes
	ids := post(t, source, from, "before", big, "after one", "after two")

	dir, rec := t.TempDir(), newFakeRecorder()
	log, logged := testLogger(t)
	relay := func(name string, to seam.Topic, oversize string) config.Route {
		return config.Route{Name: name, Topics: []string{string(from)}, Start: "start",
			Sink:        config.Sink{Relay: &config.RelaySink{Server: "other", Topic: string(to), Oversize: oversize}},
			OnExhausted: config.OnExhausted{Action: config.ExhaustedSkip},
			RetryWait:   config.Duration(10 * time.Millisecond), MaxRetryWait: config.Duration(50 * time.Millisecond)}
	}
	run := start(t, Options{
		Routes:   []config.Route{relay("skip", toSkip, ""), relay("split", toSplit, config.OversizeSplit)},
		StateDir: dir, Backends: map[string]Backend{"": source, "other": dest}, Logger: log, Metrics: rec, Wait: 5 * time.Second,
	})
	waitForCursor(t, stateOf(t, dir, "skip", from), seam.Cursor(ids[3]))
	waitForCursor(t, stateOf(t, dir, "split", from), seam.Cursor(ids[3]))
	run.stop(t)

	assert.Equal(t, []string{"before", "after one", "after two"}, contents(archive(t, dest, toSkip)))
	skipped, _, stopped := rec.policy()
	assert.Equal(t, map[string]int{"skip/refused": 1}, skipped)
	assert.Empty(t, stopped)
	assert.Contains(t, logged.String(), "id="+string(ids[1]))

	got := contents(archive(t, dest, toSplit))
	require.Greater(t, len(got), 4, "the big one in parts: %d", len(got))
	assert.Equal(t, "before", got[0])
	assert.Equal(t, []string{"after one", "after two"}, got[len(got)-2:])
	assert.Equal(t, big, strings.Join(got[1:len(got)-2], ""), "the parts, in order, make the whole")
	for _, part := range got[1 : len(got)-2] {
		assert.LessOrEqual(t, len(part), 1000)
	}
}

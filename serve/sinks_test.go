package serve

import (
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
	"github.com/parley-go/parley-xmpp/seam"
)

// A stdout route writes each message posted after it started as one JSON line,
// in order, once; what was posted before it started is not its business.
func TestStdoutRoute(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	rt := connectedRuntime(t, s, 0)
	topic := freshTopic("stdout")
	before := post(t, rt, topic, "posted before serve started")

	dir, out, rec := t.TempDir(), &syncBuffer{}, newFakeRecorder()
	log, _ := testLogger(t)
	progress := &syncBuffer{}
	run := start(t, Options{
		Routes:   []config.Route{{Name: "to-stdout", Topics: []string{string(topic)}, Sink: config.Sink{Stdout: &config.StdoutSink{}}}},
		StateDir: dir, Backends: map[string]Backend{"": rt}, Stdout: out, Logger: log, Metrics: rec,
		Progress: func(line string) { _, _ = progress.Write([]byte(line + "\n")) }, Wait: 5 * time.Second,
	})
	file := stateOf(t, dir, "to-stdout", topic)
	st := waitForState(t, file)
	require.Equal(t, seam.Cursor(before[0]), st.Cursor, "start newest: after the newest message, saved at once")

	sent := []string{"one", "two for @bob and @carol", `three <&> "quoted"`}
	ids := post(t, rt, topic, sent...)
	require.Eventually(t, func() bool { return len(out.lines()) >= len(sent) }, waitFor, tick)
	run.stop(t)

	lines := out.lines()
	require.Len(t, lines, len(sent), "each message once")
	for i, line := range lines {
		var fields map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &fields), line)
		var m Message
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		assert.Equal(t, string(topic), m.Topic)
		assert.Equal(t, string(ids[i]), m.ID, "in order")
		assert.Equal(t, m.ID, m.Cursor, "the runtime's cursor is the message's stanza-id")
		assert.Equal(t, rt.Nick(), m.Sender)
		assert.WithinDuration(t, time.Now(), m.Timestamp, time.Minute)
		assert.Equal(t, sent[i], m.Content)
		if i == 1 {
			assert.Equal(t, []string{"bob", "carol"}, m.Mentions)
		} else {
			assert.Equal(t, []any{}, fields["mentions"], "[] when there are none, never left out")
		}
		for _, key := range []string{"topic", "id", "cursor", "sender", "timestamp", "content", "mentions"} {
			assert.Contains(t, fields, key)
		}
	}
	assert.Contains(t, lines[2], `<&>`, "no HTML escaping")

	delivered, failures, backlog := rec.counts("to-stdout", topic)
	assert.Equal(t, len(sent), delivered)
	assert.Zero(t, failures)
	assert.Zero(t, backlog)
	saved, _, err := file.load()
	require.NoError(t, err)
	assert.Equal(t, seam.Cursor(ids[2]), saved.Cursor)
	assert.Contains(t, progress.String(), "route to-stdout: "+string(topic)+": starting after the newest message")
}

// A webhook route retries a message its receiver refuses, then moves on: every
// message is acknowledged once, in order, with its id as Idempotency-Key and
// the configured headers; the headers' secrets never reach the log.
func TestWebhookRoute(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	rt := connectedRuntime(t, s, 0)
	topic := freshTopic("webhook")

	type request struct {
		msg     Message
		headers http.Header
	}
	var (
		mu       sync.Mutex
		refused  int
		accepted []request
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var m Message
		if err != nil || r.Method != http.MethodPost || json.Unmarshal(body, &m) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if m.Content == "two" && refused < 2 {
			refused++
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		accepted = append(accepted, request{msg: m, headers: r.Header.Clone()})
		w.WriteHeader(http.StatusNoContent) // any 2xx
	}))
	t.Cleanup(hook.Close)

	dir, rec := t.TempDir(), newFakeRecorder()
	log, logged := testLogger(t)
	run := start(t, Options{
		Routes: []config.Route{{
			Name: "to-hook", Topics: []string{string(topic)},
			Sink: config.Sink{Webhook: &config.WebhookSink{
				URL:     hook.URL + "/hook?token=query-secret",
				Headers: map[string]string{"Authorization": "Bearer header-secret", "X-Parley-Test": "yes"},
			}},
			RetryWait: config.Duration(10 * time.Millisecond), MaxRetryWait: config.Duration(50 * time.Millisecond),
		}},
		StateDir: dir, Backends: map[string]Backend{"": rt}, Logger: log, Metrics: rec, Wait: 5 * time.Second,
	})
	waitForState(t, stateOf(t, dir, "to-hook", topic))

	sent := []string{"one", "two", "three"}
	ids := post(t, rt, topic, sent...)
	waitForCursor(t, stateOf(t, dir, "to-hook", topic), seam.Cursor(ids[2]))
	run.stop(t)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, accepted, len(sent), "each message acknowledged once")
	for i, r := range accepted {
		assert.Equal(t, string(ids[i]), r.msg.ID, "in order")
		assert.Equal(t, sent[i], r.msg.Content)
		assert.Equal(t, string(ids[i]), r.headers.Get("Idempotency-Key"))
		assert.Equal(t, "application/json", r.headers.Get("Content-Type"))
		assert.Equal(t, "Bearer header-secret", r.headers.Get("Authorization"))
		assert.Equal(t, "yes", r.headers.Get("X-Parley-Test"))
	}
	assert.Equal(t, 2, refused)
	delivered, failures, _ := rec.counts("to-hook", topic)
	assert.Equal(t, len(sent), delivered)
	assert.Equal(t, 2, failures, "each refused attempt counted")
	assert.Contains(t, logged.String(), "500 Internal Server Error")
	assert.NotContains(t, logged.String(), "header-secret")
	assert.NotContains(t, logged.String(), "query-secret")
}

// An exec route runs its command once per message, the JSON on its stdin and
// the route, topic and message id in its environment.
func TestExecRoute(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	rt := connectedRuntime(t, s, 0)
	topic := freshTopic("exec")
	out := filepath.Join(t.TempDir(), "out.jsonl")
	t.Setenv("OUT", out)

	dir := t.TempDir()
	log, _ := testLogger(t)
	run := start(t, Options{
		Routes: []config.Route{{
			Name: "to-exec", Topics: []string{string(topic)},
			Sink: config.Sink{Exec: &config.ExecSink{Command: []string{"sh", "-c",
				`printf '%s\t%s\t%s\n' "$PARLEY_ROUTE" "$PARLEY_TOPIC" "$PARLEY_MESSAGE_ID" >> "$OUT.env" && cat >> "$OUT"`}}},
		}},
		StateDir: dir, Backends: map[string]Backend{"": rt}, Logger: log, Wait: 5 * time.Second,
	})
	file := stateOf(t, dir, "to-exec", topic)
	waitForState(t, file)

	sent := []string{"one", "two\nlines", "three"}
	ids := post(t, rt, topic, sent...)
	waitForCursor(t, file, seam.Cursor(ids[2]))
	run.stop(t)

	data, err := os.ReadFile(out)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	require.Len(t, lines, len(sent), "one run per message")
	for i, line := range lines {
		var m Message
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		assert.Equal(t, string(ids[i]), m.ID)
		assert.Equal(t, sent[i], m.Content)
	}
	env, err := os.ReadFile(out + ".env")
	require.NoError(t, err)
	var want string
	for _, id := range ids {
		want += "to-exec\t" + string(topic) + "\t" + string(id) + "\n"
	}
	assert.Equal(t, want, string(env))
}

// A sink's line carries the relations (issue 23), and a plain message's line
// is what it was before they existed (mentions always present).
func TestEncodeRelations(t *testing.T) {
	plain := seam.Message{Topic: "t", BackendMsgID: "1", Cursor: "1", SenderHandle: "a", Content: "hi"}
	b, err := marshalLine(plain)
	require.NoError(t, err)
	require.Equal(t, `{"topic":"t","id":"1","cursor":"1","sender":"a","timestamp":"0001-01-01T00:00:00Z","content":"hi","mentions":[]}`+"\n", string(b))

	b, err = marshalLine(seam.Message{Topic: "t", BackendMsgID: "2", Cursor: "2", SenderHandle: "a", Content: "ok",
		InReplyTo: "0", Replaces: "1", Attachments: []seam.Attachment{{URL: "https://x/y", MediaType: "image/png"}}})
	require.NoError(t, err)
	require.Contains(t, string(b), `"content":"ok","mentions":[],"in_reply_to":"0","replaces":"1","attachments":[{"url":"https://x/y","media_type":"image/png"}]}`)

	b, err = marshalLine(seam.Message{Topic: "t", BackendMsgID: "3", Cursor: "3", SenderHandle: "b", ReactsTo: "1"})
	require.NoError(t, err)
	require.Contains(t, string(b), `"content":"","mentions":[],"reacts_to":"1","reactions":[]}`, "every reaction withdrawn: an empty set, not none")

	b, err = marshalLine(seam.Message{Topic: "t", BackendMsgID: "4", Cursor: "4", SenderHandle: "room", Retracts: "1", Moderated: true})
	require.NoError(t, err)
	require.Contains(t, string(b), `"retracts":"1","moderated":true}`)
}

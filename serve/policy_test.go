package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/seam"
)

// scriptedSink answers each delivery as answer says, and records every attempt.
type scriptedSink struct {
	mu       sync.Mutex
	answer   func(d delivery, attempt int) error
	attempts map[seam.BackendMsgID]int
	taken    []delivery // acknowledged, in order
}

func newScriptedSink(answer func(d delivery, attempt int) error) *scriptedSink {
	return &scriptedSink{answer: answer, attempts: map[seam.BackendMsgID]int{}}
}

func (s *scriptedSink) deliver(_ context.Context, d delivery) (seam.BackendMsgID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[d.msg.BackendMsgID]++
	if err := s.answer(d, s.attempts[d.msg.BackendMsgID]); err != nil {
		return "", err
	}
	s.taken = append(s.taken, d)
	return "", nil
}

func (*scriptedSink) close() {}

func (s *scriptedSink) ids() []seam.BackendMsgID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []seam.BackendMsgID
	for _, d := range s.taken {
		ids = append(ids, d.msg.BackendMsgID)
	}
	return ids
}

var errFlaky = errors.New("the sink is down")

// policyWorker is a worker of route r (topic T) whose state lives in a temp
// dir, delivering to main (and dl, its dead-letter sink).
func policyWorker(t *testing.T, r config.Route, main, dl sink) (*worker, *fakeRecorder, *syncBuffer) {
	t.Helper()
	r.Name, r.Topics = "r", []string{"T"}
	r.RetryWait, r.MaxRetryWait = config.Duration(time.Millisecond), config.Duration(2*time.Millisecond)
	r = withRouteDefaults(r)
	checked := r
	checked.Sink = config.Sink{Stdout: &config.StdoutSink{}} // the worker gets main instead
	require.NoError(t, checked.Check(0))
	log, logged := testLogger(t)
	rec := newFakeRecorder()
	w := newWorker(withDefaults(Options{Logger: log, Metrics: rec}), r, "T", State{}, true)
	w.store = fileStore{file: stateFile{path: filepath.Join(t.TempDir(), "T.json")}, topic: "T"}
	w.sink, w.deadLetter = main, dl
	return w, rec, logged
}

// page is three messages m1, m2, m3, their content secret-<id>.
func page() seam.FetchRecentResult {
	var p seam.FetchRecentResult
	for i := 1; i <= 3; i++ {
		id := seam.BackendMsgID(fmt.Sprintf("m%d", i))
		p.Messages = append(p.Messages, seam.Message{Topic: "T", BackendMsgID: id, Cursor: seam.Cursor(id), Content: "secret-" + string(id)})
	}
	p.NextCursor = "m3"
	return p
}

func savedCursor(t *testing.T, w *worker) seam.Cursor {
	t.Helper()
	st, found, err := w.store.(fileStore).file.load()
	require.NoError(t, err)
	require.True(t, found)
	return st.Cursor
}

// max_attempts counts the attempts at a message; on_exhausted: skip then
// passes over it (logged with its id, never its content, and counted), and
// the later messages are delivered.
func TestPolicyMaxAttemptsThenSkip(t *testing.T) {
	main := newScriptedSink(func(d delivery, _ int) error {
		if d.msg.BackendMsgID == "m2" {
			return errFlaky
		}
		return nil
	})
	w, rec, logged := policyWorker(t, config.Route{MaxAttempts: 3, OnExhausted: config.OnExhausted{Action: config.ExhaustedSkip}}, main, nil)
	require.True(t, w.forward(context.Background(), page()))

	assert.Equal(t, []seam.BackendMsgID{"m1", "m3"}, main.ids())
	assert.Equal(t, 3, main.attempts["m2"], "max_attempts attempts, no more")
	assert.Equal(t, seam.Cursor("m3"), savedCursor(t, w))
	skipped, dead, stopped := rec.policy()
	assert.Equal(t, map[string]int{"r/max_attempts": 1}, skipped)
	assert.Empty(t, dead)
	assert.Empty(t, stopped)
	delivered, failures, _ := rec.counts("r", "T")
	assert.Equal(t, 2, delivered, "a skipped message is not counted delivered")
	assert.Equal(t, 3, failures)
	assert.Contains(t, logged.String(), "skipped")
	assert.Contains(t, logged.String(), "id=m2")
	assert.NotContains(t, logged.String(), "secret-m2", "never the content")
}

// Without max_attempts a failing message is retried until the sink takes it,
// as before on_exhausted existed.
func TestPolicyUnlimitedByDefault(t *testing.T) {
	main := newScriptedSink(func(d delivery, attempt int) error {
		if d.msg.BackendMsgID == "m2" && attempt < 20 {
			return errFlaky
		}
		return nil
	})
	w, rec, _ := policyWorker(t, config.Route{OnExhausted: config.OnExhausted{Action: config.ExhaustedSkip}}, main, nil)
	require.True(t, w.forward(context.Background(), page()))
	assert.Equal(t, []seam.BackendMsgID{"m1", "m2", "m3"}, main.ids())
	assert.Equal(t, 20, main.attempts["m2"])
	skipped, _, _ := rec.policy()
	assert.Empty(t, skipped)
}

// An error no retry can mend goes to on_exhausted at the first attempt, even
// with unlimited attempts: ErrRefused from a sink, invalid or too large
// content from a relay's destination.
func TestPolicyRefusedForGoodSkipsAtOnce(t *testing.T) {
	for _, refusal := range []error{
		fmt.Errorf("webhook answered 400 Bad Request: %w", ErrRefused),
		fmt.Errorf("relay: %w: %w: too big", seam.ErrContentTooLarge, seam.ErrInvalidContent),
		seam.ErrPoisonMessage,
	} {
		main := newScriptedSink(func(d delivery, _ int) error {
			if d.msg.BackendMsgID == "m2" {
				return refusal
			}
			return nil
		})
		w, rec, _ := policyWorker(t, config.Route{OnExhausted: config.OnExhausted{Action: config.ExhaustedSkip}}, main, nil)
		require.True(t, w.forward(context.Background(), page()))
		assert.Equal(t, 1, main.attempts["m2"], "no retry: %v", refusal)
		assert.Equal(t, []seam.BackendMsgID{"m1", "m3"}, main.ids())
		skipped, _, _ := rec.policy()
		assert.Equal(t, map[string]int{"r/refused": 1}, skipped)
	}
}

// on_exhausted: dead_letter delivers the message to the dead-letter sink
// (retried until it takes it), with why, then passes over it.
func TestPolicyDeadLetter(t *testing.T) {
	main := newScriptedSink(func(d delivery, _ int) error {
		if d.msg.BackendMsgID == "m2" {
			return errFlaky
		}
		return nil
	})
	dl := newScriptedSink(func(_ delivery, attempt int) error {
		if attempt < 3 {
			return errFlaky // the dead-letter sink is retried too
		}
		return nil
	})
	w, rec, logged := policyWorker(t, config.Route{MaxAttempts: 2, OnExhausted: config.OnExhausted{
		Action: config.ExhaustedDeadLetter, DeadLetter: &config.Sink{Stdout: &config.StdoutSink{}}}}, main, dl)
	require.True(t, w.forward(context.Background(), page()))

	assert.Equal(t, []seam.BackendMsgID{"m1", "m3"}, main.ids())
	assert.Equal(t, 2, main.attempts["m2"])
	require.Equal(t, []seam.BackendMsgID{"m2"}, dl.ids())
	var got Message
	require.NoError(t, json.Unmarshal(dl.taken[0].line, &got))
	assert.Equal(t, "secret-m2", got.Content, "the dead letter carries the message")
	require.NotNil(t, got.DeadLetter)
	assert.Equal(t, DeadLetter{Route: "r", Reason: "max_attempts", Attempts: 2, Error: errFlaky.Error()}, *got.DeadLetter)
	assert.Equal(t, seam.Cursor("m3"), savedCursor(t, w))
	skipped, dead, _ := rec.policy()
	assert.Empty(t, skipped)
	assert.Equal(t, map[string]int{"r": 1}, dead)
	assert.Contains(t, logged.String(), "dead-lettered")
	assert.NotContains(t, logged.String(), "secret-m2")
}

// A dead-letter sink that refuses the message for good stops the topic: the
// dead letter is where nothing is lost.
func TestPolicyDeadLetterRefusedStops(t *testing.T) {
	main := newScriptedSink(func(d delivery, _ int) error {
		if d.msg.BackendMsgID == "m2" {
			return ErrRefused
		}
		return nil
	})
	dl := newScriptedSink(func(delivery, int) error { return ErrRefused })
	w, rec, _ := policyWorker(t, config.Route{OnExhausted: config.OnExhausted{
		Action: config.ExhaustedDeadLetter, DeadLetter: &config.Sink{Stdout: &config.StdoutSink{}}}}, main, dl)
	require.False(t, w.forward(context.Background(), page()))
	assert.Equal(t, halted, w.phase)
	assert.Equal(t, seam.Cursor("m1"), savedCursor(t, w))
	_, dead, stopped := rec.policy()
	assert.Empty(t, dead)
	assert.Equal(t, map[string]int{"r/T": 1}, stopped)
}

// on_exhausted: stop (the default) stops the topic on the message: its
// cursor stays before it, nothing after it is attempted, and it is reported.
func TestPolicyStop(t *testing.T) {
	main := newScriptedSink(func(d delivery, _ int) error {
		if d.msg.BackendMsgID == "m2" {
			return errFlaky
		}
		return nil
	})
	w, rec, logged := policyWorker(t, config.Route{MaxAttempts: 2}, main, nil)
	require.False(t, w.forward(context.Background(), page()), "the worker ends")
	assert.Equal(t, halted, w.phase)
	assert.Equal(t, []seam.BackendMsgID{"m1"}, main.ids())
	assert.Equal(t, 2, main.attempts["m2"])
	assert.Zero(t, main.attempts["m3"], "nothing after it")
	assert.Equal(t, seam.Cursor("m1"), savedCursor(t, w))
	_, _, stopped := rec.policy()
	assert.Equal(t, map[string]int{"r/T": 1}, stopped)
	assert.Contains(t, logged.String(), "state skip")
	assert.Contains(t, logged.String(), "id=m2")
}

// A webhook's 400, 413, 415 and 422 refuse the message itself; other
// answers are retried (401 and 404 are the endpoint's, not the message's).
func TestWebhookRefusals(t *testing.T) {
	for code, refused := range map[int]bool{400: true, 413: true, 415: true, 422: true,
		401: false, 403: false, 404: false, 408: false, 429: false, 500: false, 503: false} {
		assert.Equal(t, refused, refusesContent(code), "%d", code)
	}
}

// fakeDest is a relay destination that takes content of at most max bytes
// and remembers what it was posted, by key.
type fakeDest struct {
	seam.Backend // unused
	max          int
	posts        []fakePost
}

type fakePost struct {
	key, content string
	after        seam.BackendMsgID
}

func (f *fakeDest) CheckPostOnce(_ seam.Topic, _, content string) error {
	if len(content) > f.max {
		return fmt.Errorf("%w: %w: %d bytes", seam.ErrContentTooLarge, seam.ErrInvalidContent, len(content))
	}
	return nil
}

func (f *fakeDest) MaxContentBytes() int { return 1 << 16 }

func (f *fakeDest) PostOnce(_ context.Context, _ seam.Topic, key, content string, after *seam.Cursor) (seam.BackendMsgID, error) {
	if err := f.CheckPostOnce("", key, content); err != nil {
		return "", err
	}
	for i, p := range f.posts {
		if p.key == key {
			return seam.BackendMsgID(fmt.Sprint("d", i)), nil // found: not posted again
		}
	}
	var a seam.BackendMsgID
	if after != nil {
		a = seam.BackendMsgID(*after)
	}
	f.posts = append(f.posts, fakePost{key: key, content: content, after: a})
	return seam.BackendMsgID(fmt.Sprint("d", len(f.posts)-1)), nil
}

// A relay with oversize: split posts content too large for the destination
// as parts, in order, each after the one before, each under a key of its own;
// delivered again (a crash before the cursor was saved), it posts none of
// them twice.
func TestRelaySplit(t *testing.T) {
	dest := &fakeDest{max: 12}
	s := &relaySink{dest: dest, topic: "to", oversize: config.OversizeSplit, secret: make([]byte, 32), log: slog.New(slog.DiscardHandler)}
	content := "alpha beta gamma delta epsilon zeta"
	d := delivery{route: "r", msg: seam.Message{Topic: "T", BackendMsgID: "m1", Content: content}, relayLast: "d-before"}
	id, err := s.deliver(context.Background(), d)
	require.NoError(t, err)

	var joined string
	keys := map[string]bool{}
	for i, p := range dest.posts {
		assert.LessOrEqual(t, len(p.content), 12)
		joined += p.content
		keys[p.key] = true
		if i == 0 {
			assert.Equal(t, seam.BackendMsgID("d-before"), p.after, "the first after the last relayed")
		} else {
			assert.Equal(t, seam.BackendMsgID(fmt.Sprint("d", i-1)), p.after, "each after the one before")
		}
	}
	assert.Equal(t, content, joined, "in order, nothing lost")
	assert.Greater(t, len(dest.posts), 2)
	assert.Len(t, keys, len(dest.posts), "a key per part")
	assert.Equal(t, seam.BackendMsgID(fmt.Sprint("d", len(dest.posts)-1)), id, "relay_last is the last part")
	assert.True(t, strings.HasSuffix(dest.posts[0].content, " "), "cut after a space: %q", dest.posts[0].content)

	n := len(dest.posts)
	again, err := s.deliver(context.Background(), d)
	require.NoError(t, err)
	assert.Len(t, dest.posts, n, "exactly once per part")
	assert.Equal(t, id, again)

	// truncate: one post, its start and a mark, under the message's key.
	dest = &fakeDest{max: 12}
	s.dest, s.oversize = dest, config.OversizeTruncate
	_, err = s.deliver(context.Background(), d)
	require.NoError(t, err)
	require.Len(t, dest.posts, 1)
	assert.Equal(t, "alpha bet…", dest.posts[0].content)
	key, err := relayKey(s.secret, "r", "T", "m1")
	require.NoError(t, err)
	assert.Equal(t, key, dest.posts[0].key)

	// on_exhausted (the default): refused for good, nothing posted.
	dest = &fakeDest{max: 12}
	s.dest, s.oversize = dest, ""
	_, err = s.deliver(context.Background(), d)
	require.Error(t, err)
	assert.True(t, refusedForGood(err), "%v", err)
	assert.Empty(t, dest.posts)
}

// longestFit cuts at rune boundaries.
func TestLongestFit(t *testing.T) {
	fits := func(n int) func(string) bool { return func(s string) bool { return len(s) <= n } }
	assert.Equal(t, 4, longestFit("ééé", fits(5)), "é is two bytes: cut between runes")
	assert.Equal(t, 0, longestFit("é", fits(1)))
	assert.Equal(t, 6, longestFit("ab\ncdefghij", fits(6)), "no break in the last quarter")
	assert.Equal(t, 8, longestFit("abcdefg ijkl", fits(9)), "after the space")
}

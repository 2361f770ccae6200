package runtime_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
)

// logBuffer collects a logger's JSON records; safe for the runtime's
// goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records are the records logged so far.
func (l *logBuffer) records(t testing.TB) []map[string]any {
	l.mu.Lock()
	data := l.b.String()
	l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), "%q", sc.Text())
		out = append(out, rec)
	}
	return out
}

// find is the first record with message msg, or nil.
func (l *logBuffer) find(t testing.TB, msg string) map[string]any {
	for _, r := range l.records(t) {
		if r["msg"] == msg {
			return r
		}
	}
	return nil
}

func jsonLogger(w *logBuffer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// A reconnect is logged at INFO with its cause (the loss, then the reconnect,
// which names the loss, not the last failed attempt), and OnStateChange says
// when the next login attempt comes (issue 19).
func TestReconnectLogsItsCauseAtInfo(t *testing.T) {
	s := xmpptest.Require(t)
	proxy := xmpptest.NewRecordingProxy(t, s.Addr)
	var logs logBuffer
	var mu sync.Mutex
	var changes []runtime.StateChange
	online := make(chan struct{}, 4)
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.Service = "xmpp://" + proxy.Addr
		c.Logger = jsonLogger(&logs, slog.LevelInfo)
		c.ReconnectWait = 200 * time.Millisecond
		c.DialTimeout = 500 * time.Millisecond // a login into the silent proxy fails soon
		c.OnStateChange = func(sc runtime.StateChange) {
			mu.Lock()
			changes = append(changes, sc)
			mu.Unlock()
			if sc.To == runtime.Online {
				online <- struct{}{}
			}
		}
	}))
	<-online
	require.NotNil(t, logs.find(t, "online"), "the first login is logged as online")
	// A link that lived more than a second reconnects at once (session flapWindow).
	time.Sleep(1100 * time.Millisecond)
	proxy.SetSilent(true) // the link drops; the next login attempts hang and fail
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, sc := range changes {
			if sc.From == runtime.Reconnecting && sc.To == runtime.Reconnecting {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "a failed login attempt")
	proxy.SetSilent(false)
	select {
	case <-online:
	case <-time.After(15 * time.Second):
		t.Fatal("never back online")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, rt.Disconnect(ctx))

	lost := logs.find(t, "connection lost; reconnecting")
	require.NotNil(t, lost, "the loss is logged")
	assert.Equal(t, "INFO", lost["level"])
	assert.NotEmpty(t, lost["err"], "with its cause")
	back := logs.find(t, "reconnected")
	require.NotNil(t, back, "the reconnect is logged:\n%v", logs.records(t))
	assert.Equal(t, "INFO", back["level"])
	assert.Equal(t, lost["err"], back["cause"], "the reconnect names the loss's cause")
	assert.GreaterOrEqual(t, back["attempt"], 2.0, "it took a failed attempt and a good one")
	assert.NotEmpty(t, back["down"])

	mu.Lock()
	defer mu.Unlock()
	var sawRetry bool
	for _, sc := range changes {
		if sc.From == runtime.Reconnecting && sc.To == runtime.Reconnecting {
			assert.Error(t, sc.Err, "a failed attempt says why")
			assert.Positive(t, sc.RetryIn, "a failed attempt says when the next comes")
			assert.Positive(t, sc.Attempt)
			sawRetry = true
		}
	}
	assert.True(t, sawRetry)
}

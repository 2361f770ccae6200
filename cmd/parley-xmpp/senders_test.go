package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/serve"
)

// serveConfig writes a configuration for the test server with a serve block
// (state_dir and routes as YAML lines under serve:).
func serveConfig(t *testing.T, s xmpptest.Server, serveBlock string) string {
	t.Helper()
	t.Setenv("PARLEY_XMPP_PASS", s.Accounts[0][1])
	p := filepath.Join(t.TempDir(), "serve.yaml")
	require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf("backend_config:\n  service: \"xmpp://%s\"\n  domain: %q\n  muc_service: %q\n  username: %q\nserve:\n%s",
		s.Addr, s.Domain, s.MUC, s.Accounts[0][0], serveBlock)), 0o600))
	return p
}

// A route with senders delivers only their messages, in order; the others'
// are not delivered, the route moves past them, and they are counted in
// parley_xmpp_messages_filtered_total.
func TestServeRouteSenders(t *testing.T) {
	s := xmpptest.Require(t)
	topic := topicFor(t)
	room := topic + "@" + s.MUC // a lower-case topic is its own localpart
	friend, err := xmpptest.Dial(s, 3)
	require.NoError(t, err)
	defer friend.Close()
	require.NoError(t, friend.Join(room, "friend"))
	stranger, err := xmpptest.Dial(s, 1)
	require.NoError(t, err)
	defer stranger.Close()
	require.NoError(t, stranger.Join(room, "stranger"))
	var want []string
	for i, p := range []struct {
		by interface {
			Post(string, string, string) (string, error)
		}
		allowed bool
	}{{friend, true}, {stranger, false}, {friend, true}, {stranger, false}} {
		id, err := p.by.Post(room, fmt.Sprintf("message %d", i), "")
		require.NoError(t, err)
		if p.allowed {
			want = append(want, id)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cfg := serveConfig(t, s, fmt.Sprintf(`  state_dir: %q
  metrics_listen: %q
  routes:
    - name: friends
      topics: [%q]
      start: start
      senders: {nicks: [friend]}
      sink: {stdout: {}}
`, filepath.Join(t.TempDir(), "state"), addr, topic))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out syncBuffer
	done := make(chan int, 1)
	go func() { done <- runCtx(ctx, &out, "--config", cfg, "serve") }()
	filtered := regexp.MustCompile(`parley_xmpp_messages_filtered_total\{server="default",topic="` + regexp.QuoteMeta(topic) + `"\} (\d+)`)
	count := func() string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if m := filtered.FindSubmatch(body); m != nil {
			return string(m[1])
		}
		return ""
	}
	if !assert.Eventually(t, func() bool { return strings.Count(out.String(), "\n") >= 2 && count() == "2" }, 20*time.Second, 20*time.Millisecond) {
		t.Fatalf("two of four messages filtered: output %q, filtered %q", out.String(), count())
	}
	cancel()
	<-done
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m serve.Message
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		got = append(got, m.ID)
	}
	assert.Equal(t, want, got, "only the friend's messages, in order")
}

// A relay secret that is corrupt is a configuration error (exit 2) naming the
// file, and the file is left alone.
func TestServeRefusesABadRelaySecret(t *testing.T) {
	s := xmpptest.Require(t)
	state := t.TempDir()
	secret := filepath.Join(state, "relay.secret")
	require.NoError(t, os.WriteFile(secret, []byte("0123456789abcdef\n"), 0o600))
	cfg := serveConfig(t, s, fmt.Sprintf("  state_dir: %q\n  routes:\n    - {name: r, topics: [%q], sink: {stdout: {}}}\n", state, topicFor(t)))
	code, _, errOut := runCLI(t, "", "--config", cfg, "serve")
	assert.Equal(t, 2, code, errOut)
	assert.Contains(t, errOut, secret)
	assert.NotContains(t, errOut, "0123456789abcdef", "the secret is never echoed")
	data, err := os.ReadFile(secret)
	require.NoError(t, err)
	assert.Equal(t, "0123456789abcdef\n", string(data))
}

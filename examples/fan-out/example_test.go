// Package fanout proves the fan-out example's configuration: it loads, and its
// exec route's script stores each message once even when delivered twice.
package fanout

import (
	"context"
	"crypto/rand"
	"encoding/json"
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
	"github.com/parley-go/parley-xmpp/serve"
)

func TestFanOutExample(t *testing.T) {
	s := xmpptest.Require(t)
	t.Setenv("PARLEY_XMPP_SERVICE", "xmpp://"+s.Addr)
	f, err := config.Load("serve.yaml")
	require.NoError(t, err)
	require.Len(t, f.Serve.Routes, 2)
	route := f.Serve.Routes[1] // deploys-to-script
	out := filepath.Join(t.TempDir(), "deliveries.jsonl")
	route.Sink.Exec.Command = []string{"sh", "append.sh", out}
	topic := seam.Topic("deploys-" + strings.ToLower(rand.Text()[:8]))
	route.Topics = []string{string(topic)}

	c, err := f.ServerConfig("")
	require.NoError(t, err)
	rt, err := runtime.New(c)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, rt.Connect(ctx))
	defer rt.Disconnect(context.Background())
	var ids []string
	for _, text := range []string{"v1.2 deployed", "v1.3 deployed"} {
		id, err := rt.Post(ctx, topic, "me", text, seam.PostOptions{})
		require.NoError(t, err)
		ids = append(ids, string(id))
	}
	run := func() {
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- serve.Run(rctx, serve.Options{Routes: []config.Route{route}, StateDir: t.TempDir(),
				Backends: map[string]serve.Backend{"": rt}, Wait: time.Second})
		}()
		require.Eventually(t, func() bool {
			b, _ := os.ReadFile(out)
			return strings.Count(string(b), "\n") >= 2
		}, 20*time.Second, 50*time.Millisecond)
		stop()
		require.NoError(t, <-done)
	}
	run()
	run() // a fresh state dir: everything delivered again, which the script drops
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 2, string(b))
	for i, l := range lines {
		var m serve.Message
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		assert.Equal(t, ids[i], m.ID)
	}
}

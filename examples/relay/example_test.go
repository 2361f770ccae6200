// Package relay proves the relay example: messages posted on one dev server are
// relayed to the other, once each, in order, across a restart of the engine.
package relay

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/serve"
)

// requireBoth fails (CI) or skips unless both dev servers are up: the example
// relays from one to the other.
func requireBoth(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:5222", "127.0.0.1:15222"} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			continue
		}
		if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
			t.Fatalf("the relay example needs both dev servers; %s: %v", addr, err)
		}
		t.Skipf("the relay example needs both dev servers (make server-start); %s: %v", addr, err)
	}
}

func connect(t *testing.T, c runtime.Config) *runtime.Runtime {
	rt, err := runtime.New(c)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, rt.Connect(ctx))
	t.Cleanup(func() { _ = rt.Disconnect(context.Background()) })
	return rt
}

func TestRelayExample(t *testing.T) {
	requireBoth(t)
	for _, v := range []string{"PARLEY_XMPP_SERVICE", "PARLEY_XMPP_REMOTE_SERVICE"} {
		t.Setenv(v, "") // the example's own servers
	}
	f, err := config.Load("serve.yaml")
	require.NoError(t, err)
	from := seam.Topic("relay-from-" + strings.ToLower(rand.Text()[:8]))
	to := seam.Topic("relay-to-" + strings.ToLower(rand.Text()[:8]))
	route := f.Serve.Routes[0]
	route.Topics, route.Sink.Relay.Topic, route.Start = []string{string(from)}, string(to), "start"

	local, err := f.ServerConfig("")
	require.NoError(t, err)
	remote, err := f.ServerConfig("remote")
	require.NoError(t, err)
	source, dest := connect(t, local), connect(t, remote)
	state := t.TempDir()
	engine := func(ctx context.Context) chan error {
		done := make(chan error, 1)
		go func() {
			done <- serve.Run(ctx, serve.Options{Routes: []config.Route{route}, StateDir: state,
				Backends: map[string]serve.Backend{"": source, "remote": dest}, Wait: time.Second})
		}()
		return done
	}
	relayed := func() []string {
		since := seam.Cursor("")
		res, err := dest.FetchRecent(context.Background(), seam.FetchRecentArgs{Topic: to, Since: &since, Limit: 100})
		require.NoError(t, err)
		var out []string
		for _, m := range res.Messages {
			out = append(out, m.Content)
		}
		return out
	}
	ctx, stop := context.WithCancel(context.Background())
	done := engine(ctx)
	var want []string
	for i := range 3 {
		c := fmt.Sprintf("message %d", i)
		_, err := source.Post(context.Background(), from, "me", c, seam.PostOptions{})
		require.NoError(t, err)
		want = append(want, c)
	}
	require.Eventually(t, func() bool { return len(relayed()) == 3 }, 10*time.Second, 50*time.Millisecond)
	stop()
	require.NoError(t, <-done)

	for i := 3; i < 5; i++ { // while the engine is down
		c := fmt.Sprintf("message %d", i)
		_, err := source.Post(context.Background(), from, "me", c, seam.PostOptions{})
		require.NoError(t, err)
		want = append(want, c)
	}
	ctx, stop = context.WithCancel(context.Background())
	done = engine(ctx)
	require.Eventually(t, func() bool { return len(relayed()) == 5 }, 10*time.Second, 50*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	stop()
	require.NoError(t, <-done)
	assert.Equal(t, want, relayed(), "relayed once each, in order, across the restart")
}

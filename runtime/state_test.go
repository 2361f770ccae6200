package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
)

// State says Online as soon as Connect returns nil, and Closed as soon as
// Disconnect returns, whatever the embedder's OnStateChange is doing (issue
// 19: it said connecting right after Connect returned, while the notifier
// had not yet caught up). Run it many times (-count=20).
func TestStateIsOnlineWhenConnectReturns(t *testing.T) {
	s := xmpptest.Require(t)
	for _, tc := range []struct {
		name string
		mod  func(*runtime.Config)
	}{
		{"no callback", nil},
		// A slow callback holds up the notifier: State must not wait for it.
		{"slow callback", func(c *runtime.Config) {
			c.OnStateChange = func(runtime.StateChange) { time.Sleep(50 * time.Millisecond) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := newRuntime(t, s, 0, tc.mod)
			require.Equal(t, runtime.Connecting, rt.State(), "before Connect")
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			require.NoError(t, rt.Connect(ctx))
			require.Equal(t, runtime.Online, rt.State(), "right after Connect returned nil")
			require.NoError(t, rt.Disconnect(ctx))
			require.Equal(t, runtime.Closed, rt.State(), "right after Disconnect returned")
		})
	}
}

package runtime_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
)

func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd here: %v", err)
	}
	return len(es)
}

// An outage against a server that accepts connections and never answers:
// seconds of reconnect attempts, each login abandoned at DialTimeout, then
// Disconnect. Goroutines and open file descriptors return to where they were
// before the runtime existed: no abandoned login lingers.
func TestSilentOutageLeavesNoGoroutineOrSocket(t *testing.T) {
	s := xmpptest.Require(t)
	proxy := xmpptest.NewRecordingProxy(t, s.Addr)
	ignore := goleak.IgnoreCurrent()
	fds := openFDs(t)

	var reconnecting atomic.Int32
	rt, err := runtime.New(runtime.Config{
		Service: "xmpp://" + proxy.Addr, Domain: s.Domain, MUCService: s.MUC,
		Username: s.Accounts[0][0], Password: s.Accounts[0][1],
		DialTimeout: 300 * time.Millisecond, ReconnectWait: 20 * time.Millisecond, MaxReconnectWait: 100 * time.Millisecond,
		KeepAlive: -1, SelfPing: -1,
		OnStateChange: func(c runtime.StateChange) {
			if c.To == runtime.Reconnecting {
				reconnecting.Add(1)
			}
		},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, rt.Connect(ctx))

	before := proxy.Accepted()
	proxy.SetSilent(true)
	maxOpen := 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		maxOpen = max(maxOpen, proxy.Open())
		time.Sleep(5 * time.Millisecond)
	}
	attempts := proxy.Accepted() - before
	require.GreaterOrEqual(t, attempts, 3, "the runtime kept trying to log in to the silent server")
	t.Logf("%d logins on the silent server, at most %d connections open at once", attempts, maxOpen)
	assert.LessOrEqual(t, maxOpen, 2, "logins pile up on the silent server")

	require.NoError(t, rt.Disconnect(ctx))
	require.Eventually(t, func() bool { return proxy.Open() == 0 }, 5*time.Second, 10*time.Millisecond,
		"the runtime still holds connections to the silent server")
	goleak.VerifyNone(t, ignore)
	require.Eventually(t, func() bool { return openFDs(t) <= fds }, 5*time.Second, 10*time.Millisecond,
		"open file descriptors: %d before the runtime, %d after Disconnect", fds, openFDs(t))
	assert.Positive(t, reconnecting.Load())
}

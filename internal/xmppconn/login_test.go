package xmppconn

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// silentServer accepts connections and never answers; it counts them.
func silentServer(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				b := make([]byte, 512)
				for {
					if _, err := c.Read(b); err != nil {
						_ = c.Close()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
	return l.Addr().String(), &n
}

// A login against a server that never answers ends when its ctx does (its
// socket's deadline), not when TCP gives up; and with a shared gate a second
// login doesn't even dial while the first is in flight.
func TestLoginIsBoundedAndOneAtATime(t *testing.T) {
	addr, accepted := silentServer(t)
	gate := NewLoginGate()
	o := opts(addr)
	o.Logins, o.DialTimeout = gate, 0

	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() { _, err := Dial(ctxA, o); errA <- err }()
	require.Eventually(t, func() bool { return accepted.Load() == 1 }, 5*time.Second, 5*time.Millisecond)

	ctxB, cancelB := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelB()
	_, err := Dial(ctxB, o)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, int32(1), accepted.Load(), "the second login waited for the first: it never dialed")

	cancelA()
	select {
	case err := <-errA:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("a login on a silent server outlived its ctx")
	}

	// DialTimeout alone bounds it too.
	o.Logins, o.DialTimeout = nil, 200*time.Millisecond
	_, err = Dial(context.Background(), o)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

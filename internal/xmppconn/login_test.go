package xmppconn

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

// A login against a server that never answers ends when its ctx does (its
// socket's deadline), not when TCP gives up; and with a shared gate a second
// login doesn't even dial while the first is in flight.
func TestLoginIsBoundedAndOneAtATime(t *testing.T) {
	silent := xmpptest.NewRecordingProxy(t, "127.0.0.1:1") // never dials it: silent from the start
	silent.SetSilent(true)
	gate := NewLoginGate()
	o := opts(silent.Addr)
	o.Logins, o.DialTimeout = gate, 0

	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() { _, err := Dial(ctxA, o); errA <- err }()
	require.Eventually(t, func() bool { return silent.Accepted() == 1 }, 5*time.Second, 5*time.Millisecond)

	ctxB, cancelB := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelB()
	_, err := Dial(ctxB, o)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 1, silent.Accepted(), "the second login waited for the first: it never dialed")

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

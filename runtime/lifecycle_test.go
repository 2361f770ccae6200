package runtime_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

func TestCallsBeforeConnectAndAfterDisconnect(t *testing.T) {
	rt, err := runtime.New(runtime.Config{Service: "xmpp://127.0.0.1:1"})
	require.NoError(t, err)
	ctx := context.Background()
	_, err = rt.Post(ctx, "t", "me", "x", seam.PostOptions{})
	assert.ErrorIs(t, err, seam.ErrNotConnected)
	_, err = rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: "t"})
	assert.ErrorIs(t, err, seam.ErrNotConnected)
	_, err = rt.Subscribe(ctx, "t", func(seam.Message) {})
	assert.ErrorIs(t, err, seam.ErrNotConnected)
	require.NoError(t, rt.Disconnect(ctx))
	require.NoError(t, rt.Disconnect(ctx), "Disconnect is idempotent")
	_, err = rt.Post(ctx, "t", "me", "x", seam.PostOptions{})
	assert.ErrorIs(t, err, seam.ErrDisconnected)
	assert.ErrorIs(t, rt.Connect(ctx), seam.ErrDisconnected, "a runtime is used once")
}

// Invalid input is refused before anything crosses into the actors, whatever
// the connection state.
func TestInvalidInputIsRefusedUpFront(t *testing.T) {
	rt, err := runtime.New(runtime.Config{Service: "xmpp://127.0.0.1:1"})
	require.NoError(t, err)
	ctx := context.Background()
	for _, c := range []string{"", "nul\x00", "\xed\xa0\x80", "\uffff"} {
		_, err := rt.Post(ctx, "t", "me", c, seam.PostOptions{})
		assert.ErrorIs(t, err, seam.ErrInvalidContent, "%q", c)
	}
	_, err = rt.Post(ctx, "", "me", "x", seam.PostOptions{})
	assert.ErrorIs(t, err, seam.ErrInvalidTopic)
	_, err = rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: "bad\x01"})
	assert.ErrorIs(t, err, seam.ErrInvalidTopic)
	_, err = rt.Subscribe(ctx, "", func(seam.Message) {})
	assert.ErrorIs(t, err, seam.ErrInvalidTopic)
	big := make([]byte, 70*1024)
	for i := range big {
		big[i] = 'a'
	}
	_, err = rt.Post(ctx, "t", "me", string(big), seam.PostOptions{})
	assert.ErrorIs(t, err, seam.ErrInvalidContent)
}

func TestConnectFailsClearlyAndHonoursContext(t *testing.T) {
	// Checked after the silent server below has closed (cleanups run last in,
	// first out): go-xmpp's login can't be cancelled, so the abandoned login
	// ends only when the server drops the connection.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	rt, err := runtime.New(runtime.Config{Service: "xmpp://127.0.0.1:1", DialTimeout: time.Second})
	require.NoError(t, err)
	err = rt.Connect(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "127.0.0.1:1")
	assert.NotContains(t, err.Error(), runtime.DefaultPassword, "errors never carry the password")

	// A server that accepts TCP and says nothing: Connect returns with its ctx.
	silent := xmpptest.NewSilent(t)
	rt2, err := runtime.New(runtime.Config{Service: "xmpp://" + silent})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	assert.ErrorIs(t, rt2.Connect(ctx), context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)
	require.NoError(t, rt.Disconnect(context.Background()))
	require.NoError(t, rt2.Disconnect(context.Background()))
}

// Concurrent first uses of a room share one join: the server sees one join
// presence, and every caller succeeds.
func TestConcurrentCallersShareOneJoin(t *testing.T) {
	var joins atomic.Int32
	f := &fakeMUC{}
	f.onPresence = func() { joins.Add(1) }
	rt := hostileRuntime(t, f, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			sub, err := rt.Subscribe(ctx5(t), hostileTopic, func(seam.Message) {})
			if err == nil {
				err = sub.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, int32(1), joins.Load())
}

// After Disconnect no goroutine of the runtime is left, even after it joined
// rooms, subscribed, posted and long-polled, and no handler fires.
func TestNoGoroutineLeftAfterDisconnect(t *testing.T) {
	s := xmpptest.Require(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rt := newRuntime(t, s, 0, nil)
	connected(t, rt)
	var fired atomic.Int32
	for range 3 {
		topic := freshTopic()
		sub, err := rt.Subscribe(ctx5(t), topic, func(seam.Message) { fired.Add(1) })
		require.NoError(t, err)
		_, err = rt.Post(ctx5(t), topic, "me", "hello", seam.PostOptions{})
		require.NoError(t, err)
		_, err = rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic, Limit: 5})
		require.NoError(t, err)
		_ = sub
	}
	blocked := make(chan error, 1)
	go func() {
		since := seam.Cursor("")
		_, err := rt.FetchRecent(context.Background(), seam.FetchRecentArgs{Topic: freshTopic(), Since: &since, Block: time.Minute})
		blocked <- err
	}()
	time.Sleep(100 * time.Millisecond)
	require.Eventually(t, func() bool { return fired.Load() == 3 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, rt.Disconnect(ctx5(t)))
	select {
	case err := <-blocked:
		assert.ErrorIs(t, err, seam.ErrDisconnected, "a blocked fetch ends with Disconnect")
	case <-time.After(5 * time.Second):
		t.Fatal("a blocked fetch outlived Disconnect")
	}
}

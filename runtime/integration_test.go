package runtime_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Reading a never-posted topic must not create its room; posting does.
func TestFetchDoesNotCreateTheRoom(t *testing.T) {
	s := xmpptest.Require(t)
	rt := connected(t, newRuntime(t, s, 0, nil))
	watcher, err := xmpptest.Dial(s, 3)
	require.NoError(t, err)
	defer watcher.Close()

	topic := freshTopic()
	room := roomOf(t, s, topic)
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic})
	require.NoError(t, err)
	assert.Empty(t, res.Messages)
	exists, err := watcher.RoomExists(room)
	require.NoError(t, err)
	assert.False(t, exists, "FetchRecent created %s", room)

	_, err = rt.Post(ctx5(t), topic, "me", "now it exists", seam.PostOptions{})
	require.NoError(t, err)
	exists, err = watcher.RoomExists(room)
	require.NoError(t, err)
	assert.True(t, exists, "the control: a post creates the room, so the check can fail")
}

// Cold creation at scale: 20 runtimes on one account, nick unset, join one
// brand-new room at the same instant; all succeed, and the room ends unlocked
// and archiving (a post from one is read back by another and by an outsider).
func TestColdCreationTwentyAtOnce(t *testing.T) {
	s := xmpptest.Require(t)
	const n = 20
	rts := make([]*runtime.Runtime, n)
	for i := range rts {
		rts[i] = connected(t, newRuntime(t, s, 0, nil))
	}
	topic := freshTopic()
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, rt := range rts {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			sub, err := rt.Subscribe(ctx, topic, func(seam.Message) {})
			if err == nil {
				err = sub.Close()
			}
			errs[i] = err
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "runtime %d", i)
	}
	t.Logf("20 cold joins took %s", time.Since(t0))

	id, err := rts[7].Post(ctx5(t), topic, "me", "after the race", seam.PostOptions{})
	require.NoError(t, err)
	res, err := rts[13].FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic})
	require.NoError(t, err)
	require.Len(t, res.Messages, 1)
	assert.Equal(t, id, res.Messages[0].BackendMsgID)

	outsider, err := xmpptest.Dial(s, 2)
	require.NoError(t, err)
	defer outsider.Close()
	require.NoError(t, outsider.Join(roomOf(t, s, topic), "outsider"), "the room is unlocked for another account")
}

// PostOnce posts a key once: a second call with the same key finds the first
// in the archive and returns its id, even from another runtime (a restart).
func TestPostOnceIsIdempotentAcrossRuntimes(t *testing.T) {
	s := xmpptest.Require(t)
	topic := freshTopic()
	first := connected(t, newRuntime(t, s, 0, nil))
	beforeID, err := first.Post(ctx5(t), topic, "me", "an earlier message", seam.PostOptions{})
	require.NoError(t, err)
	before := seam.Cursor(beforeID) // an id is its cursor
	id, err := first.PostOnce(ctx5(t), topic, "relay-key-1", "relayed once", &before)
	require.NoError(t, err)

	again := connected(t, newRuntime(t, s, 0, nil)) // another process of the same account, after a crash
	id2, err := again.PostOnce(ctx5(t), topic, "relay-key-1", "relayed once", &before)
	require.NoError(t, err)
	assert.Equal(t, id, id2, "found, not posted again")
	id3, err := again.PostOnce(ctx5(t), topic, "relay-key-2", "another", nil)
	require.NoError(t, err)
	assert.NotEqual(t, id, id3, "a new key is posted")

	res, err := again.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic})
	require.NoError(t, err)
	var contents []string
	for _, m := range res.Messages {
		contents = append(contents, m.Content)
	}
	assert.Equal(t, []string{"an earlier message", "relayed once", "another"}, contents)
}

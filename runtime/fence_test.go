package runtime_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// A post under WithPostFence is written only while its fence answers nil, and
// the fence is asked when the post goes out (by the room, then by the
// connection's writer right before the write), not when the call is made: a
// cluster node paused with a relay post queued must not write it once its
// lease has ended (issue 13). Against the real server: the archive holds only
// what the fence let through.
func TestPostFenceIsAskedWhenThePostIsWritten(t *testing.T) {
	s := xmpptest.Require(t)
	topic := freshTopic()
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) { c.PostTimeout = 3 * time.Second }))
	anchorID, err := rt.Post(ctx5(t), topic, "me", "anchor", seam.PostOptions{})
	require.NoError(t, err)
	anchor := seam.Cursor(anchorID)
	closed := errors.New("the lease ended")

	// Refused when the room is about to send it (after PostOnce's archive
	// check): not sent, ErrPostFenced, not in doubt.
	var asked atomic.Int32
	refuse := runtime.WithPostFence(ctx5(t), func() error { asked.Add(1); return closed })
	_, err = rt.PostOnce(refuse, topic, "key-refused", "refused by the room's check", &anchor)
	require.ErrorIs(t, err, runtime.ErrPostFenced)
	assert.ErrorIs(t, err, closed)
	assert.NotErrorIs(t, err, seam.ErrPostInDoubt)
	assert.EqualValues(t, 1, asked.Load())
	_, err = rt.Post(refuse, topic, "me", "refused too", seam.PostOptions{})
	require.ErrorIs(t, err, runtime.ErrPostFenced, "Post honours the fence as well")

	// Let through by the room, refused by the writer (the fence changed its
	// answer while the post sat in the link's queue): never written, so never
	// reflected; the post times out in doubt, and PostOnce with the key
	// resolves that by posting it, once.
	asked.Store(0)
	late := runtime.WithPostFence(ctx5(t), func() error {
		if asked.Add(1) > 1 {
			return closed
		}
		return nil
	})
	_, err = rt.PostOnce(late, topic, "key-late", "refused by the writer", &anchor)
	require.ErrorIs(t, err, runtime.ErrPostTimeout)
	assert.ErrorIs(t, err, seam.ErrPostInDoubt)
	assert.EqualValues(t, 2, asked.Load(), "asked by the room and by the writer")

	// An open fence changes nothing.
	open := runtime.WithPostFence(ctx5(t), func() error { return nil })
	_, err = rt.PostOnce(open, topic, "key-late", "refused by the writer", &anchor)
	require.NoError(t, err)

	var got []string
	require.Eventually(t, func() bool {
		page, err := rt.FetchRecent(context.Background(), seam.FetchRecentArgs{Topic: topic, Since: &anchor})
		if err != nil {
			return false
		}
		got = contents(page.Messages)
		return len(got) >= 1
	}, 5*time.Second, 100*time.Millisecond)
	time.Sleep(500 * time.Millisecond) // room for a fenced post that went out anyway
	page, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic, Since: &anchor})
	require.NoError(t, err)
	assert.Equal(t, []string{"refused by the writer"}, contents(page.Messages), "only what the fence let through, once")
}

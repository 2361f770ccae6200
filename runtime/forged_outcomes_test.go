package runtime_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// ignoredErrors counts the error messages the runtime's rooms logged as not
// the room's own: proof that the forgeries reached the room actor.
type ignoredErrors struct{ n atomic.Int64 }

func (c *ignoredErrors) Enabled(context.Context, slog.Level) bool { return true }
func (c *ignoredErrors) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "error message that is not the room's own") {
		c.n.Add(1)
	}
	return nil
}
func (c *ignoredErrors) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *ignoredErrors) WithGroup(string) slog.Handler      { return c }

// An occupant can't forge a post's outcome (issue 18, item 3). While the
// runtime makes 300 concurrent posts, another account in the room sends
// type='error' messages to the runtime's occupant JID, with the ids of the
// reflections it sees (a post's id is its origin-id) and with guessed ones:
// no post is refused, and every post resolves with an id the archive holds.
func TestOccupantForgedErrorsDoNotRefusePosts(t *testing.T) {
	s := xmpptest.Require(t)
	const posts = 300
	topic := freshTopic()
	room := roomOf(t, s, topic)
	nick := "poster-" + strings.ToLower(rand.Text()[:8])
	ignored := &ignoredErrors{}
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.Nick, c.Logger = nick, slog.New(ignored)
	}))
	first, err := rt.Post(ctx5(t), topic, "me", "before the forgeries", seam.PostOptions{})
	require.NoError(t, err)

	mallory, err := xmpptest.Dial(s, 1)
	require.NoError(t, err)
	t.Cleanup(mallory.Close)
	require.NoError(t, mallory.Join(room, "mallory"))
	copied, stopCopying := mallory.OriginIDs(room, 4*posts)
	defer stopCopying()
	forge := func(id string) {
		err := mallory.Send(fmt.Sprintf(`<message type='error' to='%s/%s' id='%s'><error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`, room, nick, id))
		if err != nil {
			t.Errorf("forging: %v", err)
		}
	}

	// The server must carry an occupant's error to the runtime, or the test
	// proves nothing.
	forge(rand.Text())
	require.Eventually(t, func() bool { return ignored.n.Load() > 0 }, 5*time.Second, 10*time.Millisecond,
		"no forged error reached the runtime's room")

	stopForging := make(chan struct{})
	var forgers sync.WaitGroup
	var forged atomic.Int64
	forgers.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopForging:
				return
			case id := <-copied:
				forge(id) // too late for its own post, not for the oldest one unanswered
				forge(id)
				forged.Add(2)
			case <-tick.C:
				forge(rand.Text())
				forge("")
				forged.Add(2)
			}
		}
	})

	ids := make([]seam.BackendMsgID, posts)
	errs := make([]error, posts)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var posters sync.WaitGroup
	for i := range posts {
		posters.Go(func() {
			ids[i], errs[i] = rt.Post(ctx, topic, "me", fmt.Sprintf("post %d", i), seam.PostOptions{})
		})
	}
	posters.Wait()
	time.Sleep(200 * time.Millisecond) // the forgeries copied from the last reflections go out
	close(stopForging)
	forgers.Wait()
	t.Logf("%d forged errors sent, %d had reached the room (and were ignored) when the last post resolved", forged.Load(), ignored.n.Load())

	var refused, failed int
	for i, err := range errs {
		switch {
		case errors.Is(err, runtime.ErrPostRefused):
			refused++
		case err != nil:
			failed++
			t.Logf("post %d: %v", i, err)
		}
	}
	require.Zero(t, refused, "posts refused on forged errors (first: %v)", firstErr(errs))
	require.Zero(t, failed, "posts failed")
	observer, err := xmpptest.Dial(s, 3)
	require.NoError(t, err)
	defer observer.Close()
	rows, err := observer.Archive(room, 100)
	require.NoError(t, err)
	archived := map[seam.BackendMsgID]bool{}
	for _, r := range rows {
		archived[seam.BackendMsgID(r.ID)] = true
	}
	require.True(t, archived[first], "the first post %q is in the archive", first)
	distinct := map[seam.BackendMsgID]bool{}
	for i, id := range ids {
		assert.True(t, archived[id], "post %d's id %q is in the archive", i, id)
		distinct[id] = true
	}
	assert.Len(t, distinct, posts, "every post has an id of its own")
	assert.Len(t, rows, posts+1, "the archive holds each post once")
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

package runtime_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// countingMetrics records a runtime's withheld deliveries and pending posts.
type countingMetrics struct {
	observe.Nop
	filtered, pending atomic.Int64
}

func (c *countingMetrics) Room(string) observe.Room { return countingRoom{c: c} }

type countingRoom struct {
	observe.NopRoom
	c *countingMetrics
}

func (r countingRoom) Filtered(n int)     { r.c.filtered.Add(int64(n)) }
func (r countingRoom) PendingPosts(n int) { r.c.pending.Store(int64(n)) }

// A topic's allowlist delivers only its senders' messages, to subscribers and
// reads alike, in order: a nick, and a bare JID (the room shows real JIDs).
// The others' messages are withheld and counted, and the cursor moves past
// them. A runtime without an allowlist still gets everything.
func TestAllowlistWithholdsOtherSenders(t *testing.T) {
	s := xmpptest.Require(t)
	topic, room, stranger := strangerOwns(t, s)
	friend, err := xmpptest.Dial(s, 3) // admitted by nick
	require.NoError(t, err)
	defer friend.Close()
	require.NoError(t, friend.Join(room, "friend"))
	known, err := xmpptest.Dial(s, 2) // admitted by JID, under a nick the list doesn't name
	require.NoError(t, err)
	defer known.Close()
	require.NoError(t, known.Join(room, "p3-"+string(topic[len(topic)-6:])))

	var count countingMetrics
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.Metrics = &count
		c.Allow = map[seam.Topic]runtime.Allowlist{topic: {Nicks: []string{"friend"}, JIDs: []string{s.Accounts[2][0] + "@" + s.Domain}}}
	}))
	everyone := connected(t, newRuntime(t, s, 0, nil))
	var mu sync.Mutex
	var live, all []string
	_, err = rt.Subscribe(ctx5(t), topic, func(m seam.Message) { mu.Lock(); live = append(live, m.Content); mu.Unlock() })
	require.NoError(t, err)
	_, err = everyone.Subscribe(ctx5(t), topic, func(m seam.Message) { mu.Lock(); all = append(all, m.Content); mu.Unlock() })
	require.NoError(t, err)

	var lastID string
	ids := map[string]string{}
	for _, p := range []struct {
		by interface {
			Post(string, string, string) (string, error)
		}
		text string
	}{{friend, "m1"}, {stranger, "s1"}, {known, "m2"}, {stranger, "s2"}, {friend, "m3"}, {stranger, "s3"}} {
		lastID, err = p.by.Post(room, p.text, "")
		require.NoError(t, err)
		ids[p.text] = lastID
	}
	want := []string{"m1", "m2", "m3"}
	got := func() ([]string, []string) {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), live...), append([]string(nil), all...)
	}
	require.Eventually(t, func() bool { l, a := got(); return len(l) >= 3 && len(a) == 6 }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // nothing more comes
	l, a := got()
	assert.Equal(t, want, l, "the subscriber gets the allowed senders' messages, in order")
	assert.Equal(t, []string{"m1", "s1", "m2", "s2", "m3", "s3"}, a, "no allowlist: everything")
	assert.Equal(t, int64(3), count.filtered.Load(), "three messages withheld from one subscriber")

	start := seam.Cursor("")
	page, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic, Since: &start})
	require.NoError(t, err)
	assert.Equal(t, want, contents(page.Messages))
	assert.Equal(t, seam.Cursor(lastID), page.NextCursor, "the cursor moves past the withheld s3")
	afterM3 := seam.Cursor(ids["m3"])
	page, err = rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic, Since: &afterM3})
	require.NoError(t, err)
	assert.Empty(t, page.Messages)
	assert.Equal(t, seam.Cursor(lastID), page.NextCursor, "a page of withheld messages still moves the cursor (never stuck)")
	next := page.NextCursor
	page, err = rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic, Since: &next, Block: 200 * time.Millisecond})
	require.NoError(t, err)
	assert.Empty(t, page.Messages)
	assert.Equal(t, next, page.NextCursor)
	assert.Equal(t, int64(7), count.filtered.Load(), "and three withheld from the first read, one from the second")
}

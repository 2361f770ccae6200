package room

import (
	"crypto/rand"
	"fmt"
	goruntime "runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

func TestOriginRingFindsTheLastNSettledPosts(t *testing.T) {
	r := newOriginRing(4)
	_, ok := r.find("never")
	assert.False(t, ok)
	for i := range 6 {
		r.add(fmt.Sprint("origin ", i), seam.BackendMsgID(fmt.Sprint("id ", i)))
	}
	for i := range 6 {
		id, ok := r.find(fmt.Sprint("origin ", i))
		if i < 2 {
			assert.False(t, ok, "origin %d is older than the last 4", i)
			continue
		}
		require.True(t, ok, "origin %d", i)
		assert.Equal(t, seam.BackendMsgID(fmt.Sprint("id ", i)), id)
	}
}

// TestSettledPostsCostAFixedAmountPerRoom: a room that posts keeps its last 256
// settled posts in fixed arrays: after thousands of posts a ring holds 24
// bytes a post plus the ids (here one shared id, so the arrays alone), not the
// origin-ids and a map (about 40 KiB a room before).
func TestSettledPostsCostAFixedAmountPerRoom(t *testing.T) {
	const rooms, posts = 200, 1000
	origins := make([]string, posts)
	for i := range origins {
		origins[i] = rand.Text()
	}
	id := seam.BackendMsgID("xmqZTCS2ghgT1Idd2SI5-T20")
	heap := func() uint64 {
		var m goruntime.MemStats
		goruntime.GC()
		goruntime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	rings := make([]*originRing, rooms)
	for i := range rings {
		rings[i] = newOriginRing(256)
		for _, o := range origins {
			rings[i].add(string([]byte(o)), id) // each post's origin-id is its own string
		}
	}
	per := (float64(heap()) - float64(before)) / rooms
	t.Logf("%.0f bytes per room after %d posts", per, posts)
	assert.Less(t, per, 8.0*1024)
	found, ok := rings[0].find(origins[posts-1])
	assert.True(t, ok)
	assert.Equal(t, id, found)
	goruntime.KeepAlive(rings)
}

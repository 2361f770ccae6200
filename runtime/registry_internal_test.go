package runtime

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

func registered(rt *Runtime) int {
	n := 0
	for _, bucket := range rt.system.ProcessRegistry.LocalPIDs.LocalPIDs {
		n += bucket.Count()
	}
	return n
}

// TestPostsLeaveTheRegistryFlat: posting leaves no per-post footprint in the
// actor system's registry: the process count returns to where it was and no
// id is minted per post (a fresh id lands in a registry shard that keeps its
// table for good: ~9 MiB per posting runtime). That holds for the calls whose
// room reads the archive too (PostOnce looks for its key first; FetchRecent).
// (That no answer reaches the wrong caller is internal/ask's tests.)
func TestPostsLeaveTheRegistryFlat(t *testing.T) {
	rt := liveRuntime(t, nil)
	topic := seam.Topic("registry " + strings.ToLower(fmt.Sprint(time.Now().UnixNano())))
	warm := seam.Cursor(post(t, rt, topic, 1, "warm-up")[0]) // PostOnce reads the archive after it
	baseCount, baseIDs := registered(rt), rt.system.ProcessRegistry.SequenceID

	const posters, each = 8, 40
	var wg sync.WaitGroup
	for p := range posters {
		wg.Go(func() { post(t, rt, topic, each, fmt.Sprint("poster ", p)) })
	}
	wg.Go(func() {
		for i := range each {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := rt.PostOnce(ctx, topic, fmt.Sprint("key ", i), fmt.Sprint("once ", i), &warm)
			assert.NoError(t, err)
			_, err = rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Limit: 5})
			assert.NoError(t, err)
			cancel()
		}
	})
	wg.Wait()
	require.Eventually(t, func() bool { return registered(rt) == baseCount }, 5*time.Second, 10*time.Millisecond,
		"registry went from %d to %d processes", baseCount, registered(rt))
	minted := rt.system.ProcessRegistry.SequenceID - baseIDs
	t.Logf("%d posts and %d each of PostOnce and FetchRecent minted %d registry ids", posters*each, each, minted)
	assert.Less(t, minted, uint64(posters), "registry ids grow with the posts")
}

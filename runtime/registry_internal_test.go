package runtime

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/ask"
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
// actor system's registry: the process count returns to where it was, and the
// posts reuse a few reply ids rather than minting one each (a fresh id touches
// a registry shard that keeps its table for good: ~9 MiB per posting runtime).
func TestPostsLeaveTheRegistryFlat(t *testing.T) {
	rt := liveRuntime(t, nil)
	topic := seam.Topic("registry " + strings.ToLower(fmt.Sprint(time.Now().UnixNano())))
	post(t, rt, topic, 1, "warm-up")
	baseCount, baseMinted := registered(rt), ask.Minted()

	const posters, each = 8, 40
	var wg sync.WaitGroup
	for p := range posters {
		wg.Go(func() { post(t, rt, topic, each, fmt.Sprint("poster ", p)) })
	}
	wg.Wait()
	require.Eventually(t, func() bool { return registered(rt) == baseCount }, 5*time.Second, 10*time.Millisecond,
		"registry went from %d to %d processes", baseCount, registered(rt))
	minted := ask.Minted() - baseMinted
	t.Logf("%d posts minted %d reply ids", posters*each, minted)
	assert.LessOrEqual(t, minted, uint64(2*posters), "reply ids grow with the posts")
}

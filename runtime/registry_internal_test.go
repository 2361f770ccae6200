package runtime

import (
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
// table for good: ~9 MiB per posting runtime). Every post's answer reached
// its caller and no answer went astray (none dropped: no responder answered
// twice or late).
func TestPostsLeaveTheRegistryFlat(t *testing.T) {
	rt := liveRuntime(t, nil)
	topic := seam.Topic("registry " + strings.ToLower(fmt.Sprint(time.Now().UnixNano())))
	post(t, rt, topic, 1, "warm-up")
	baseCount, baseIDs := registered(rt), rt.system.ProcessRegistry.SequenceID

	const posters, each = 8, 40
	var wg sync.WaitGroup
	for p := range posters {
		wg.Go(func() { post(t, rt, topic, each, fmt.Sprint("poster ", p)) })
	}
	wg.Wait()
	require.Eventually(t, func() bool { return registered(rt) == baseCount }, 5*time.Second, 10*time.Millisecond,
		"registry went from %d to %d processes", baseCount, registered(rt))
	minted := rt.system.ProcessRegistry.SequenceID - baseIDs
	t.Logf("%d posts minted %d registry ids", posters*each, minted)
	assert.Less(t, minted, uint64(posters), "registry ids grow with the posts")
	assert.Zero(t, rt.asker.Dropped(), "answers that found no caller")
}

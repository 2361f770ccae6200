package room

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIDRingRemembersTheLastN(t *testing.T) {
	r := newIDRing(3)
	for i := range 5 {
		assert.True(t, r.add(fmt.Sprint(i)), "%d is new", i)
	}
	assert.False(t, r.add("4"))
	assert.False(t, r.add("2"))
	assert.True(t, r.add("1"), "1 fell out of the window")
	assert.True(t, r.has("1"))
	assert.False(t, r.has("2"), "2 fell out when 1 came back")
	assert.True(t, r.has("3"))
	assert.True(t, r.has("4"))
	assert.Len(t, r.ids, 3)
}

// TestIDRingMatchesAModelWindow: over many random ids, drawn from a pool small
// enough to repeat often, the ring answers exactly as a plain list of the last n
// new ids would: no false negatives, nothing kept past the window. Small windows
// wrap the index often, which exercises probing and backward-shift deletion.
func TestIDRingMatchesAModelWindow(t *testing.T) {
	for _, n := range []int{1, 2, 7, 64, 4096} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(n), 1))
			r := newIDRing(n)
			var window []string // the last n new ids, oldest first
			in := map[string]bool{}
			for step := range 20 * n * 4 {
				id := fmt.Sprintf("msg-%d", rng.IntN(3*n))
				want := !in[id]
				require.Equal(t, want, r.add(id), "step %d: add(%s)", step, id)
				if want {
					window = append(window, id)
					in[id] = true
					if len(window) > n {
						delete(in, window[0])
						window = window[1:]
					}
				}
				probe := fmt.Sprintf("msg-%d", rng.IntN(3*n))
				require.Equal(t, in[probe], r.has(probe), "step %d: has(%s)", step, probe)
			}
		})
	}
}

func TestIDRingAddAllocatesNothingOnceStarted(t *testing.T) {
	r := newIDRing(4096)
	ids := make([]string, 3*4096)
	for i := range ids {
		ids[i] = fmt.Sprintf("a-longish-backend-message-id-%08d", i)
	}
	r.add(ids[0])
	i := 0
	allocs := testing.AllocsPerRun(2*len(ids), func() {
		r.add(ids[i%len(ids)])
		r.has(ids[(i+7)%len(ids)])
		i++
	})
	assert.Zero(t, allocs, "add and has allocate nothing after the first id")
}

// TestIDRingHoldsAFixedSmallAmount: a busy ring at the default window holds
// 48 KiB whatever the ids' length: the heap a full ring allocates, ids aside,
// is its two arrays and nothing that grows with the traffic.
func TestIDRingHoldsAFixedSmallAmount(t *testing.T) {
	const n = 4096
	assert.Equal(t, 48<<10, ringBytes(n))
	ids := make([]string, 4*n)
	for i := range ids {
		ids[i] = fmt.Sprintf("a-longish-backend-message-id-%08d", i)
	}
	// TotalAlloc is process-wide: actors left by other tests allocate too, so
	// the least of a few runs is the ring's own figure.
	allocated := uint64(math.MaxUint64)
	for range 5 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := newIDRing(n)
		for _, id := range ids {
			r.add(id)
		}
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(r)
		allocated = min(allocated, after.TotalAlloc-before.TotalAlloc)
	}
	t.Logf("a ring of %d ids allocated %d bytes over %d adds (%.1f KiB)", n, allocated, len(ids), float64(allocated)/1024)
	assert.LessOrEqual(t, allocated, uint64(ringBytes(n)+1024), "the ring allocated more than its fixed arrays")
}

func BenchmarkIDRingAdd(b *testing.B) {
	r := newIDRing(4096)
	ids := make([]string, 3*4096)
	for i := range ids {
		ids[i] = fmt.Sprintf("a-longish-backend-message-id-%08d", i)
	}
	b.ReportAllocs()
	b.ReportMetric(float64(ringBytes(4096)), "bytes/ring")
	i := 0
	for b.Loop() {
		r.add(ids[i%len(ids)])
		i++
	}
}

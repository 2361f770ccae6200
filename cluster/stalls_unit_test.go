package cluster_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestLongestPartSplitsAStallAtItsOwnersFailures(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	const a, b, c = 101, 102, 103
	for _, tc := range []struct {
		name  string
		held  []holding
		fails []failure
		want  time.Duration
	}{
		{"no failure: the whole stall", []holding{{pid: a, from: at(0)}}, nil, 13 * time.Second},
		{"a failure of another node: the whole stall",
			[]holding{{pid: a, from: at(0)}}, []failure{{pid: b, at: at(3)}}, 13 * time.Second},
		{"the owner killed: from the kill",
			[]holding{{pid: a, from: at(0), to: at(6)}, {pid: c, from: at(7)}}, []failure{{pid: a, at: at(2)}}, 11500 * time.Millisecond},
		{"chained: the owner paused, the next one cut off before it took over",
			[]holding{{pid: a, from: at(0), to: at(6)}, {pid: b, from: at(6), to: at(12)}, {pid: c, from: at(12)}},
			[]failure{{pid: a, at: at(1)}, {pid: b, at: at(5)}}, 7500 * time.Millisecond},
		{"a short pause over before the node took the lock: not a failure of this hold",
			[]holding{{pid: a, from: at(4)}}, []failure{{pid: a, at: at(1), until: at(2)}}, 13 * time.Second},
		{"a fault after the hold ended: not this topic's",
			[]holding{{pid: a, from: at(0), to: at(3)}, {pid: c, from: at(3)}}, []failure{{pid: a, at: at(5)}}, 13 * time.Second},
		{"before the first failure, the stall counts too",
			[]holding{{pid: a, from: at(0)}}, []failure{{pid: a, at: at(11)}}, 10500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, longestPart(at(0.5), at(13.5), tc.held, tc.fails))
		})
	}
}

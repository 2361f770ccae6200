package bench

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Each round starts with the next side, and each side's times land in its own
// column, whatever the order it ran in.
func TestRotateTakesTurns(t *testing.T) {
	var order []int
	side := func(i int) func(int) (time.Duration, error) {
		return func(round int) (time.Duration, error) {
			order = append(order, i)
			return time.Duration(10*i+round) * time.Millisecond, nil
		}
	}
	times, err := rotate(3, side(0), side(1), side(2))
	require.NoError(t, err)
	assert.Equal(t, []int{0, 1, 2, 1, 2, 0, 2, 0, 1}, order)
	for i := range 3 {
		for round := range 3 {
			assert.Equal(t, time.Duration(10*i+round)*time.Millisecond, times[i][round])
		}
	}
}

func TestRotateStopsAtTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	_, err := rotate(5, func(int) (time.Duration, error) { calls++; return 0, boom }, func(int) (time.Duration, error) { calls++; return 0, nil })
	require.ErrorIs(t, err, boom)
	assert.Equal(t, 1, calls)
}

// The ratio is the median of the rounds' ratios, so one stalled round barely
// moves it, where it would halve a ratio of the totals.
func TestRatioIsTheMedianRound(t *testing.T) {
	ms := func(v ...int) (ds []time.Duration) {
		for _, x := range v {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	tr := turns{rt: ms(100, 100, 100, 1000), bare: ms(90, 95, 100, 100)}
	assert.InDelta(t, 0.925, tr.ratio(), 1e-9)
	assert.InDelta(t, 0.295, tr.bareTotal().Seconds()/tr.rtTotal().Seconds(), 0.01, "the totals' ratio, for contrast")
	odd := turns{rt: ms(100, 100, 100), bare: ms(50, 100, 200)}
	assert.InDelta(t, 1.0, odd.ratio(), 1e-9)
}

package bench

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

// The benchmarks run each workload once per call at PARLEY_BENCH_SCALE (1, the
// full size, by default) and report the runtime's figure, the bare client's and
// their ratio as metrics. Run them with -benchtime=1x:
//
//	go test -run '^$' -bench . -benchtime=1x ./bench
func server(tb testing.TB) Server {
	s := xmpptest.Require(tb)
	return Server{Addr: s.Addr, Domain: s.Domain, MUC: s.MUC, Transient: s.Transient, User: s.Accounts[0][0], Password: s.Accounts[0][1]}
}

func scale(tb testing.TB) float64 {
	v := os.Getenv("PARLEY_BENCH_SCALE")
	if v == "" {
		return 1
	}
	f, err := strconv.ParseFloat(v, 64)
	require.NoError(tb, err, "PARLEY_BENCH_SCALE")
	return f
}

func benchmark(b *testing.B, name string) {
	o := Options{Server: server(b), Scale: scale(b), Only: []string{name}, Log: func(s string) { b.Log(s) }}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	for b.Loop() {
		rs, err := Run(ctx, o)
		require.NoError(b, err)
		require.Len(b, rs, 1)
		r := rs[0]
		b.ReportMetric(r.Runtime, "rt-"+r.Unit)
		if r.Bare > 0 {
			b.ReportMetric(r.Bare, "bare-"+r.Unit)
			b.ReportMetric(r.Ratio, "ratio")
		}
		b.Log(Markdown(rs))
	}
}

func BenchmarkPostSequential(b *testing.B)        { benchmark(b, "post-sequential") }
func BenchmarkPostPipelined(b *testing.B)         { benchmark(b, "post-pipelined") }
func BenchmarkPostPipelined100Rooms(b *testing.B) { benchmark(b, "post-pipelined-100-rooms") }
func BenchmarkDelivery(b *testing.B)              { benchmark(b, "delivery") }
func BenchmarkFanOut(b *testing.B)                { benchmark(b, "fan-out") }
func BenchmarkReplay(b *testing.B)                { benchmark(b, "replay") }
func BenchmarkJoins(b *testing.B)                 { benchmark(b, "joins") }
func BenchmarkRecovery(b *testing.B)              { benchmark(b, "recovery") }
func BenchmarkLaggingCatchUp(b *testing.B)        { benchmark(b, "lagging-catch-up") }
func BenchmarkRejoin(b *testing.B)                { benchmark(b, "rejoin") }
func BenchmarkBusyRoomHeap(b *testing.B)          { benchmark(b, "busy-room-heap") }
func BenchmarkResumedRecovery(b *testing.B)       { benchmark(b, "resumed-recovery") }

// TestSmoke runs every workload at a hundredth of its size: the suite works end
// to end and every figure is a number. It asserts no speed: speed is measured,
// not tested.
func TestSmoke(t *testing.T) {
	o := Options{Server: server(t), Scale: 0.01, Log: func(s string) { t.Log(s) }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rs, err := Run(ctx, o)
	require.NoError(t, err)
	require.Len(t, rs, len(Workloads))
	for _, r := range rs {
		require.NotEmpty(t, r.Workload)
		require.Greater(t, r.Runtime, 0.0, r.Workload)
		if r.Bare > 0 {
			require.Greater(t, r.Ratio, 0.0, r.Workload)
		}
	}
	t.Log("\n" + Markdown(rs))
}

func TestOnlyRunsTheNamedWorkloads(t *testing.T) {
	rs, err := Run(context.Background(), Options{Only: []string{"no-such-workload"}})
	require.ErrorIs(t, err, ErrUnknownWorkload)
	require.Empty(t, rs)
}

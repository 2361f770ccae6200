// Package bench measures the runtime against the baseline a user would
// otherwise write: a bare go-xmpp client doing the same work on the same server
// in the same run. Absolute numbers vary between machines; the ratios are the
// claim. `go test -bench . ./bench` runs each workload as a Go benchmark;
// `parley-xmpp bench` runs them all and prints a Markdown table
// (docs/performance.md holds one, with how it was made).
package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Server is the server the workloads run on (plain text: a local server).
type Server struct {
	Addr   string // host:port
	Domain string
	MUC    string
	// Transient is a MUC service whose rooms are not persistent, for the joins
	// workload (empty: MUC). Prosody keeps the list of persistent rooms in one
	// file that it rewrites whenever it creates one, which makes creating ten
	// thousand persistent rooms quadratic: that would measure the server's disk.
	Transient string
	User      string
	Password  string
}

// Options configure a run.
type Options struct {
	Server Server
	// Scale multiplies every workload's size: 1 is the full suite (about two
	// minutes on the reference machine); CI's smoke pass uses 0.01.
	Scale float64
	// Only runs the named workloads (see Workloads); empty runs all.
	Only []string
	// Log receives progress lines.
	Log func(string)
}

// Result is one workload's figures.
type Result struct {
	Workload string
	Unit     string  // of Runtime and Bare
	Runtime  float64 // the runtime's throughput
	Bare     float64 // the bare client's, 0 where there is none to compare
	Ratio    float64 // Runtime / Bare, 0 where there is no Bare
	Goal     string
	Met      bool
	Notes    string
}

// Workloads names the workloads, in the order they run.
var Workloads = []string{"post-sequential", "post-pipelined", "post-pipelined-100-rooms", "delivery", "fan-out", "replay", "joins", "recovery", "lagging-catch-up", "rejoin", "busy-room-heap", "resumed-recovery"}

// ErrUnknownWorkload: Options.Only names a workload that doesn't exist.
var ErrUnknownWorkload = errors.New("bench: unknown workload")

type workload func(ctx context.Context, w *run) (Result, error)

var workloads = map[string]workload{
	"post-sequential":          postSequential,
	"post-pipelined":           func(ctx context.Context, w *run) (Result, error) { return postPipelined(ctx, w, 1) },
	"post-pipelined-100-rooms": func(ctx context.Context, w *run) (Result, error) { return postPipelined(ctx, w, 100) },
	"delivery":                 delivery,
	"fan-out":                  fanOut,
	"replay":                   replay,
	"joins":                    joins,
	"recovery":                 recovery,
	"rejoin":                   rejoin,
	"busy-room-heap":           busyRoomHeap,
	"resumed-recovery":         resumedRecovery,
}

// run is one run's shared state.
type run struct {
	o      Options
	tag    string
	topics atomic.Uint64 // topics named so far
}

// n scales a workload's full size, with a floor.
func (w *run) n(full, floor int) int { return max(floor, int(float64(full)*w.o.Scale)) }

func (w *run) log(format string, a ...any) {
	if w.o.Log != nil {
		w.o.Log(fmt.Sprintf(format, a...))
	}
}

func (w *run) topic(name string) seam.Topic {
	// The sequence keeps a run's topics distinct: six random characters alone
	// collided about once in twenty runs of the 10,000-room rejoin.
	return seam.Topic(fmt.Sprintf("bench-%s-%s-%d", w.tag, name, w.topics.Add(1)))
}

func (w *run) room(t seam.Topic) string { return w.roomOn(t, w.o.Server.MUC) }

func (w *run) roomOn(t seam.Topic, muc string) string {
	local, _ := runtime.RoomLocalpart(t)
	return local + "@" + muc
}

// transient is the MUC service for workloads that create many rooms.
func (w *run) transient() string {
	if w.o.Server.Transient != "" {
		return w.o.Server.Transient
	}
	return w.o.Server.MUC
}

// runtime returns a connected runtime on the server (or at addr).
func (w *run) runtime(ctx context.Context, mod func(*runtime.Config)) (*runtime.Runtime, func(), error) {
	s := w.o.Server
	c := runtime.Config{Service: "xmpp://" + s.Addr, Domain: s.Domain, MUCService: s.MUC, Username: s.User, Password: s.Password}
	if mod != nil {
		mod(&c)
	}
	rt, err := runtime.New(c)
	if err != nil {
		return nil, nil, err
	}
	if err := rt.Connect(ctx); err != nil {
		return nil, nil, err
	}
	return rt, func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = rt.Disconnect(dctx)
	}, nil
}

// Run runs the workloads.
func Run(ctx context.Context, o Options) ([]Result, error) {
	if o.Scale <= 0 {
		o.Scale = 1
	}
	for _, name := range o.Only {
		if _, ok := workloads[name]; !ok {
			return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownWorkload, name, strings.Join(Workloads, ", "))
		}
	}
	w := &run{o: o, tag: strings.ToLower(rand.Text()[:6])}
	var out []Result
	for _, name := range Workloads {
		if len(o.Only) > 0 && !slices.Contains(o.Only, name) {
			continue
		}
		if err := w.settle(ctx); err != nil {
			return out, fmt.Errorf("bench %s: %w", name, err)
		}
		w.log("%s…", name)
		start := time.Now()
		r, err := workloads[name](ctx, w)
		if err != nil {
			return out, fmt.Errorf("bench %s: %w", name, err)
		}
		w.log("%s: %s in %s", name, r.summary(), time.Since(start).Round(100*time.Millisecond))
		out = append(out, r)
	}
	return out, nil
}

// settle waits until the server answers pings promptly: the workload before may
// have left it busy (ten thousand rooms to destroy, after the joins).
func (w *run) settle(ctx context.Context) error {
	b, err := dialBare(w.o.Server, "bench-settle")
	if err != nil {
		return err
	}
	defer b.close()
	start, quick := time.Now(), 0
	for quick < 3 {
		d, err := b.ping(w.o.Server.Domain)
		if err != nil {
			return err
		}
		if quick++; d > 20*time.Millisecond {
			quick = 0
		}
		if time.Since(start) > 3*time.Minute {
			return fmt.Errorf("the server at %s still takes %s to answer a ping after 3 minutes", w.o.Server.Addr, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		w.log("waited %s for the server to settle", d.Round(time.Second))
	}
	return nil
}

func (r Result) summary() string {
	if r.Bare == 0 {
		return fmt.Sprintf("%.0f %s", r.Runtime, r.Unit)
	}
	return fmt.Sprintf("%.0f vs %.0f %s (%.2f×)", r.Runtime, r.Bare, r.Unit, r.Ratio)
}

// Markdown renders results as a table.
func Markdown(rs []Result) string {
	var b strings.Builder
	b.WriteString("| workload | runtime | bare go-xmpp | ratio | goal | met | notes |\n")
	b.WriteString("|---|---:|---:|---:|---|:---:|---|\n")
	for _, r := range rs {
		bare, ratio := "—", "—"
		if r.Bare > 0 {
			bare, ratio = fmt.Sprintf("%s %s", human(r.Bare), r.Unit), fmt.Sprintf("%.2f×", r.Ratio)
		}
		met := "no"
		if r.Met {
			met = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s %s | %s | %s | %s | %s | %s |\n", r.Workload, human(r.Runtime), r.Unit, bare, ratio, r.Goal, met, r.Notes)
	}
	return b.String()
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// latencies summarises durations: p50 and p99.
func latencies(ds []time.Duration) (p50, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)]
}

func ratio(rt, bare float64) float64 {
	if bare == 0 {
		return 0
	}
	return rt / bare
}

package main

import (
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/pprof"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/parley-go/parley-xmpp/bench"
	"github.com/parley-go/parley-xmpp/internal/redact"
)

func (a *app) benchCmd() *cobra.Command {
	var scale float64
	var only []string
	var transient, cpuProfile, memProfile, devServer string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the runtime against a bare go-xmpp client on the same server, and print a Markdown table",
		Long: `Runs each workload through the runtime and through a bare go-xmpp client doing
the same work on the same server in the same run, and prints a Markdown table of
both and their ratio (absolute numbers vary between machines; the ratios are the
claim). Workloads: ` + strings.Join(bench.Workloads, ", ") + `.
The full suite takes a few minutes and creates about 10,000 rooms; see
docs/performance.md for the server settings it needs and the reference results.
It uses the configured server like the demo does, and starts the dev server only
with --dev-server (make bench passes it).`,
		Example: `  parley-xmpp bench --scale 0.1
  parley-xmpp bench --only replay,fan-out --cpuprofile cpu.out
  make bench ARGS="--only replay"   # from a clone, against a freshly reset Prosody`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scale <= 0 || scale > 10 {
				return fmt.Errorf("%w: --scale %g: want more than 0, at most 10", errUsage, scale)
			}
			for _, name := range only {
				if !slices.Contains(bench.Workloads, name) {
					return fmt.Errorf("%w: --only %s: no such workload (known: %s)", errUsage, name, strings.Join(bench.Workloads, ", "))
				}
			}
			if err := checkDevServerFlag(devServer); err != nil {
				return err
			}
			for _, f := range []struct{ flag, path string }{{"--cpuprofile", cpuProfile}, {"--memprofile", memProfile}} {
				if f.path != "" {
					if err := checkWritable(f.flag, f.path); err != nil {
						return err
					}
				}
			}
			return a.bench(cmd.Context(), bench.Options{Scale: scale, Only: only}, transient, cpuProfile, memProfile, devServer)
		},
	}
	cmd.Flags().Float64Var(&scale, "scale", 1, "multiply every workload's size (0.01: a smoke pass)")
	cmd.Flags().StringSliceVar(&only, "only", nil, "run only these workloads (comma-separated)")
	cmd.Flags().StringVar(&transient, "transient-muc", envOr("PARLEY_XMPP_TRANSIENT_MUC", ""), "a MUC service with non-persistent rooms, for the joins workload (default: the MUC service)")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	cmd.Flags().StringVar(&memProfile, "memprofile", "", "write an allocation profile of the run to this file")
	devServerFlag(cmd, &devServer)
	return cmd
}

func (a *app) bench(ctx context.Context, o bench.Options, transient, cpuProfile, memProfile, devServer string) error {
	c, addr, stop, err := a.liveServer(devServer)
	if err != nil {
		return err
	}
	defer stop()
	o.Server = bench.Server{Addr: addr, Domain: c.Domain, MUC: c.MUCService, Transient: transient, User: c.Username, Password: c.Password}
	prog := newProgress(a.errOut)
	o.Log = prog.line
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rs, err := bench.Run(ctx, o)
	prog.done()
	if err != nil {
		if len(rs) > 0 {
			fmt.Fprint(a.out, bench.Markdown(rs))
		}
		return err
	}
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		goruntime.GC()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.out, "parley-xmpp bench: %s, rooms at %s, scale %g, %d CPUs, %s\n\n", redact.URL(c.Service), c.MUCService, o.Scale, goruntime.NumCPU(), goruntime.Version())
	fmt.Fprint(a.out, bench.Markdown(rs))
	return nil
}

// envOr is a benchmark flag's default from the environment (bench tooling,
// not the product's configuration).
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

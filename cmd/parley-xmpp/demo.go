package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-go/parley-xmpp/chaos"
	"github.com/parley-go/parley-xmpp/internal/redact"
	"github.com/parley-go/parley-xmpp/runtime"
)

func (a *app) demoCmd() *cobra.Command {
	var topics int
	var duration time.Duration
	var seed uint64
	var devServer string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show the promise live: posts and subscribers on several topics while connections are killed",
		Long: `Two sessions subscribe to several topics through a proxy that kills their
connections and cuts them mid-stanza, while they and a third client (around the
proxy) post. Every subscriber's deliveries and every post are then checked
against the rooms' archives, and a table says what was lost, duplicated or
reordered (nothing, is the promise). It uses the configured server; when none is
reachable and --dev-server names a clone's scripts/devserver.sh (by absolute
path: make demo passes it), it runs exactly that script to start the local dev
server and stops it afterwards. It never looks for a script by itself.`,
		Example: `  parley-xmpp demo
  parley-xmpp demo --topics 5 --duration 30s --seed 1796154904736567143
  make demo   # from a clone: starts the local dev server when none answers`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topics < 1 || topics > 20 {
				return fmt.Errorf("%w: --topics %d: want 1 to 20", errUsage, topics)
			}
			if duration < 2*time.Second || duration > 10*time.Minute {
				return fmt.Errorf("%w: --duration %s: want 2s to 10m", errUsage, duration)
			}
			if err := checkDevServerFlag(devServer); err != nil {
				return err
			}
			return a.demo(cmd.Context(), topics, duration, seed, devServer)
		},
	}
	cmd.Flags().IntVar(&topics, "topics", 3, "topics to use")
	cmd.Flags().DurationVar(&duration, "duration", 12*time.Second, "how long to write while faults happen")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "fault seed, to repeat a run (0: from the clock)")
	devServerFlag(cmd, &devServer)
	return cmd
}

// devServerFlag adds --dev-server to the demo and the benchmarks.
func devServerFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "dev-server", "", "when no server is reachable, start the dev server with this script (the absolute path of a clone's scripts/devserver.sh; make demo and make bench pass it) and stop it afterwards")
}

// checkDevServerFlag refuses a --dev-server that is not an absolute path: the
// script run is exactly the one named, never one found relative to wherever
// the command happens to run.
func checkDevServerFlag(script string) error {
	if script != "" && !filepath.IsAbs(script) {
		return fmt.Errorf("%w: --dev-server %q: want the absolute path of a clone's scripts/devserver.sh", errUsage, script)
	}
	return nil
}

// liveServer resolves the server the demo and the benchmarks use (--config and
// --server, the PARLEY_XMPP_* variables, then the dev server's defaults) and,
// when none is reachable and devServer (--dev-server) names a script, starts
// the local dev server with exactly that script; stop stops what it started.
func (a *app) liveServer(devServer string) (c runtime.Config, addr string, stop func(), err error) {
	if c, err = a.runtimeConfig(""); err != nil {
		return c, "", nil, err
	}
	// The PARLEY_XMPP_* variables are in c already (package config).
	c.Service = or(c.Service, runtime.DefaultService)
	c.Domain = or(c.Domain, runtime.DefaultDomain)
	c.MUCService = or(c.MUCService, runtime.DefaultMUCService)
	c.Username = or(c.Username, runtime.DefaultUsername)
	c.Password = or(c.Password, runtime.DefaultPassword)
	if addr, err = plainAddr(c.Service); err != nil {
		return c, "", nil, err
	}
	if c.TLSConfig != nil {
		return c, "", nil, fmt.Errorf("%w: the demo and the benchmarks log in without TLS, and this server's configuration sets tls (TLS mandatory)", errUsage)
	}
	if host, _, _ := net.SplitHostPort(addr); !runtime.IsLoopback(host) {
		return c, "", nil, fmt.Errorf("%w: the demo and the benchmarks log in without TLS (through a plain-text proxy, and a bare client), so they run only against a server on loopback, not %s", errUsage, redact.URL(c.Service))
	}
	stop = func() {}
	if !reachable(addr) {
		if stop, err = a.startDevServer(addr, devServer); err != nil {
			return c, "", nil, err
		}
	}
	return c, addr, stop, nil
}

func (a *app) demo(ctx context.Context, topics int, duration time.Duration, seed uint64, devServer string) error {
	c, addr, stop, err := a.liveServer(devServer)
	if err != nil {
		return err
	}
	defer stop()

	w := a.out
	fmt.Fprintf(w, "parley-xmpp demo: %s, rooms at %s\n\n", redact.URL(c.Service), c.MUCService)
	fmt.Fprintf(w, "Two sessions subscribe to %d topics through a proxy that kills their\n", topics)
	fmt.Fprintf(w, "connections and cuts them mid-stanza; they and a third client (around the\n")
	fmt.Fprintf(w, "proxy) post for %s. Then every delivery and every post is checked against\n", duration)
	fmt.Fprintf(w, "the rooms' archives.\n\n")
	prog := newProgress(a.errOut)
	rep, err := chaos.Run(ctx, chaos.Options{
		Server: chaos.Server{
			Addr: addr, Domain: c.Domain, MUC: c.MUCService,
			User: c.Username, Password: c.Password, WriterUser: c.Username, WriterPassword: c.Password,
		},
		Rooms: topics, Runtimes: 2, SubscribersPerRoom: 2,
		Duration: duration, FaultEvery: 2500 * time.Millisecond, Faults: []chaos.Fault{chaos.Kill, chaos.Cut},
		Seed: seed, TopicPrefix: "demo",
		Log: func(l string) { prog.line(strings.TrimPrefix(l, "chaos: ")) },
	})
	prog.done()
	if err != nil {
		return err
	}
	printDemo(w, rep)
	if !rep.OK() {
		return fmt.Errorf("the demo found problems (rerun with --seed %d to repeat its faults)", rep.Seed)
	}
	return nil
}

func printDemo(w io.Writer, rep *chaos.Report) {
	fmt.Fprintf(w, "  faults: connections killed %s, cut mid-stanza %s (seed %d)\n\n", times(rep.Faults[chaos.Kill]), times(rep.Faults[chaos.Cut]), rep.Seed)
	row := "  %-24s %9s %10s %6s %11s %10s\n"
	fmt.Fprintf(w, row, "topic", "messages", "delivered", "lost", "duplicated", "reordered")
	var tot chaos.RoomReport
	for _, r := range rep.PerRoom {
		fmt.Fprintf(w, row, r.Topic, fmt.Sprint(r.Messages), fmt.Sprint(r.Deliveries), fmt.Sprint(r.Lost), fmt.Sprint(r.Duplicated), fmt.Sprint(r.Reordered))
		tot.Messages += r.Messages
		tot.Deliveries += r.Deliveries
		tot.Lost += r.Lost
		tot.Duplicated += r.Duplicated
		tot.Reordered += r.Reordered
	}
	fmt.Fprintf(w, row, "total", fmt.Sprint(tot.Messages), fmt.Sprint(tot.Deliveries), fmt.Sprint(tot.Lost), fmt.Sprint(tot.Duplicated), fmt.Sprint(tot.Reordered))
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  posts resolved once with the archive's id: %d of %d", rep.Resolved, rep.Posts)
	if rep.InDoubt > 0 {
		fmt.Fprintf(w, " (%d in doubt, settled by the archive: %d landed)", rep.InDoubt, rep.InDoubtLanded)
	}
	fmt.Fprintln(w)
	if len(rep.Recoveries) > 0 {
		fmt.Fprintf(w, "  recovery over %d lost links (link lost → every room delivering again): p50 %s, longest %s\n",
			len(rep.Recoveries), rep.RecoveryP(50).Round(time.Millisecond), rep.LongestRecovery.Round(time.Millisecond))
	}
	for _, s := range rep.Samples {
		fmt.Fprintf(w, "  ! %s\n", s)
	}
	fmt.Fprintln(w)
	if rep.OK() {
		fmt.Fprintf(w, "ok: nothing lost, duplicated or reordered, in %s.\n", rep.Elapsed.Round(time.Second))
	}
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// plainAddr is the host:port of an xmpp:// service (the demo's proxy forwards
// plain TCP; TLS would not match the proxy's address).
func plainAddr(service string) (string, error) {
	svc, err := runtime.ParseService(service)
	if err != nil || svc.DirectTLS {
		return "", fmt.Errorf("%w: the demo and the benchmarks need an xmpp:// service, not %q", errUsage, redact.URL(service))
	}
	return svc.Addr, nil
}

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// devServerWait is how long a started dev server gets to listen.
var devServerWait = 15 * time.Second

// startDevServer starts the local Prosody with script (--dev-server: an
// absolute path, run as it is and nothing else) for a demo or benchmark that
// found no server, and returns how to stop it. Without script it starts
// nothing: it never searches the working directory or its parents, where
// anyone able to write a directory above could plant a script.
func (a *app) startDevServer(addr, script string) (func(), error) {
	if script == "" {
		return nil, fmt.Errorf("no XMPP server at %s: start one (make server-start in a clone), point --config / PARLEY_XMPP_SERVICE at yours, or pass --dev-server=/path/to/clone/scripts/devserver.sh to start the dev server (make demo and make bench do)", addr)
	}
	if !strings.HasSuffix(addr, ":5222") {
		return nil, fmt.Errorf("no XMPP server at %s: --dev-server starts the dev Prosody on port 5222 only", addr)
	}
	if fi, err := os.Stat(script); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: --dev-server %s: not a file (%v)", errUsage, script, err)
	}
	fmt.Fprintf(a.errOut, "no server at %s: starting the local dev server (%s)\n", addr, script)
	if out, err := exec.Command(script, "start", "prosody").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("starting the dev server with %s: %v\n%s", script, err, out)
	}
	stop := func() { _ = exec.Command(script, "stop", "prosody").Run() }
	for deadline := time.Now().Add(devServerWait); !reachable(addr); {
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s start prosody ran, but nothing listens at %s", script, addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return stop, nil
}

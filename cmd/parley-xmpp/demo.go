package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
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
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show the promise live: posts and subscribers on several topics while connections are killed",
		Long: `Two sessions subscribe to several topics through a proxy that kills their
connections and cuts them mid-stanza, while they and a third client (around the
proxy) post. Every subscriber's deliveries and every post are then checked
against the rooms' archives, and a table says what was lost, duplicated or
reordered (nothing, is the promise). It uses the configured server; when none is
reachable and this is a clone of the repository, it starts the local dev server
(scripts/devserver.sh) and stops it afterwards.`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topics < 1 || topics > 20 {
				return fmt.Errorf("%w: --topics %d: want 1 to 20", errUsage, topics)
			}
			if duration < 2*time.Second || duration > 10*time.Minute {
				return fmt.Errorf("%w: --duration %s: want 2s to 10m", errUsage, duration)
			}
			return a.demo(cmd.Context(), topics, duration, seed)
		},
	}
	cmd.Flags().IntVar(&topics, "topics", 3, "topics to use")
	cmd.Flags().DurationVar(&duration, "duration", 12*time.Second, "how long to write while faults happen")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "fault seed, to repeat a run (0: from the clock)")
	return cmd
}

// liveServer resolves the server the demo and the benchmarks use (--config and
// --server, the PARLEY_XMPP_* variables, then the dev server's defaults) and,
// when none is reachable and this is a clone of the repository, starts the
// local dev server; stop stops what it started.
func (a *app) liveServer() (c runtime.Config, addr string, stop func(), err error) {
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
		if stop, err = a.startDevServer(addr); err != nil {
			return c, "", nil, err
		}
	}
	return c, addr, stop, nil
}

func (a *app) demo(ctx context.Context, topics int, duration time.Duration, seed uint64) error {
	c, addr, stop, err := a.liveServer()
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
	s := service
	if !strings.Contains(s, "://") {
		s = "xmpp://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "xmpp" || u.Host == "" {
		return "", fmt.Errorf("%w: the demo and the benchmarks need an xmpp:// service, not %q", errUsage, redact.URL(service))
	}
	port := u.Port()
	if port == "" {
		port = "5222"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// startDevServer starts the repository's local Prosody (when run from a clone)
// for a demo that found no server, and returns how to stop it.
func (a *app) startDevServer(addr string) (func(), error) {
	script := findUp("scripts/devserver.sh")
	if script == "" || !strings.HasSuffix(addr, ":5222") {
		return nil, fmt.Errorf("no XMPP server at %s: start one (make server-start in a clone), or point --config / PARLEY_XMPP_SERVICE at yours", addr)
	}
	fmt.Fprintf(a.errOut, "no server at %s: starting the local dev server (%s)\n", addr, script)
	if out, err := exec.Command(script, "start", "prosody").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("starting the dev server: %v\n%s", err, out)
	}
	return func() { _ = exec.Command(script, "stop", "prosody").Run() }, nil
}

// findUp looks for rel in the working directory and its parents.
func findUp(rel string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

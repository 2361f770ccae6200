package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/metrics"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/serve"
)

func (a *app) serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the fan-out engine: forward every message of the configured routes to their sinks",
		Long: `Run the routes of the configuration's serve block until interrupted. Each route
forwards every message of its topics, in order, to its sink (stdout, exec,
webhook, or a relay to a topic on another server) and saves its cursor after
each delivery, so a restart, even after kill -9, resumes after the last message
delivered: at least once to sinks (each message carries its id), exactly once
for relays.

SIGINT, SIGTERM and SIGHUP stop it gracefully: the deliveries in flight end,
every cursor is saved, and it exits 0. SIGHUP does not reload the
configuration in place: run serve under a supervisor that restarts it (systemd
Restart=always, ExecReload=/bin/kill -HUP $MAINPID) and the next run reads the
file again and resumes where this one stopped.`,
		Example: `  parley-xmpp --config serve.yaml serve
  parley-xmpp --config serve.yaml --log-format json serve
  kill -HUP "$(pidof parley-xmpp)"   # stop gracefully; the supervisor restarts it with the new configuration`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.configPath == "" {
				return fmt.Errorf("%w: serve needs --config FILE with serve.routes", errUsage)
			}
			sv := a.file.Serve
			if len(sv.Routes) == 0 {
				return fmt.Errorf("%w: serve.routes: no routes to serve", config.ErrConfig)
			}
			// Before any sink starts a child: the children (exec sinks) run
			// as this user, and must not read the password from this
			// process's /proc/PID/environ (docs/security.md).
			if err := serve.HideProcess(); err != nil {
				return fmt.Errorf("making the engine's /proc entries private (prctl PR_SET_DUMPABLE): %w", err)
			}
			prog := newProgress(a.errOut)
			ctx, stop := context.WithCancel(cmd.Context())
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				select {
				case <-hup:
					prog.line("SIGHUP: stopping gracefully, saving every cursor (restart serve to load the configuration again)")
					a.log.Info("SIGHUP: stopping gracefully; restart serve to load the configuration again")
					stop()
				case <-ctx.Done():
				}
			}()
			var m *metrics.Prometheus
			if sv.MetricsListen != "" {
				m = metrics.New()
				for _, r := range sv.Routes { // every route's series from the start
					m.Route(r.Name, r.Topics)
				}
			}
			// Everything that needs no server is checked before any network:
			// every server's configuration, the state dir's lock, the saved
			// state, the sinks.
			names := serversOf(sv.Routes)
			var rts []*runtime.Runtime
			for _, name := range names {
				c, err := a.runtimeConfig(name)
				if err != nil {
					return err
				}
				if m != nil {
					c.Metrics = m.ForServer(serverLabel(name)) // series labelled server="default" or the name
				}
				c.Allow = sv.Allow(name)
				if sv.Cluster != nil {
					// A half-open link must be found within the lease, so
					// that a node cut off from the server gives its topics
					// up in time (cluster.ErrLinkLost): pings every quarter
					// lease, dropped after another quarter of silence.
					ttl := sv.Cluster.TTL()
					if c.KeepAlive <= 0 || c.KeepAlive > ttl/4 {
						c.KeepAlive = ttl / 4
					}
					c.KeepAliveTimeout = min(cmp.Or(c.KeepAliveTimeout, ttl/8), ttl/8)
				}
				// The link's state is logged by the runtime (c.Logger, with
				// server): lost, each failed login and when the next comes,
				// back and why it went.
				if a.nick != "" {
					c.Nick = a.nick
				}
				rt, err := runtime.New(c)
				if err != nil {
					return fmt.Errorf("%w: %s: %w", config.ErrConfig, a.configPath, a.file.Explain(name, err))
				}
				rts = append(rts, rt)
			}
			if sv.Cluster != nil {
				err := a.serveCluster(ctx, sv, names, rts, m, prog)
				prog.done()
				return err
			}
			engine, err := serve.Prepare(serve.Options{
				Routes: sv.Routes, StateDir: sv.StateDir, RoomJID: a.file.RoomJID,
				Stdout: a.out, Logger: a.log, Metrics: recorder(m),
			})
			if err != nil {
				return fmt.Errorf("%w: %v", config.ErrConfig, err)
			}
			defer engine.Close()
			if m != nil {
				stop, err := serveMetrics(sv.MetricsListen, m, rts)
				if err != nil {
					return err
				}
				defer stop()
			}

			backends, disconnectAll, err := connectAll(ctx, names, rts)
			if err != nil {
				return err
			}
			defer disconnectAll()
			prog.info(fmt.Sprintf("serving %d routes", len(sv.Routes)), slog.Int("routes", len(sv.Routes)))
			err = engine.Run(ctx, backends)
			prog.done()
			return err
		},
	}
}

// serverLabel names server name in progress lines and errors.
func serverLabel(name string) string { return config.ServerLabel(name) }

// serverKey is the configuration key of server name.
func serverKey(name string) string {
	if name == "" {
		return "backend_config"
	}
	return "servers." + name
}

// The engine counts relay loops it refuses through the optional interface.
var _ serve.LoopRecorder = (*metrics.Prometheus)(nil)

// recorder is m as a serve.Recorder, or nil (an untyped nil, not a nil pointer).
func recorder(m *metrics.Prometheus) serve.Recorder {
	if m == nil {
		return nil
	}
	return m
}

// serversOf lists the servers the routes read from or relay to.
func serversOf(routes []config.Route) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, r := range routes {
		add(r.Server)
		if r.Sink.Relay != nil {
			add(r.Sink.Relay.Server)
		}
	}
	return out
}

// serveMetrics serves /metrics, /healthz and /readyz (ready: every server
// online) on addr until stop is called.
func serveMetrics(addr string, m *metrics.Prometheus, rts []*runtime.Runtime, alsoReady ...func() bool) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: serve.metrics_listen %q: %v", config.ErrConfig, addr, err)
	}
	ready := func() bool {
		for _, r := range alsoReady {
			if !r() {
				return false
			}
		}
		for _, rt := range rts {
			if rt.State() != runtime.Online {
				return false
			}
		}
		return true
	}
	srv := &http.Server{Handler: m.Handler(ready), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener failed after starting: metrics are lost, serving goes on
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

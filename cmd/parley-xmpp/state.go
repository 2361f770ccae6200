package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-go/parley-xmpp/cluster"
	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/serve"
)

// stateFlags are the flags that name one (route, topic).
type stateFlags struct {
	route, topic, to string
	wait             time.Duration // a cluster's held lock: how long to wait for it (0: the lease TTL plus 5s)
}

func (a *app) stateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "state",
		Short: "Show or change the cursors serve saved (serve.state_dir, or a cluster's etcd): show, set, skip",
		Example: `  parley-xmpp --config serve.yaml state show
  parley-xmpp --config serve.yaml state skip --route to-webhook --topic alerts`,
		Long: `Show or change the cursor serve saved for a route's topic: the last message
the route delivered (or passed over).

In serve.state_dir: set and skip take the state dir's lock, as serve does:
stop serve first (a running serve is reported, exit 1). Writes are atomic: a
crash leaves the old cursor or the new one.

In a cluster (serve.cluster): the cursors live in etcd. show reads them
without locks. set and skip take the topic's lock in etcd as a node does
(for a lease of their own, at most 5s), so no node delivers the topic
meanwhile, write the cursor in a transaction that checks the lock is still
theirs, and release it. A node holding the lock (delivering the topic) holds
it for as long as it runs: set and skip wait --wait for it (default: the lease
TTL plus 5s, time for a node killed without a goodbye to lose it), then fail
(exit 1) changing nothing: stop the node delivering it, or retry. A node
whose topic stopped on a refused message has released its lock: skip works
while it runs, and the topic resumes when that node restarts (or the topic
moves to another node).

Exit status: 0 done, 1 the operation failed (etcd unreachable, the lock
held: nothing changed), 2 bad usage (an unknown route or topic, a bad cursor).`,
		Args: argsBetween(0, 0),
		RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("%w: name a subcommand: show, set or skip", errUsage)
		},
	}
	var show stateFlags
	showCmd := &cobra.Command{
		Use:   "show [--route R] [--topic T]",
		Short: "Print each configured route's topics and their saved cursors",
		Example: `  parley-xmpp --config serve.yaml state show
  parley-xmpp --config serve.yaml state show --route to-webhook --topic alerts`,
		Long: `Print each configured route's topics (or those --route and --topic name) with
their saved cursor ("start": the archive's start) and, for relays, relay_last.
It reads without the lock (state files are replaced by rename), so it works
while serve runs.`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sv, err := a.stateServe()
			if err != nil {
				return err
			}
			type row struct {
				r     config.Route
				topic string
			}
			var rows []row
			for _, r := range sv.Routes {
				if show.route != "" && r.Name != show.route {
					continue
				}
				for _, t := range r.Topics {
					if show.topic != "" && t != show.topic {
						continue
					}
					rows = append(rows, row{r, t})
				}
			}
			if len(rows) == 0 {
				return fmt.Errorf("%w: no configured route and topic match --route %q --topic %q", errUsage, show.route, show.topic)
			}
			read := func(i int) (serve.State, bool, error) {
				return serve.ReadState(stateDir(sv), rows[i].r.Name, rows[i].topic)
			}
			if sv.Cluster != nil {
				topics := make([]serve.Topic, len(rows))
				for i, rw := range rows {
					topics[i] = serve.Topic{Route: rw.r.Name, Topic: rw.topic}
				}
				saved, err := cluster.ReadCursors(cmd.Context(), sv.Cluster, topics)
				if err != nil {
					return fmt.Errorf("serve.cluster: %w", err)
				}
				read = func(i int) (serve.State, bool, error) { return saved[i].State, saved[i].Found, nil }
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROUTE\tTOPIC\tCURSOR\tRELAY_LAST")
			for i, rw := range rows {
				st, found, err := read(i)
				if err != nil {
					return fmt.Errorf("route %s: topic %s: %w", rw.r.Name, rw.topic, err)
				}
				cursor, relayLast := describeCursor(st.Cursor), string(st.RelayLast)
				if !found {
					cursor = "none yet (starts at " + startOf(rw.r) + ")"
				}
				if relayLast == "" {
					relayLast = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rw.r.Name, rw.topic, cursor, relayLast)
			}
			return tw.Flush()
		},
	}
	showCmd.Flags().StringVar(&show.route, "route", "", "only this route")
	showCmd.Flags().StringVar(&show.topic, "topic", "", "only this topic")

	var set stateFlags
	setCmd := &cobra.Command{
		Use:   "set --route R --topic T --to CURSOR",
		Short: "Set a route's topic's cursor: the route resumes after CURSOR",
		Example: `  parley-xmpp --config serve.yaml state set --route to-webhook --topic alerts --to xmqZTCS2ghgT1Idd2SI5-T20
  parley-xmpp --config serve.yaml state set --route to-webhook --topic alerts --to ''   # from the archive's start`,
		Long: `Set the cursor of --route's --topic to --to, a message id of the topic's
archive (the route resumes after that message), or '' for the archive's start.
relay_last is kept. Moving a relay's cursor back relays again what it had
relayed before relay_last (PostOnce looks for earlier posts after it only).`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("to") {
				return fmt.Errorf("%w: set needs --to CURSOR ('' for the archive's start)", errUsage)
			}
			if err := runtime.CheckCursor(seam.Cursor(set.to)); err != nil {
				return fmt.Errorf("%w: --to %q: %v", errUsage, set.to, err)
			}
			return a.editState(cmd.Context(), set, func(ctx context.Context, _ config.Route, st serve.State, _ bool) (serve.State, string, error) {
				old := st.Cursor
				st.Cursor = seam.Cursor(set.to)
				return st, fmt.Sprintf("cursor %s → %s", describeCursor(old), describeCursor(st.Cursor)), nil
			})
		},
	}
	setCmd.Flags().StringVar(&set.route, "route", "", "the route (required)")
	setCmd.Flags().StringVar(&set.topic, "topic", "", "the topic (required)")
	setCmd.Flags().StringVar(&set.to, "to", "", "the message id to resume after ('': the archive's start)")
	setCmd.Flags().DurationVar(&set.wait, "wait", 0, waitUsage)

	var skip stateFlags
	skipCmd := &cobra.Command{
		Use:     "skip --route R --topic T",
		Short:   "Move a route's topic past the message it is stuck on (reads it from the server)",
		Example: `  parley-xmpp --config serve.yaml state skip --route to-webhook --topic alerts`,
		Long: `Move the cursor of --route's --topic past the next message after it: the one
the route is stuck on. It connects to the route's server to find that message
(as the route reads: senders outside the route's senders are passed over too)
and prints its id, never its content.`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.editState(cmd.Context(), skip, func(ctx context.Context, r config.Route, st serve.State, found bool) (serve.State, string, error) {
				if !found {
					return st, "", fmt.Errorf("route %s: topic %s: no saved cursor yet: nothing is stuck (serve starts it at %s)", r.Name, skip.topic, startOf(r))
				}
				next, err := a.nextMessage(ctx, r, seam.Topic(skip.topic), st.Cursor)
				if err != nil {
					return st, "", err
				}
				old := st.Cursor
				st.Cursor = next.Cursor
				return st, fmt.Sprintf("skipped message %s (cursor %s → %s)", next.BackendMsgID, describeCursor(old), describeCursor(st.Cursor)), nil
			})
		},
	}
	skipCmd.Flags().StringVar(&skip.route, "route", "", "the route (required)")
	skipCmd.Flags().StringVar(&skip.topic, "topic", "", "the topic (required)")
	skipCmd.Flags().DurationVar(&skip.wait, "wait", 0, waitUsage)
	c.AddCommand(showCmd, setCmd, skipCmd)
	return c
}

const waitUsage = "serve.cluster: how long to wait for the topic's lock while a node holds it (default: lease_ttl + 5s)"

// stateServe is the serve block the state commands work on: a configuration
// with routes whose cursors live in a state dir.
func (a *app) stateServe() (config.Serve, error) {
	if a.configPath == "" {
		return config.Serve{}, fmt.Errorf("%w: state needs --config FILE with serve.routes", errUsage)
	}
	sv := a.file.Serve
	if len(sv.Routes) == 0 {
		return sv, fmt.Errorf("%w: serve.routes: no routes", config.ErrConfig)
	}
	return sv, nil
}

// editState runs edit on the state of f's (route, topic) under the state
// dir's lock and saves what it answers, printing what changed.
func (a *app) editState(ctx context.Context, f stateFlags, edit func(context.Context, config.Route, serve.State, bool) (serve.State, string, error)) error {
	sv, err := a.stateServe()
	if err != nil {
		return err
	}
	if f.route == "" || f.topic == "" {
		return fmt.Errorf("%w: --route and --topic are required", errUsage)
	}
	i := slices.IndexFunc(sv.Routes, func(r config.Route) bool { return r.Name == f.route })
	if i < 0 {
		return fmt.Errorf("%w: --route %q: no such route in serve.routes", errUsage, f.route)
	}
	r := sv.Routes[i]
	if !slices.Contains(r.Topics, f.topic) {
		return fmt.Errorf("%w: --topic %q: not a topic of route %s", errUsage, f.topic, r.Name)
	}
	if sv.Cluster != nil {
		return a.editClusterState(ctx, sv.Cluster, r, f, edit)
	}
	dir, err := serve.LockStateDir(stateDir(sv))
	if err != nil {
		if errors.Is(err, serve.ErrStateDirInUse) {
			return fmt.Errorf("%w: stop serve before changing its cursors", err)
		}
		return err
	}
	defer dir.Close()
	st, err := dir.Read(r.Name, f.topic)
	found := err == nil
	if err != nil && !errors.Is(err, serve.ErrNoState) {
		return err
	}
	st, what, err := edit(ctx, r, st, found)
	if err != nil {
		return err
	}
	if err := dir.Write(r.Name, f.topic, st); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "route %s: topic %s: %s\n", r.Name, f.topic, what)
	return nil
}

// editClusterState runs edit on the cursor of f's (route, topic) in the
// cluster's etcd under the topic's lock, as a node takes it, and saves what
// it answers, printing what changed.
func (a *app) editClusterState(ctx context.Context, cc *config.Cluster, r config.Route, f stateFlags,
	edit func(context.Context, config.Route, serve.State, bool) (serve.State, string, error)) error {
	wait := f.wait
	if wait <= 0 {
		wait = cc.TTL() + 5*time.Second
	}
	host, _ := os.Hostname()
	var what string
	err := cluster.EditCursor(ctx, cc, serve.Topic{Route: r.Name, Topic: f.topic}, cluster.EditOptions{
		Owner: fmt.Sprintf("parley-xmpp-state@%s/%d", host, os.Getpid()),
		Wait:  wait,
		Waiting: func() {
			fmt.Fprintf(a.errOut, "route %s: topic %s: a node holds its lock; waiting up to %s for it\n", r.Name, f.topic, wait)
		},
	}, func(ctx context.Context, st serve.State, found bool) (serve.State, error) {
		st, w, err := edit(ctx, r, st, found)
		what = w
		return st, err
	})
	if err != nil {
		if errors.Is(err, cluster.ErrEtcdUnreachable) {
			return fmt.Errorf("serve.cluster: %w (nothing changed)", err)
		}
		return err
	}
	fmt.Fprintf(a.out, "route %s: topic %s: %s\n", r.Name, f.topic, what)
	return nil
}

// nextMessage reads the message after cursor in topic, as route r reads it.
func (a *app) nextMessage(ctx context.Context, r config.Route, topic seam.Topic, cursor seam.Cursor) (seam.Message, error) {
	// Not runtimeConfig: it takes "" for --server, where a route means the
	// default server.
	c, err := a.file.ServerConfig(r.Server)
	if err != nil {
		return seam.Message{}, err
	}
	c.Logger = a.log.With(slog.String("server", serverName(r.Server)))
	c.Allow = a.file.Serve.Allow(r.Server)
	rt, err := runtime.New(c)
	if err != nil {
		return seam.Message{}, fmt.Errorf("%w: %s: %v", config.ErrConfig, serverKey(r.Server), err)
	}
	if err := connect(ctx, rt); err != nil {
		return seam.Message{}, fmt.Errorf("server %s: %w", serverLabel(r.Server), err)
	}
	defer disconnect(rt)
	page, err := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Since: &cursor, Limit: 1})
	if err != nil {
		return seam.Message{}, fmt.Errorf("reading the message after %s: %w", describeCursor(cursor), err)
	}
	if len(page.Messages) == 0 {
		return seam.Message{}, fmt.Errorf("no message after %s: nothing to skip", describeCursor(cursor))
	}
	return page.Messages[0], nil
}

func stateDir(sv config.Serve) string {
	if sv.StateDir == "" {
		return "./parley-state" // serve's default
	}
	return sv.StateDir
}

func startOf(r config.Route) string {
	if r.Start == "start" {
		return "the archive's start"
	}
	return "the newest message"
}

func describeCursor(c seam.Cursor) string {
	if c == "" {
		return "start"
	}
	return string(c)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/serve"
)

// stateFlags are the flags that name one (route, topic).
type stateFlags struct {
	route, topic, to string
}

func (a *app) stateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "state",
		Short: "Show or change the cursors serve saved in serve.state_dir (show, set, skip)",
		Example: `  parley-xmpp --config serve.yaml state show
  parley-xmpp --config serve.yaml state skip --route to-webhook --topic alerts`,
		Long: `Show or change the cursor serve saved for a route's topic in serve.state_dir:
the last message the route delivered (or passed over). set and skip take the
state dir's lock, as serve does: stop serve first (a running serve is reported,
exit 1). Writes are atomic: a crash leaves the old cursor or the new one.
Exit status: 0 done, 1 the operation failed, 2 bad usage (an unknown route or
topic, a bad cursor, a cluster configuration).`,
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
		RunE: func(*cobra.Command, []string) error {
			sv, err := a.stateServe()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROUTE\tTOPIC\tCURSOR\tRELAY_LAST")
			matched := false
			for _, r := range sv.Routes {
				if show.route != "" && r.Name != show.route {
					continue
				}
				for _, t := range r.Topics {
					if show.topic != "" && t != show.topic {
						continue
					}
					matched = true
					st, found, err := serve.ReadState(stateDir(sv), r.Name, t)
					if err != nil {
						return fmt.Errorf("route %s: topic %s: %w", r.Name, t, err)
					}
					cursor, relayLast := describeCursor(st.Cursor), string(st.RelayLast)
					if !found {
						cursor = "none yet (starts at " + startOf(r) + ")"
					}
					if relayLast == "" {
						relayLast = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, t, cursor, relayLast)
				}
			}
			if !matched {
				return fmt.Errorf("%w: no configured route and topic match --route %q --topic %q", errUsage, show.route, show.topic)
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
			return a.editState(cmd.Context(), set, func(ctx context.Context, _ config.Route, st serve.State, _ bool) (serve.State, string, error) {
				if err := runtime.CheckCursor(seam.Cursor(set.to)); err != nil {
					return st, "", fmt.Errorf("%w: --to %q: %v", errUsage, set.to, err)
				}
				old := st.Cursor
				st.Cursor = seam.Cursor(set.to)
				return st, fmt.Sprintf("cursor %s → %s", describeCursor(old), describeCursor(st.Cursor)), nil
			})
		},
	}
	setCmd.Flags().StringVar(&set.route, "route", "", "the route (required)")
	setCmd.Flags().StringVar(&set.topic, "topic", "", "the topic (required)")
	setCmd.Flags().StringVar(&set.to, "to", "", "the message id to resume after ('': the archive's start)")

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
	c.AddCommand(showCmd, setCmd, skipCmd)
	return c
}

// stateServe is the serve block the state commands work on: a configuration
// with routes whose cursors live in a state dir.
func (a *app) stateServe() (config.Serve, error) {
	if a.configPath == "" {
		return config.Serve{}, fmt.Errorf("%w: state needs --config FILE with serve.routes", errUsage)
	}
	sv := a.file.Serve
	if sv.Cluster != nil {
		return sv, fmt.Errorf("%w: serve.cluster is set: the cluster's cursors live in etcd (under /parley-xmpp/%s/cursors/), which `state` doesn't edit yet; "+
			"stop every node, then edit the key with etcdctl (JSON: cursor, relay_last), or drop the route's topic and let it start again as start says",
			errUsage, sv.Cluster.Name)
	}
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

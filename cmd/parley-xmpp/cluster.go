package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/parley-go/parley-xmpp/cluster"
	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/metrics"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/serve"
)

func (a *app) clusterCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "cluster",
		Short:   "Inspect a serve cluster (serve.cluster in the configuration)",
		Example: `  parley-xmpp --config serve.yaml cluster status`,
		Args:    argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("%w: name a subcommand: status", errUsage)
		},
	}
	c.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Print the cluster's members and which node delivers each route's topic (read from etcd)",
		Long: `Print the members of the serve cluster that --config's serve.cluster names, and,
for every route and topic, the node holding its lock (the node delivering it).
Exit status 1 when etcd can't be reached, 2 for a bad configuration.`,
		Example: `  parley-xmpp --config serve.yaml cluster status`,
		Args:    argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.configPath == "" {
				return fmt.Errorf("%w: cluster status needs --config FILE with serve.cluster", errUsage)
			}
			cc := a.file.Serve.Cluster
			if cc == nil {
				return fmt.Errorf("%w: serve.cluster: not set in %s", config.ErrConfig, a.configPath)
			}
			var topics []serve.Topic
			for _, r := range a.file.Serve.Routes {
				for _, t := range r.Topics {
					topics = append(topics, serve.Topic{Route: r.Name, Topic: t})
				}
			}
			rep, err := cluster.Status(cmd.Context(), cc, topics)
			if err != nil {
				return err
			}
			addr := map[string]string{}
			fmt.Fprintf(a.out, "cluster %s: %d members\n", cc.Name, len(rep.Members))
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			for _, m := range rep.Members {
				addr[m.ID] = m.Address
				fmt.Fprintf(tw, "member\t%s\t%s\n", m.ID, m.Address)
			}
			for _, t := range rep.Topics {
				owner := "unowned"
				if t.Node != "" {
					owner = t.Node
					if ad := addr[t.Node]; ad != "" {
						owner += " (" + ad + ")"
					}
				}
				note := ""
				if !t.Configured {
					note = "\t(not in this configuration)"
				}
				fmt.Fprintf(tw, "topic\t%s\t%s\t%s%s\n", t.Route, t.Topic, owner, note)
			}
			return tw.Flush()
		},
	})
	return c
}

// serveCluster runs the routes as one node of serve.cluster until ctx ends:
// etcd first (the relays' secret is there), the engine (everything checked
// that needs no XMPP server), then the servers, then the cluster.
func (a *app) serveCluster(ctx context.Context, sv config.Serve, names []string, rts []*runtime.Runtime,
	m *metrics.Prometheus, prog *progress) error {
	cli, err := cluster.Dial(ctx, sv.Cluster)
	if err != nil {
		if errors.Is(err, cluster.ErrEtcdUnreachable) {
			return fmt.Errorf("serve.cluster: %w (check serve.cluster.etcd.endpoints and that etcd runs)", err)
		}
		return err
	}
	defer cli.Close()
	secret, err := cluster.RelaySecret(ctx, cli, sv.Cluster.Name)
	if err != nil {
		return err
	}
	engine, err := serve.NewEngine(serve.Options{
		Routes: sv.Routes, RoomJID: a.file.RoomJID, Stdout: a.out, Logger: a.log, Metrics: recorder(m),
	}, secret)
	if err != nil {
		return fmt.Errorf("%w: %v", config.ErrConfig, err)
	}
	defer engine.Close()

	backends, disconnectAll, err := connectAll(ctx, names, rts)
	if err != nil {
		return err
	}
	defer disconnectAll()
	if err := engine.Bind(backends); err != nil {
		return fmt.Errorf("%w: %v", config.ErrConfig, err)
	}
	online := func() bool {
		for _, rt := range rts {
			if rt.State() != runtime.Online {
				return false
			}
		}
		return true
	}
	o := cluster.Options{Config: sv.Cluster, Client: cli, Engine: engine, Logger: a.log, Online: online}
	if m != nil {
		o.Registry = m.Registry()
	}
	node, err := cluster.Start(ctx, o)
	if err != nil {
		return err
	}
	defer node.Stop()
	if m != nil {
		stop, err := serveMetrics(sv.MetricsListen, m, rts, node.Ready)
		if err != nil {
			return err
		}
		defer stop()
	}
	prog.info(fmt.Sprintf("serving %d routes as node %s of cluster %s", len(sv.Routes), node.ID(), sv.Cluster.Name),
		slog.Int("routes", len(sv.Routes)), slog.String("node", node.ID()), slog.String("cluster", sv.Cluster.Name))
	select {
	case <-ctx.Done():
		return nil
	case <-node.Lost():
		return fmt.Errorf("cluster %s: node %s: %w", sv.Cluster.Name, node.ID(), node.Err())
	}
}

package cluster

import "github.com/prometheus/client_golang/prometheus"

type nodeMetrics struct {
	members    prometheus.Gauge
	owned      prometheus.Gauge
	handovers  prometheus.Counter
	lockLosses prometheus.Counter
	refused    prometheus.Counter
	fenced     prometheus.Counter
	unwarmed   prometheus.Gauge
}

func newNodeMetrics(reg prometheus.Registerer) *nodeMetrics {
	m := &nodeMetrics{
		members: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_xmpp_cluster_members",
			Help: "Members of the serve cluster, as this node sees them."}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_xmpp_cluster_identities_owned",
			Help: "(route, topic) locks this node holds: the topics it delivers."}),
		handovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_xmpp_cluster_handovers_total",
			Help: "Topics this node took over from another node."}),
		lockLosses: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_xmpp_cluster_lock_losses_total",
			Help: "Topics whose lock this node lost while delivering (lease ended, or fenced)."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_xmpp_cluster_cursor_writes_refused_total",
			Help: "Cursor writes etcd refused because the lock was no longer this node's."}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_xmpp_cluster_posts_fenced_total",
			Help: "Relay posts not written because this node's etcd lease might have ended (a pause, etcd unreachable)."}),
		unwarmed: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_xmpp_cluster_backups_unprepared",
			Help: "Topics this node would take over if their owner died and has not prepared yet (room joined, archive checked): a failover now is slower for them."}),
	}
	if reg != nil {
		reg.MustRegister(m.members, m.owned, m.handovers, m.lockLosses, m.refused, m.fenced, m.unwarmed)
	}
	return m
}

// RegisterMetrics registers a cluster node's collectors, at 0, with reg: for
// what lists the metrics a node exports (examples/monitoring's tests check
// the alert rules and the dashboard against them). A node registers its own
// with Options.Registry.
func RegisterMetrics(reg prometheus.Registerer) { newNodeMetrics(reg) }

// Package metrics exposes parley-xmpp's measurements to Prometheus: it
// implements observe.Metrics for the runtime, counts what the fan-out engine
// delivers, and serves /metrics, /healthz and /readyz.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-go/parley-xmpp/observe"
)

// Prometheus holds parley-xmpp's collectors, registered with one registry.
type Prometheus struct {
	gaps        *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	notOwned    *prometheus.CounterVec
	unmatched   *prometheus.CounterVec
	reg         *prometheus.Registry
	state       *prometheus.GaugeVec
	reconnects  prometheus.Counter
	joined      *prometheus.GaugeVec
	in, out     *prometheus.CounterVec
	replayed    *prometheus.CounterVec
	pending     *prometheus.GaugeVec
	queued      *prometheus.GaugeVec
	filtered    *prometheus.CounterVec
	delivered   *prometheus.CounterVec
	sinkFailure *prometheus.CounterVec
	loops       *prometheus.CounterVec
	backlog     *prometheus.GaugeVec
	skipped     *prometheus.CounterVec
}

// New returns the collectors, registered with a registry of their own (with
// the Go runtime and process collectors).
func New() *Prometheus {
	p := &Prometheus{
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_history_gaps_total",
			Help: "Replays that found the archive no longer holds the room's cursor (messages in between may be lost), and lagging subscribers that skipped messages the archive never supplied (RoomEvent.Skipped names them)."}, []string{"topic"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_archive_rows_dropped_total",
			Help: "Archive rows dropped because the server sent them again in one read (a repeated id, or the read's own cursor)."}, []string{"topic"}),
		notOwned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_rooms_not_owned_total",
			Help: "Joins that found the topic's room owned by another account (this account's affiliation was not owner: squatting; see docs/security.md)."}, []string{"topic"}),
		unmatched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_relations_unmatched_total",
			Help: "Relations (kind: reply, correction, retraction, moderation, reactions) not honoured, their target unknown or not the sender's to change: the message was delivered as a plain one. Counted once per message while the room remembers it (live and archive reads alike)."}, []string{"topic", "kind"}),
		reg: prometheus.NewRegistry(),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_xmpp_connection_state",
			Help: "1 for the connection's current state (connecting, online, reconnecting, closed), 0 for the others."}, []string{"state"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_xmpp_reconnects_total",
			Help: "Lost links re-established."}),
		joined: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_xmpp_room_joined",
			Help: "1 while the topic's room is joined."}, []string{"topic"}),
		in: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_messages_in_total",
			Help: "Messages fanned out to a topic's subscribers and waiters."}, []string{"topic"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_messages_out_total",
			Help: "Posts resolved with their id."}, []string{"topic"}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_replayed_messages_total",
			Help: "Messages read back from the archive after a rejoin or a gap in the live stream."}, []string{"topic"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_xmpp_pending_posts",
			Help: "Posts waiting for their reflection."}, []string{"topic"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_xmpp_subscriber_queue",
			Help: "Messages waiting in a topic's subscribers' queues."}, []string{"topic"}),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_messages_filtered_total",
			Help: "Messages from senders outside a topic's allowlist, withheld from its subscribers and reads (once per subscriber or read)."}, []string{"topic"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_sink_deliveries_total",
			Help: "Messages a serve route delivered to its sink."}, []string{"route", "topic"}),
		sinkFailure: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_sink_failures_total",
			Help: "Failed attempts to deliver to a serve route's sink (each is retried)."}, []string{"route"}),
		loops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_relay_loops_refused_total",
			Help: "Messages a serve relay route passed over, unrelayed, because they carried one of the engine's own relay keys: a relay loop (see docs/security.md)."}, []string{"route"}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_xmpp_route_backlog",
			Help: "Messages a serve route read from the archive and has yet to deliver."}, []string{"route", "topic"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_inbound_skipped_total",
			Help: "Elements the connection read and passed over, by kind: unknown-element (no stanza the runtime handles), oversized-tree (a stanza over the element limits), reply-dropped (a ping, version or disco request left unanswered while the send queue was full), private-message (a chat or headline message, such as a stranger's pubsub event), unrouted (from no room the runtime is in). None of them ends the link."}, []string{"kind"}),
	}
	for _, k := range observe.SkippedKinds { // every series from the start
		p.skipped.WithLabelValues(k)
	}
	p.reg.MustRegister(p.gaps, p.dropped, p.skipped, p.notOwned, p.unmatched)
	p.reg.MustRegister(p.state, p.reconnects, p.joined, p.in, p.out, p.replayed, p.pending, p.queued,
		p.filtered, p.delivered, p.sinkFailure, p.loops, p.backlog,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return p
}

// Registry is where the collectors are registered.
func (p *Prometheus) Registry() *prometheus.Registry { return p.reg }

var states = []observe.State{observe.Connecting, observe.Online, observe.Reconnecting, observe.Closed}

// ConnectionState implements observe.Metrics.
func (p *Prometheus) ConnectionState(s observe.State) {
	for _, st := range states {
		v := 0.0
		if st == s {
			v = 1
		}
		p.state.WithLabelValues(st.String()).Set(v)
	}
}

// InboundSkipped implements observe.InboundSkipper.
func (p *Prometheus) InboundSkipped(kind string) { p.skipped.WithLabelValues(kind).Inc() }

// Reconnected implements observe.Metrics.
func (p *Prometheus) Reconnected() { p.reconnects.Inc() }

// Room implements observe.Metrics: the topic's collectors, bound once.
func (p *Prometheus) Room(topic string) observe.Room {
	return &room{
		gaps: p.gaps.WithLabelValues(topic), dropped: p.dropped.WithLabelValues(topic), notOwned: p.notOwned.WithLabelValues(topic),
		joined: p.joined.WithLabelValues(topic), in: p.in.WithLabelValues(topic), out: p.out.WithLabelValues(topic),
		replayed: p.replayed.WithLabelValues(topic), pending: p.pending.WithLabelValues(topic), queued: p.queued.WithLabelValues(topic),
		filtered: p.filtered.WithLabelValues(topic), unmatched: p.unmatched.MustCurryWith(prometheus.Labels{"topic": topic}),
	}
}

type room struct {
	gaps, dropped, notOwned prometheus.Counter
	joined, pending, queued prometheus.Gauge
	in, out, replayed       prometheus.Counter
	filtered                prometheus.Counter
	unmatched               *prometheus.CounterVec // by kind
}

// UnmatchedRelation implements observe.RelationRecorder.
func (r *room) UnmatchedRelation(kind string) { r.unmatched.WithLabelValues(kind).Inc() }

// HistoryGap implements observe.GapRecorder.
func (r *room) HistoryGap() { r.gaps.Inc() }

// ArchiveRowsDropped implements observe.RowDropper.
func (r *room) ArchiveRowsDropped(n int) { r.dropped.Add(float64(n)) }

// RoomNotOwned implements observe.OwnershipRecorder.
func (r *room) RoomNotOwned() { r.notOwned.Inc() }

func (r *room) Joined(b bool) {
	if b {
		r.joined.Set(1)
	} else {
		r.joined.Set(0)
	}
}
func (r *room) MessageIn()            { r.in.Inc() }
func (r *room) MessageOut()           { r.out.Inc() }
func (r *room) Replayed(n int)        { r.replayed.Add(float64(n)) }
func (r *room) PendingPosts(n int)    { r.pending.Set(float64(n)) }
func (r *room) SubscriberQueue(n int) { r.queued.Set(float64(n)) }
func (r *room) Filtered(n int)        { r.filtered.Add(float64(n)) }

// Delivered counts a message a route delivered.
func (p *Prometheus) Delivered(route, topic string) { p.delivered.WithLabelValues(route, topic).Inc() }

// SinkFailure counts a failed delivery attempt of a route.
func (p *Prometheus) SinkFailure(route string) { p.sinkFailure.WithLabelValues(route).Inc() }

// RelayLoopRefused counts a message a relay route passed over because it
// carried one of the engine's own relay keys (serve.LoopRecorder).
func (p *Prometheus) RelayLoopRefused(route string) { p.loops.WithLabelValues(route).Inc() }

// Backlog sets how many messages a route has read and not yet delivered.
func (p *Prometheus) Backlog(route, topic string, n int) {
	p.backlog.WithLabelValues(route, topic).Set(float64(n))
}

// Handler serves /metrics; /healthz answers 200 while the process runs;
// /readyz answers 200 when ready() says so, 503 otherwise.
func (p *Prometheus) Handler(ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil && !ready() {
			http.Error(w, "not ready\n", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

var (
	_ observe.Metrics           = (*Prometheus)(nil)
	_ observe.GapRecorder       = (*room)(nil)
	_ observe.RowDropper        = (*room)(nil)
	_ observe.OwnershipRecorder = (*room)(nil)
	_ observe.RelationRecorder  = (*room)(nil)
)

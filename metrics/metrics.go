// Package metrics exposes parley-xmpp's measurements to Prometheus: it
// implements observe.Metrics for the runtime, counts what the fan-out engine
// delivers, and serves /metrics, /healthz and /readyz.
package metrics

import (
	"net/http"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-go/parley-xmpp/observe"
)

// Prometheus holds parley-xmpp's collectors, registered with one registry.
//
// Every per-connection and per-topic series carries a server label: serve runs
// one runtime per configured server, each with ForServer(name)'s
// observe.Metrics (serve names the default server "default", as its logs do),
// so two servers' connection states, and the same topic on two servers, are
// series apart. A Prometheus used directly as a runtime's observe.Metrics (a
// library's single runtime) reports server="" (in PromQL, the same as no
// server label).
type Prometheus struct {
	gaps        *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	notOwned    *prometheus.CounterVec
	unmatched   *prometheus.CounterVec
	reg         *prometheus.Registry
	state       *prometheus.GaugeVec
	reconnects  *prometheus.CounterVec
	resumes     *prometheus.CounterVec
	unacked     *prometheus.GaugeVec
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
	routeSkip   *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	stopped     *prometheus.GaugeVec

	def     sync.Once
	defSrv  *Server  // ForServer(""), bound on first use
	servers sync.Map // name → *Server
}

// New returns the collectors, registered with a registry of their own (with
// the Go runtime and process collectors, and parley_xmpp_build_info).
func New() *Prometheus {
	perTopic := []string{"server", "topic"}
	p := &Prometheus{
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_history_gaps_total",
			Help: "Replays that found the archive no longer holds the room's cursor (messages in between may be lost), and lagging subscribers that skipped messages the archive never supplied (RoomEvent.Skipped names them)."}, perTopic),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_archive_rows_dropped_total",
			Help: "Archive rows dropped because the server sent them again in one read (a repeated id, or the read's own cursor); every message is still delivered once."}, perTopic),
		notOwned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_rooms_not_owned_total",
			Help: "Joins that found the topic's room owned by another account (this account's affiliation was not owner: squatting; see docs/security.md)."}, perTopic),
		unmatched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_relations_unmatched_total",
			Help: "Relations (kind: reply, correction, retraction, moderation, reactions) not honoured, their target unknown or not the sender's to change: the message was delivered as a plain one. Counted once per message while the room remembers it (live and archive reads alike)."}, []string{"server", "topic", "kind"}),
		reg: prometheus.NewRegistry(),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_xmpp_connection_state",
			Help: "1 for the server's connection's current state (connecting, online, reconnecting, closed), 0 for the others; all 0 before its first connect. One set per server (label server: its name under servers, \"default\" for backend_config)."}, []string{"server", "state"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_reconnects_total",
			Help: "Lost links to the server re-established, resumed ones (parley_xmpp_resumptions_total) included; the others were full recoveries (every room rejoined and replayed from the archive)."}, []string{"server"}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_resumptions_total",
			Help: "Lost links to the server resumed (XEP-0198 stream management): the server kept the session and the rooms' occupancy; no rejoin, no replay."}, []string{"server"}),
		unacked: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_xmpp_unacked_stanzas",
			Help: "Stanzas sent to the server that it has not acknowledged yet (XEP-0198), kept to be sent again on a resumption."}, []string{"server"}),
		joined: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_xmpp_room_joined",
			Help: "1 while the topic's room on the server is joined."}, perTopic),
		in: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_messages_in_total",
			Help: "Messages fanned out to a topic's subscribers and waiters."}, perTopic),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_messages_out_total",
			Help: "Posts resolved with their id."}, perTopic),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_replayed_messages_total",
			Help: "Messages read back from the archive after a rejoin or a gap in the live stream."}, perTopic),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_xmpp_pending_posts",
			Help: "Posts waiting for their reflection."}, perTopic),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_xmpp_subscriber_queue",
			Help: "Messages waiting in a topic's subscribers' queues."}, perTopic),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_messages_filtered_total",
			Help: "Messages from senders outside a topic's allowlist, withheld from its subscribers and reads (once per subscriber or read)."}, perTopic),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_sink_deliveries_total",
			Help: "Messages a serve route delivered to its sink (a route reads from one server: its name says which)."}, []string{"route", "topic"}),
		sinkFailure: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_sink_failures_total",
			Help: "Failed attempts to deliver to a serve route's sink (each is retried)."}, []string{"route"}),
		loops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_relay_loops_refused_total",
			Help: "Messages a serve relay route passed over, unrelayed, because they carried one of the engine's own relay keys: a relay loop (see docs/security.md)."}, []string{"route"}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_xmpp_route_backlog",
			Help: "Messages a serve route read from the archive and has yet to deliver."}, []string{"route", "topic"}),
		routeSkip: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_route_skipped_total",
			Help: "Messages a serve route passed over undelivered (on_exhausted: skip), by reason: refused (an error no retry mends) or max_attempts."}, []string{"route", "reason"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_dead_letters_total",
			Help: "Messages a serve route handed to its dead-letter sink (on_exhausted: dead_letter) and passed over."}, []string{"route"}),
		stopped: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_xmpp_route_stopped",
			Help: "1 while a serve route's topic is stopped on a message its sink refused (on_exhausted: stop); it delivers no more until an operator steps in."}, []string{"route", "topic"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_xmpp_inbound_skipped_total",
			Help: "Elements the server's connection read and passed over, by kind: unknown-element (no stanza the runtime handles), oversized-tree (a stanza over the element limits), reply-dropped (a ping, version or disco request left unanswered while the send queue was full), private-message (a chat or headline message, such as a stranger's pubsub event), unrouted (from no room the runtime is in). None of them ends the link."}, []string{"server", "kind"}),
	}
	version, revision := buildInfo()
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_xmpp_build_info",
		Help:        "1, labelled with the module version (\"(devel)\" for a build from a checkout) and the VCS revision it was built from (\"unknown\" when the build recorded none), as parley-xmpp version prints them.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision}})
	build.Set(1)
	p.reg.MustRegister(p.gaps, p.dropped, p.skipped, p.notOwned, p.unmatched, build)
	p.reg.MustRegister(p.state, p.reconnects, p.resumes, p.unacked, p.joined, p.in, p.out, p.replayed, p.pending, p.queued,
		p.filtered, p.delivered, p.sinkFailure, p.loops, p.backlog, p.routeSkip, p.deadLetters, p.stopped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return p
}

// buildInfo is the module version and VCS revision of the running binary.
func buildInfo() (version, revision string) {
	version, revision = "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if bi.Main.Version != "" {
		version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			revision = s.Value
		}
	}
	return
}

// Registry is where the collectors are registered.
func (p *Prometheus) Registry() *prometheus.Registry { return p.reg }

var states = []observe.State{observe.Connecting, observe.Online, observe.Reconnecting, observe.Closed}

// ForServer returns the measurements of the runtime connected to the named
// server: its series carry server=name. Its connection-state series (all 0),
// reconnect and resumption counters, unacked-stanza gauge and skipped-element
// counters exist from this call on,
// before the runtime's first event. One *Server per name.
func (p *Prometheus) ForServer(name string) *Server {
	if s, ok := p.servers.Load(name); ok {
		return s.(*Server)
	}
	s := &Server{p: p, name: name, reconnects: p.reconnects.WithLabelValues(name),
		resumes: p.resumes.WithLabelValues(name), unacked: p.unacked.WithLabelValues(name)}
	for i, st := range states {
		s.state[i] = p.state.WithLabelValues(name, st.String())
	}
	for _, k := range observe.SkippedKinds {
		p.skipped.WithLabelValues(name, k)
	}
	actual, _ := p.servers.LoadOrStore(name, s)
	return actual.(*Server)
}

func (p *Prometheus) unnamed() *Server {
	p.def.Do(func() { p.defSrv = p.ForServer("") })
	return p.defSrv
}

// ConnectionState implements observe.Metrics, for server "".
func (p *Prometheus) ConnectionState(s observe.State) { p.unnamed().ConnectionState(s) }

// InboundSkipped implements observe.InboundSkipper, for server "".
func (p *Prometheus) InboundSkipped(kind string) { p.unnamed().InboundSkipped(kind) }

// Reconnected implements observe.Metrics, for server "".
func (p *Prometheus) Reconnected() { p.unnamed().Reconnected() }

// Resumed implements observe.StreamManager, for server "".
func (p *Prometheus) Resumed() { p.unnamed().Resumed() }

// UnackedStanzas implements observe.StreamManager, for server "".
func (p *Prometheus) UnackedStanzas(n int) { p.unnamed().UnackedStanzas(n) }

// Room implements observe.Metrics, for server "".
func (p *Prometheus) Room(topic string) observe.Room { return p.unnamed().Room(topic) }

// Server is one server's measurements (ForServer): the observe.Metrics of
// the runtime connected to it.
type Server struct {
	p          *Prometheus
	name       string
	state      [4]prometheus.Gauge // by states' order
	reconnects prometheus.Counter
	resumes    prometheus.Counter
	unacked    prometheus.Gauge
}

// ConnectionState implements observe.Metrics.
func (s *Server) ConnectionState(st observe.State) {
	for i, x := range states {
		v := 0.0
		if x == st {
			v = 1
		}
		s.state[i].Set(v)
	}
}

// InboundSkipped implements observe.InboundSkipper.
func (s *Server) InboundSkipped(kind string) { s.p.skipped.WithLabelValues(s.name, kind).Inc() }

// Reconnected implements observe.Metrics.
func (s *Server) Reconnected() { s.reconnects.Inc() }

// Resumed implements observe.StreamManager.
func (s *Server) Resumed() { s.resumes.Inc() }

// UnackedStanzas implements observe.StreamManager.
func (s *Server) UnackedStanzas(n int) { s.unacked.Set(float64(n)) }

// Room implements observe.Metrics: the topic's collectors on this server,
// bound once (and so at 0 from the room's creation on).
func (s *Server) Room(topic string) observe.Room {
	p, l := s.p, []string{s.name, topic}
	unmatched := p.unmatched.MustCurryWith(prometheus.Labels{"server": s.name, "topic": topic})
	for _, k := range observe.RelationKinds { // every kind's series from the start
		unmatched.WithLabelValues(k)
	}
	return &room{
		gaps: p.gaps.WithLabelValues(l...), dropped: p.dropped.WithLabelValues(l...), notOwned: p.notOwned.WithLabelValues(l...),
		joined: p.joined.WithLabelValues(l...), in: p.in.WithLabelValues(l...), out: p.out.WithLabelValues(l...),
		replayed: p.replayed.WithLabelValues(l...), pending: p.pending.WithLabelValues(l...), queued: p.queued.WithLabelValues(l...),
		filtered: p.filtered.WithLabelValues(l...), unmatched: unmatched,
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

// Route creates a serve route's series at 0, before its first delivery:
// its failures, and its deliveries and backlog for each of its topics (so a
// rule on them sees a route that never delivered, and rate() has a start).
func (p *Prometheus) Route(name string, topics []string) {
	p.sinkFailure.WithLabelValues(name)
	for _, t := range topics {
		p.delivered.WithLabelValues(name, t)
		p.backlog.WithLabelValues(name, t)
	}
}

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

// Skipped counts a message a route passed over, by reason.
func (p *Prometheus) Skipped(route, reason string) { p.routeSkip.WithLabelValues(route, reason).Inc() }

// DeadLettered counts a message a route handed to its dead-letter sink.
func (p *Prometheus) DeadLettered(route string) { p.deadLetters.WithLabelValues(route).Inc() }

// Stopped marks a route's topic stopped.
func (p *Prometheus) Stopped(route, topic string) { p.stopped.WithLabelValues(route, topic).Set(1) }

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
	_ observe.Metrics           = (*Server)(nil)
	_ observe.InboundSkipper    = (*Server)(nil)
	_ observe.InboundSkipper    = (*Prometheus)(nil)
	_ observe.StreamManager     = (*Server)(nil)
	_ observe.StreamManager     = (*Prometheus)(nil)
	_ observe.GapRecorder       = (*room)(nil)
	_ observe.RowDropper        = (*room)(nil)
	_ observe.OwnershipRecorder = (*room)(nil)
	_ observe.RelationRecorder  = (*room)(nil)
)

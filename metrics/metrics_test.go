package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/observe"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return rec.Code, string(body)
}

func TestMetricsAreExposed(t *testing.T) {
	p := New()
	p.ConnectionState(observe.State(1))
	p.Reconnected()
	p.Resumed()
	p.UnackedStanzas(4)
	r := p.Room("general")
	r.Joined(true)
	r.MessageIn()
	r.MessageIn()
	r.MessageOut()
	r.Replayed(5)
	r.PendingPosts(2)
	r.SubscriberQueue(7)
	r.(observe.GapRecorder).HistoryGap()
	r.(observe.RowDropper).ArchiveRowsDropped(3)
	r.(observe.OwnershipRecorder).RoomNotOwned()
	r.(observe.RelationRecorder).UnmatchedRelation("correction")
	r.Filtered(4)
	p.Delivered("to-stdout", "general")
	p.SinkFailure("to-webhook")
	p.RelayLoopRefused("to-relay")
	p.Backlog("to-stdout", "general", 3)
	p.Skipped("to-webhook", "refused")
	p.DeadLettered("to-webhook")
	p.Stopped("to-webhook", "general")

	code, body := get(t, p.Handler(nil), "/metrics")
	require.Equal(t, 200, code)
	for _, want := range []string{
		`parley_xmpp_connection_state{server="",state="online"} 1`,
		`parley_xmpp_connection_state{server="",state="reconnecting"} 0`,
		`parley_xmpp_reconnects_total{server=""} 1`,
		`parley_xmpp_resumptions_total{server=""} 1`,
		`parley_xmpp_unacked_stanzas{server=""} 4`,
		`parley_xmpp_room_joined{server="",topic="general"} 1`,
		`parley_xmpp_messages_in_total{server="",topic="general"} 2`,
		`parley_xmpp_messages_out_total{server="",topic="general"} 1`,
		`parley_xmpp_replayed_messages_total{server="",topic="general"} 5`,
		`parley_xmpp_pending_posts{server="",topic="general"} 2`,
		`parley_xmpp_subscriber_queue{server="",topic="general"} 7`,
		`parley_xmpp_messages_filtered_total{server="",topic="general"} 4`,
		`parley_xmpp_sink_deliveries_total{route="to-stdout",topic="general"} 1`,
		`parley_xmpp_sink_failures_total{route="to-webhook"} 1`,
		`parley_xmpp_relay_loops_refused_total{route="to-relay"} 1`,
		`parley_xmpp_route_backlog{route="to-stdout",topic="general"} 3`,
		`parley_xmpp_route_skipped_total{reason="refused",route="to-webhook"} 1`,
		`parley_xmpp_dead_letters_total{route="to-webhook"} 1`,
		`parley_xmpp_route_stopped{route="to-webhook",topic="general"} 1`,
		`parley_xmpp_history_gaps_total{server="",topic="general"} 1`,
		`parley_xmpp_archive_rows_dropped_total{server="",topic="general"} 3`,
		`parley_xmpp_rooms_not_owned_total{server="",topic="general"} 1`,
		`parley_xmpp_relations_unmatched_total{kind="correction",server="",topic="general"} 1`,
		`parley_xmpp_relations_unmatched_total{kind="reply",server="",topic="general"} 0`,
	} {
		assert.True(t, strings.Contains(body, want), "missing %s", want)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	ready := false
	h := New().Handler(func() bool { return ready })
	code, _ := get(t, h, "/healthz")
	assert.Equal(t, 200, code)
	code, _ = get(t, h, "/readyz")
	assert.Equal(t, 503, code)
	ready = true
	code, _ = get(t, h, "/readyz")
	assert.Equal(t, 200, code)
}

// Every kind of skipped inbound element has its series from the start, and
// counts.
func TestInboundSkippedSeries(t *testing.T) {
	p := New()
	p.InboundSkipped(observe.SkipPrivate)
	fams, err := p.Registry().Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() == "parley_xmpp_inbound_skipped_total" {
			for _, m := range f.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	for _, k := range observe.SkippedKinds {
		assert.Contains(t, got, k)
	}
	assert.Equal(t, 1.0, got[observe.SkipPrivate])
}

// gathered is every series of p's registry as "name{labels}" → value.
func gathered(t *testing.T, p *Prometheus) map[string]float64 {
	t.Helper()
	fams, err := p.Registry().Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[f.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}

// Two servers' runtimes: each has its own connection state, reconnects,
// resumptions, unacked stanzas and skipped elements, and the same topic on both is two series.
func TestEveryServerHasItsOwnSeries(t *testing.T) {
	p := New()
	a, b := p.ForServer("default"), p.ForServer("remote")
	assert.Same(t, a, p.ForServer("default"), "one binding per server")
	a.ConnectionState(observe.Online)
	b.ConnectionState(observe.Reconnecting)
	a.ConnectionState(observe.Online) // the last writer does not erase the other server's state
	b.Reconnected()
	b.Resumed()
	a.UnackedStanzas(7)
	b.InboundSkipped(observe.SkipUnrouted)
	a.Room("alerts").MessageIn()
	b.Room("alerts").MessageOut()
	b.Room("alerts").PendingPosts(3)

	got := gathered(t, p)
	for series, want := range map[string]float64{
		`parley_xmpp_connection_state{server="default",state="online"}`:       1,
		`parley_xmpp_connection_state{server="default",state="reconnecting"}`: 0,
		`parley_xmpp_connection_state{server="remote",state="online"}`:        0,
		`parley_xmpp_connection_state{server="remote",state="reconnecting"}`:  1,
		`parley_xmpp_reconnects_total{server="default"}`:                      0,
		`parley_xmpp_reconnects_total{server="remote"}`:                       1,
		`parley_xmpp_resumptions_total{server="default"}`:                     0,
		`parley_xmpp_resumptions_total{server="remote"}`:                      1,
		`parley_xmpp_unacked_stanzas{server="default"}`:                       7,
		`parley_xmpp_unacked_stanzas{server="remote"}`:                        0,
		`parley_xmpp_inbound_skipped_total{kind="unrouted",server="remote"}`:  1,
		`parley_xmpp_inbound_skipped_total{kind="unrouted",server="default"}`: 0,
		`parley_xmpp_messages_in_total{server="default",topic="alerts"}`:      1,
		`parley_xmpp_messages_in_total{server="remote",topic="alerts"}`:       0,
		`parley_xmpp_messages_out_total{server="remote",topic="alerts"}`:      1,
		`parley_xmpp_pending_posts{server="remote",topic="alerts"}`:           3,
		`parley_xmpp_pending_posts{server="default",topic="alerts"}`:          0,
	} {
		v, ok := got[series]
		if assert.True(t, ok, "no series %s", series) {
			assert.Equal(t, want, v, series)
		}
	}
	for k := range got {
		assert.NotContains(t, k, `server=""`, "nothing was reported for the unnamed server")
	}
}

// The series a rule watches exist before the first event: a server's
// connection state, reconnects, resumptions and unacked stanzas once it is
// bound, a route's failures,
// deliveries and backlog once declared, a room's once the runtime binds it.
func TestSeriesExistFromTheStart(t *testing.T) {
	p := New()
	p.ForServer("default").Room("alerts")
	p.Route("hook", []string{"alerts", "audit"})
	got := gathered(t, p)
	for _, k := range observe.RelationKinds {
		series := `parley_xmpp_relations_unmatched_total{kind="` + k + `",server="default",topic="alerts"}`
		if v, ok := got[series]; assert.True(t, ok, "no series %s before any event", series) {
			assert.Zero(t, v, series)
		}
	}
	for _, series := range []string{
		`parley_xmpp_connection_state{server="default",state="connecting"}`,
		`parley_xmpp_connection_state{server="default",state="online"}`,
		`parley_xmpp_connection_state{server="default",state="reconnecting"}`,
		`parley_xmpp_connection_state{server="default",state="closed"}`,
		`parley_xmpp_reconnects_total{server="default"}`,
		`parley_xmpp_resumptions_total{server="default"}`,
		`parley_xmpp_unacked_stanzas{server="default"}`,
		`parley_xmpp_inbound_skipped_total{kind="oversized-tree",server="default"}`,
		`parley_xmpp_sink_failures_total{route="hook"}`,
		`parley_xmpp_sink_deliveries_total{route="hook",topic="alerts"}`,
		`parley_xmpp_sink_deliveries_total{route="hook",topic="audit"}`,
		`parley_xmpp_route_backlog{route="hook",topic="alerts"}`,
		`parley_xmpp_route_backlog{route="hook",topic="audit"}`,
	} {
		v, ok := got[series]
		if assert.True(t, ok, "no series %s before any event", series) {
			assert.Zero(t, v, series)
		}
	}
}

// parley_xmpp_build_info is 1, with the binary's version and revision.
func TestBuildInfo(t *testing.T) {
	got := gathered(t, New())
	version, revision := buildInfo()
	assert.NotEmpty(t, version)
	assert.NotEmpty(t, revision)
	assert.Equal(t, 1.0, got[fmt.Sprintf("parley_xmpp_build_info{revision=%q,version=%q}", revision, version)], "%v", got)
}

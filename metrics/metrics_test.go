package metrics

import (
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
	r.Filtered(4)
	p.Delivered("to-stdout", "general")
	p.SinkFailure("to-webhook")
	p.Backlog("to-stdout", "general", 3)
	p.Skipped("to-webhook", "refused")
	p.DeadLettered("to-webhook")
	p.Stopped("to-webhook", "general")

	code, body := get(t, p.Handler(nil), "/metrics")
	require.Equal(t, 200, code)
	for _, want := range []string{
		`parley_xmpp_connection_state{state="online"} 1`,
		`parley_xmpp_connection_state{state="reconnecting"} 0`,
		`parley_xmpp_reconnects_total 1`,
		`parley_xmpp_room_joined{topic="general"} 1`,
		`parley_xmpp_messages_in_total{topic="general"} 2`,
		`parley_xmpp_messages_out_total{topic="general"} 1`,
		`parley_xmpp_replayed_messages_total{topic="general"} 5`,
		`parley_xmpp_pending_posts{topic="general"} 2`,
		`parley_xmpp_subscriber_queue{topic="general"} 7`,
		`parley_xmpp_messages_filtered_total{topic="general"} 4`,
		`parley_xmpp_sink_deliveries_total{route="to-stdout",topic="general"} 1`,
		`parley_xmpp_sink_failures_total{route="to-webhook"} 1`,
		`parley_xmpp_route_backlog{route="to-stdout",topic="general"} 3`,
		`parley_xmpp_route_skipped_total{reason="refused",route="to-webhook"} 1`,
		`parley_xmpp_dead_letters_total{route="to-webhook"} 1`,
		`parley_xmpp_route_stopped{route="to-webhook",topic="general"} 1`,
		`parley_xmpp_history_gaps_total{topic="general"} 1`,
		`parley_xmpp_archive_rows_dropped_total{topic="general"} 3`,
		`parley_xmpp_rooms_not_owned_total{topic="general"} 1`,
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

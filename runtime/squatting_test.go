package runtime_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/metrics"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// notOwnedCount is parley_xmpp_rooms_not_owned_total{server="",topic} as m's /metrics
// shows it ("" when it doesn't).
func notOwnedCount(t *testing.T, m *metrics.Prometheus, topic seam.Topic) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	prefix := fmt.Sprintf("parley_xmpp_rooms_not_owned_total{server=\"\",topic=%q} ", string(topic))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return ""
}

// Squatting on a real server: another account (parley2) creates a topic's
// room first and stays in it, so it owns it. The runtime (parley) then
// subscribes to the topic: it joins the room as it is, and reports that it
// does not own it: a RoomNotOwned event naming the room and the affiliation
// the room gave it (none), and parley_xmpp_rooms_not_owned_total{topic}. A
// topic whose room the runtime creates itself reports nothing.
func TestSquattedRoomIsReported(t *testing.T) {
	s := xmpptest.Require(t)
	squatted, own := freshTopic(), freshTopic()
	room := roomOf(t, s, squatted)
	squatter, err := xmpptest.Dial(s, 1)
	require.NoError(t, err)
	t.Cleanup(squatter.Close)
	require.NoError(t, squatter.Join(room, "squatter"))

	var ev events
	m := metrics.New()
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.OnRoomEvent = ev.add
		c.Metrics = m
	}))
	_, err = rt.Subscribe(ctx5(t), own, func(seam.Message) {})
	require.NoError(t, err)
	_, err = rt.Subscribe(ctx5(t), squatted, func(seam.Message) {})
	require.NoError(t, err, "the squatted room is joined as it is")

	require.Eventually(t, func() bool { return ev.has(runtime.RoomNotOwned) }, 10*time.Second, 5*time.Millisecond,
		"a RoomNotOwned event for the squatted room")
	time.Sleep(200 * time.Millisecond) // room for an event about the owned topic to show
	ev.mu.Lock()
	var got []runtime.RoomEvent
	for _, e := range ev.es {
		if e.Kind == runtime.RoomNotOwned {
			got = append(got, e)
		}
	}
	ev.mu.Unlock()
	require.Len(t, got, 1, "one event, for the squatted topic only: %+v", got)
	e := got[0]
	assert.Equal(t, squatted, e.Topic)
	assert.Equal(t, room, e.Room)
	assert.Equal(t, "none", e.Affiliation, "the squatter's room lets the runtime in without an affiliation")
	assert.True(t, errors.Is(e.Err, runtime.ErrRoomNotOwned), "%v", e.Err)
	assert.Equal(t, "not-owned", e.Kind.String())
	assert.Equal(t, "1", notOwnedCount(t, m, squatted), "the metric counts the squatted room")
	assert.Equal(t, "0", notOwnedCount(t, m, own), "a room the runtime created is its own")
}

// The prevention docs/security.md gives for Prosody: a server admin pre-creates
// the topic's room, persistent, with the bridge account as its owner (the
// admin-shell line there). The runtime joins it as its owner: nothing is
// reported.
func TestPreCreatedRoomIsOwned(t *testing.T) {
	s := xmpptest.Require(t)
	if s.Name != "prosody" {
		t.Skip("the room is pre-created with Prosody's admin shell")
	}
	topic := freshTopic()
	room := roomOf(t, s, topic)
	got := xmpptest.ProsodyShell(t, fmt.Sprintf(`local room = prosody.hosts[%q].modules.muc.create_room(%q); `+
		`room:set_affiliation(true, %q, "owner"); room:set_persistent(true); room:save(true); return room:get_affiliation(%q)`,
		s.MUC, room, s.Accounts[0][0]+"@"+s.Domain, s.Accounts[0][0]+"@"+s.Domain))
	require.Equal(t, "owner", got)

	var ev events
	m := metrics.New()
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.OnRoomEvent = ev.add
		c.Metrics = m
	}))
	_, err := rt.Subscribe(ctx5(t), topic, func(seam.Message) {})
	require.NoError(t, err)
	id, err := rt.Post(ctx5(t), topic, "me", "in the pre-created room", seam.PostOptions{})
	require.NoError(t, err)
	assert.NotEmpty(t, id)
	time.Sleep(200 * time.Millisecond)
	assert.False(t, ev.has(runtime.RoomNotOwned), "the bridge owns the pre-created room")
	assert.Equal(t, "0", notOwnedCount(t, m, topic))
}

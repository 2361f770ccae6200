package runtime_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/metrics"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// What no dev server sends (neither has XEP-0425 moderation enabled) and
// what only a forger does, from a scripted server, live and in its archive:
// the room's own moderation retracts anyone's message; a moderation from an
// occupant, and a correction by another occupant under the sender's nick
// (another occupant-id), are plain messages, counted as unmatched; a
// reaction to a message the room never saw too. FetchRecent agrees.
func TestHostileRelations(t *testing.T) {
	type arow struct{ id, nick, inner string }
	rows := []arow{
		{"m1", "alice", `<body>spam</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/><occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ-alice'/>`},
		{"m2", "", `<apply-to xmlns='urn:xmpp:fasten:0' id='m1'><moderated xmlns='urn:xmpp:message-moderate:0' by='` + hostileRoom + `/mod'><retract xmlns='urn:xmpp:message-retract:0'/><reason>spam</reason></moderated></apply-to><body>This message was moderated.</body>`},
		{"m3", "mallory", `<retract xmlns='urn:xmpp:message-retract:1' id='m1'><moderated xmlns='urn:xmpp:message-moderate:1' by='` + hostileRoom + `/mallory'/></retract><body>forged moderation</body><occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ-mallory'/>`},
		{"m4", "alice", `<body>forged edit</body><replace xmlns='urn:xmpp:message-correct:0' id='o1'/><occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ-impostor'/>`},
		{"m5", "bob", `<reactions xmlns='urn:xmpp:reactions:0' id='never-seen'><reaction>👍</reaction></reactions><store xmlns='urn:xmpp:hints'/>`},
		{"m6", "alice", `<body>the real fix</body><replace xmlns='urn:xmpp:message-correct:0' id='o1'/><occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ-alice'/>`},
	}
	var mu sync.Mutex
	archived := 0
	f := &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		mu.Lock()
		have := slices.Clone(rows[:archived])
		mu.Unlock()
		ids := make([]string, len(have))
		for i, r := range have {
			ids[i] = r.id
		}
		send := func(rs []arow) {
			for _, r := range rs {
				row(st, hostileRoom, q.queryID, r.id, r.nick, r.inner)
			}
			if len(rs) == 0 {
				fin(st, q, true, "", "")
				return
			}
			fin(st, q, true, rs[0].id, rs[len(rs)-1].id)
		}
		switch {
		case q.last: // the newest page (empty at the join)
			send(have)
		case q.before != "":
			if i := slices.Index(ids, q.before); i > 0 {
				send(have[i-1 : i])
				return
			}
			send(nil)
		case q.after != "":
			send(have[slices.Index(ids, q.after)+1:])
		default:
			send(have)
		}
	}}
	m := metrics.New()
	rt := hostileRuntime(t, f, func(c *runtime.Config) { c.Metrics = m })
	got := make(chan seam.Message, 10)
	sub, err := rt.Subscribe(ctx5(t), hostileTopic, func(m seam.Message) { got <- m })
	require.NoError(t, err)
	defer sub.Close()
	st := f.stream()
	for _, r := range rows {
		mu.Lock()
		archived++
		mu.Unlock()
		from := hostileRoom
		if r.nick != "" {
			from += "/" + r.nick
		}
		st.Send(`<message type='groupchat' from='%s' to='%s'>%s<stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='%s'/></message>`, from, st.JID, r.inner, hostileRoom, r.id)
	}
	live := map[seam.BackendMsgID]seam.Message{}
	for len(live) < len(rows) {
		select {
		case m := <-got:
			live[m.BackendMsgID] = m
		case <-time.After(5 * time.Second):
			t.Fatalf("delivered: %v", live)
		}
	}
	assert.Equal(t, seam.BackendMsgID("m1"), live["m2"].Retracts, "the room's moderation")
	assert.True(t, live["m2"].Moderated)
	assert.Empty(t, live["m2"].Content)
	assert.Empty(t, live["m3"].Retracts, "a moderation from an occupant is forged")
	assert.Equal(t, "forged moderation", live["m3"].Content)
	assert.Empty(t, live["m4"].Replaces, "another occupant under alice's nick")
	assert.Equal(t, "forged edit", live["m4"].Content)
	assert.Empty(t, live["m5"].ReactsTo, "a reaction to a message never seen")
	assert.Equal(t, seam.BackendMsgID("m1"), live["m6"].Replaces)
	assert.Equal(t, 1.0, unmatched(t, m, "moderation"))
	assert.Equal(t, 1.0, unmatched(t, m, "correction"))
	assert.Equal(t, 1.0, unmatched(t, m, "reactions"))

	page, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic})
	require.NoError(t, err)
	require.Len(t, page.Messages, len(rows))
	for _, a := range page.Messages {
		l := live[a.BackendMsgID]
		a.Timestamp, l.Timestamp = time.Time{}, time.Time{}
		assert.Equal(t, l, a, "FetchRecent and live agree on %s", a.BackendMsgID)
	}
}

// unmatched reads parley_xmpp_relations_unmatched_total for the hostile
// topic and kind.
func unmatched(t *testing.T, m *metrics.Prometheus, kind string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != "parley_xmpp_relations_unmatched_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["topic"] == string(hostileTopic) && labels["kind"] == kind {
				return s.GetCounter().GetValue()
			}
		}
	}
	return 0
}

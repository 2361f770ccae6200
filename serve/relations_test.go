package serve

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// A relay carries a person's correction, reply, reactions and retraction
// into the destination as what they are, their target mapped to the
// destination's copy; a reaction to a message the relay never carried is
// passed over, not posted as an empty message (issue 23).
func TestRelayCarriesRelations(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	source := connectedRuntime(t, s, 0)
	dest := connectedRuntime(t, s, 1)
	from, to := freshTopic("relations from"), freshTopic("relations to")
	first := post(t, source, from, "the bridge's first")

	alice, err := xmpptest.Dial(s, 2)
	require.NoError(t, err)
	defer alice.Close()
	local, err := runtime.RoomLocalpart(from)
	require.NoError(t, err)
	room := local + "@" + s.MUC
	require.NoError(t, alice.Join(room, "alice"))
	say := func(body, origin, extra string) seam.BackendMsgID {
		t.Helper()
		id, err := alice.PostWithOrigin(room, body, origin, extra)
		require.NoError(t, err)
		return seam.BackendMsgID(id)
	}
	orig := say("helo", "o-orig", "")
	fix := say("hello", "o-fix", "<replace xmlns='urn:xmpp:message-correct:0' id='o-orig'/>")
	reply := say("an answer", "o-reply", "<reply xmlns='urn:xmpp:reply:0' id='"+string(orig)+"'/>")
	react := say("", "o-react", "<reactions xmlns='urn:xmpp:reactions:0' id='"+string(orig)+"'><reaction>👍</reaction></reactions><store xmlns='urn:xmpp:hints'/>")
	stray := say("", "o-stray", "<reactions xmlns='urn:xmpp:reactions:0' id='"+string(first[0])+"-never'><reaction>👎</reaction></reactions><store xmlns='urn:xmpp:hints'/>")
	retract := say("retracted", "o-retract", "<fallback xmlns='urn:xmpp:fallback:0'/><apply-to xmlns='urn:xmpp:fasten:0' id='o-orig'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to><store xmlns='urn:xmpp:hints'/>")
	_ = stray

	dir := t.TempDir()
	log, _ := testLogger(t)
	file := stateOf(t, dir, "relay", from)
	run := start(t, Options{
		Routes: []config.Route{{Name: "relay", Topics: []string{string(from)}, Start: "start",
			Sink: config.Sink{Relay: &config.RelaySink{Server: "other", Topic: string(to)}}}},
		StateDir: dir, Backends: map[string]Backend{"": source, "other": dest}, Logger: log, Wait: 5 * time.Second,
	})
	waitForCursor(t, file, seam.Cursor(retract))
	run.stop(t)

	got := archive(t, dest, to)
	require.Len(t, got, 6, "every message but the stray reaction: %+v", got)
	copyFirst, copyOrig, copyFix, copyReply, copyReact, copyRetract := got[0], got[1], got[2], got[3], got[4], got[5]
	assert.Equal(t, "the bridge's first", copyFirst.Content)
	assert.Equal(t, "helo", copyOrig.Content)
	assert.Equal(t, copyOrig.BackendMsgID, copyFix.Replaces, "the correction replaces the destination's copy")
	assert.Equal(t, "hello", copyFix.Content)
	assert.Equal(t, copyOrig.BackendMsgID, copyReply.InReplyTo, "the reply names the destination's copy")
	assert.Equal(t, "an answer", copyReply.Content)
	assert.Equal(t, copyOrig.BackendMsgID, copyReact.ReactsTo)
	assert.Equal(t, []string{"👍"}, copyReact.Reactions)
	assert.Equal(t, copyOrig.BackendMsgID, copyRetract.Retracts)
	_ = fix
	_ = reply
	_ = react
}

// A relay route's format fills in a correction's and a reply's text as it
// does a plain message's, and the correction still replaces the copy (issue
// 23 beside the relay format).
func TestRelayFormatsRelations(t *testing.T) {
	noLeaks(t)
	s := xmpptest.Require(t)
	source := connectedRuntime(t, s, 0)
	dest := connectedRuntime(t, s, 1)
	from, to := freshTopic("formatted relations from"), freshTopic("formatted relations to")

	alice, err := xmpptest.Dial(s, 2)
	require.NoError(t, err)
	defer alice.Close()
	local, err := runtime.RoomLocalpart(from)
	require.NoError(t, err)
	room := local + "@" + s.MUC
	require.NoError(t, alice.Join(room, "alice"))
	say := func(body, origin, extra string) seam.BackendMsgID {
		t.Helper()
		id, err := alice.PostWithOrigin(room, body, origin, extra)
		require.NoError(t, err)
		return seam.BackendMsgID(id)
	}
	orig := say("helo", "f-orig", "")
	say("hello", "f-fix", "<replace xmlns='urn:xmpp:message-correct:0' id='f-orig'/>")
	last := say("an answer", "f-reply", "<reply xmlns='urn:xmpp:reply:0' id='"+string(orig)+"'/>")

	dir := t.TempDir()
	log, _ := testLogger(t)
	file := stateOf(t, dir, "relay", from)
	run := start(t, Options{
		Routes: []config.Route{{Name: "relay", Topics: []string{string(from)}, Start: "start",
			Sink: config.Sink{Relay: &config.RelaySink{Server: "other", Topic: string(to), Format: "<{sender}> {content}"}}}},
		StateDir: dir, Backends: map[string]Backend{"": source, "other": dest}, Logger: log, Wait: 5 * time.Second,
	})
	waitForCursor(t, file, seam.Cursor(last))
	run.stop(t)

	got := archive(t, dest, to)
	require.Len(t, got, 3, "%+v", got)
	copyOrig, copyFix, copyReply := got[0], got[1], got[2]
	assert.Equal(t, "<alice> helo", copyOrig.Content)
	assert.Equal(t, copyOrig.BackendMsgID, copyFix.Replaces, "the correction replaces the destination's copy")
	assert.Equal(t, "<alice> hello", copyFix.Content)
	assert.Equal(t, copyOrig.BackendMsgID, copyReply.InReplyTo)
	assert.Equal(t, "<alice> an answer", copyReply.Content)
}

package runtime_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// person is a third-party client in a room: Debian's python3-slixmpp, driven
// through testdata/person.py.
type person struct {
	t   *testing.T
	in  io.WriteCloser
	out *bufio.Scanner
}

// sent is what person.py answers: the reflection's ids.
type sent struct {
	ID       string `json:"id"`
	StanzaID string `json:"stanza_id"`
	XML      string `json:"xml"`
	Error    string `json:"error"`
	Joined   bool   `json:"joined"`
}

func newPerson(t *testing.T, python string, s xmpptest.Server, account int, room, nick string) *person {
	t.Helper()
	host, port := splitAddr(t, s.Addr)
	cmd := exec.Command(python, filepath.Join("testdata", "person.py"), host, port,
		s.Accounts[account][0]+"@"+s.Domain, s.Accounts[account][1], room, nick)
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("%s's stderr:\n%s", nick, stderr.String())
		}
	})
	p := &person{t: t, in: in, out: bufio.NewScanner(stdout)}
	p.out.Buffer(make([]byte, 1<<20), 1<<20)
	a := p.read()
	require.True(t, a.Joined, "%s joined %s: %+v (stderr: %s)", nick, room, a, stderr.String())
	return p
}

func (p *person) read() sent {
	p.t.Helper()
	line := make(chan []byte, 1)
	go func() {
		if p.out.Scan() {
			line <- append([]byte(nil), p.out.Bytes()...)
		}
		close(line)
	}()
	select {
	case b, ok := <-line:
		require.True(p.t, ok, "person.py ended")
		var a sent
		require.NoError(p.t, json.Unmarshal(b, &a), "%s", b)
		return a
	case <-time.After(40 * time.Second):
		p.t.Fatal("person.py said nothing for 40s")
	}
	return sent{}
}

// do sends one command and returns the reflection's ids.
func (p *person) do(cmd map[string]any) sent {
	p.t.Helper()
	b, err := json.Marshal(cmd)
	require.NoError(p.t, err)
	_, err = p.in.Write(append(b, '\n'))
	require.NoError(p.t, err)
	a := p.read()
	require.Empty(p.t, a.Error, "%v", cmd)
	if cmd["op"] != "subject" && cmd["op"] != "last" {
		require.NotEmpty(p.t, a.StanzaID, "the room's stanza-id on the reflection of %v: %s", cmd, a.XML)
	}
	return a
}

type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return string(l.b) }

func splitAddr(t *testing.T, addr string) (string, string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	t.Fatalf("no port in %q", addr)
	return "", ""
}

// liveMessages collects a subscription's deliveries by id.
type liveMessages struct {
	mu   sync.Mutex
	byID map[seam.BackendMsgID]seam.Message
	all  []seam.Message
}

func (l *liveMessages) add(m seam.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byID[m.BackendMsgID] = m
	l.all = append(l.all, m)
}

func (l *liveMessages) wait(t *testing.T, id string) seam.Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		m, ok := l.byID[seam.BackendMsgID(id)]
		l.mu.Unlock()
		if ok {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never delivered live", id)
	return seam.Message{}
}

// bridgeNick is the runtime's nick in the room: the sender of its post.
func bridgeNick(t *testing.T, live *liveMessages, post seam.BackendMsgID) string {
	return string(live.wait(t, string(post)).SenderHandle)
}

// TestRelationsFromARealClient: a person using a real third-party client
// (python3-slixmpp 1.8.3) in a room the runtime subscribes to, on the dev
// server under test (run it once with PARLEY_TEST_SERVER=prosody and once
// with ejabberd), does every row of issue 23's table; the runtime delivers
// each as what it is, live and from FetchRecent alike (a fresh runtime's too,
// which learns the targets from the archive alone). A correction and a
// retraction by another occupant are refused: delivered as plain messages.
func TestRelationsFromARealClient(t *testing.T) {
	s := xmpptest.Require(t)
	python := xmpptest.RequirePython(t, "/usr/bin/python3", "slixmpp", "python3-slixmpp")
	var evMu sync.Mutex
	var subjects []runtime.RoomEvent
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.OnRoomEvent = func(e runtime.RoomEvent) {
			if e.Kind == runtime.RoomSubjectChanged {
				evMu.Lock()
				subjects = append(subjects, e)
				evMu.Unlock()
			}
		}
	}))
	topic := freshTopic()
	room := roomOf(t, s, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	live := &liveMessages{byID: map[seam.BackendMsgID]seam.Message{}}
	sub, err := rt.Subscribe(ctx, topic, live.add)
	require.NoError(t, err)
	defer sub.Close()
	bridge, err := rt.Post(ctx, topic, "bridge", "hello from the bridge", seam.PostOptions{})
	require.NoError(t, err)

	// Prosody lets only moderators change the subject of the rooms the
	// runtime creates: alice is made an admin by the runtime's account (the
	// owner), from a connection of its own.
	owner, err := xmpptest.Dial(s, 0)
	require.NoError(t, err)
	defer owner.Close()
	require.NoError(t, owner.Admin(room, "http://jabber.org/protocol/muc#admin",
		"<item affiliation='admin' jid='"+s.Accounts[1][0]+"@"+s.Domain+"'/>"))
	alice := newPerson(t, python, s, 1, room, "alice")
	mallory := newPerson(t, python, s, 2, room, "mallory")

	orig := alice.do(map[string]any{"op": "send", "body": "the original"})
	m := live.wait(t, orig.StanzaID)
	assert.Equal(t, "the original", m.Content)
	assert.False(t, m.IsRelation())

	// A correction (XEP-0308) names the sender's message id.
	fix := alice.do(map[string]any{"op": "correct", "id": orig.ID, "body": "the corrected original"})
	m = live.wait(t, fix.StanzaID)
	assert.Equal(t, seam.BackendMsgID(orig.StanzaID), m.Replaces, "the correction replaces the original")
	assert.Equal(t, "the corrected original", m.Content)

	// Another occupant's correction of it is refused: a plain message.
	forged := mallory.do(map[string]any{"op": "correct", "id": orig.ID, "body": "mallory's edit"})
	m = live.wait(t, forged.StanzaID)
	assert.Empty(t, m.Replaces, "mallory can't correct alice's message")
	assert.Equal(t, "mallory's edit", m.Content)

	// Another occupant's retraction of it too.
	forgedRetract := mallory.do(map[string]any{"op": "retract", "id": orig.ID})
	m = live.wait(t, forgedRetract.StanzaID)
	assert.Empty(t, m.Retracts, "mallory can't retract alice's message")
	assert.Contains(t, m.Content, "attempted to retract", "refused: delivered as the plain message it is")

	// A reply (XEP-0461) with its fallback quote (XEP-0428).
	reply := alice.do(map[string]any{"op": "reply", "to": room + "/bridge", "id": string(bridge), "quote": "bridge: hello from the bridge ✨", "body": "an answer 👋"})
	m = live.wait(t, reply.StanzaID)
	assert.Equal(t, bridge, m.InReplyTo)
	assert.Equal(t, "an answer 👋", m.Content, "the quote is not content")

	// The bridge's reply to alice carries XEP-0461's to and a quote marked
	// as XEP-0428 fallback, which slixmpp receives; the runtime's own reader
	// strips the quote again.
	answer, err := rt.Post(ctx, topic, "bridge", "the bridge answers", seam.PostOptions{InReplyTo: seam.BackendMsgID(orig.StanzaID)})
	require.NoError(t, err)
	m = live.wait(t, string(answer))
	assert.Equal(t, seam.BackendMsgID(orig.StanzaID), m.InReplyTo)
	assert.Equal(t, "the bridge answers", m.Content)
	var seen string
	require.Eventually(t, func() bool {
		seen = alice.do(map[string]any{"op": "last", "nick": bridgeNick(t, live, bridge)}).XML
		return strings.Contains(seen, string(answer))
	}, 10*time.Second, 100*time.Millisecond, "alice received the bridge's reply")
	// Prosody keeps no attribute order (Lua tables): either order.
	to, id := regexp.QuoteMeta(`to="`+room+`/alice"`), regexp.QuoteMeta(`id="`+orig.StanzaID+`"`)
	assert.Regexp(t, `<reply xmlns="urn:xmpp:reply:0" (`+to+` `+id+`|`+id+` `+to+`)`, seen)
	assert.Contains(t, seen, "<body>&gt; alice: the original\nthe bridge answers</body>")
	assert.Regexp(t, `<fallback xmlns="urn:xmpp:fallback:0" for="urn:xmpp:reply:0"><body (start="0" end="22"|end="22" start="0") /></fallback>`, seen,
		"the quote, 22 code points, is the fallback")

	// The runtime edits, reacts and retracts (its own messages only), with
	// Post's rules: a key makes it idempotent.
	typo, err := rt.Post(ctx, topic, "bridge", "the brigde's typo", seam.PostOptions{})
	require.NoError(t, err)
	key, err := runtime.OriginKey([]byte("relations test secret"), string(topic), "edit")
	require.NoError(t, err)
	edited, err := rt.Edit(ctx, topic, typo, "the bridge's typo, fixed", runtime.ActOptions{Key: key})
	require.NoError(t, err)
	again, err := rt.Edit(ctx, topic, typo, "the bridge's typo, fixed", runtime.ActOptions{Key: key})
	require.NoError(t, err)
	assert.Equal(t, edited, again, "the same key: sent once")
	m = live.wait(t, string(edited))
	assert.Equal(t, typo, m.Replaces)
	assert.Equal(t, "the bridge's typo, fixed", m.Content)
	nick := bridgeNick(t, live, bridge)
	require.Eventually(t, func() bool {
		seen = alice.do(map[string]any{"op": "last", "nick": nick}).XML
		return strings.Contains(seen, "typo, fixed")
	}, 10*time.Second, 100*time.Millisecond)
	assert.Regexp(t, `<replace xmlns="urn:xmpp:message-correct:0" id="[^"]+" />`, seen, "slixmpp reads a correction")
	reacted, err := rt.React(ctx, topic, seam.BackendMsgID(orig.StanzaID), []string{"🎉"}, runtime.ActOptions{})
	require.NoError(t, err)
	m = live.wait(t, string(reacted))
	assert.Equal(t, seam.BackendMsgID(orig.StanzaID), m.ReactsTo)
	assert.Equal(t, []string{"🎉"}, m.Reactions)
	_, err = rt.Edit(ctx, topic, seam.BackendMsgID(orig.StanzaID), "not mine", runtime.ActOptions{})
	assert.ErrorIs(t, err, runtime.ErrNotOwnMessage)
	_, err = rt.Retract(ctx, topic, "no-such-message", runtime.ActOptions{})
	assert.ErrorIs(t, err, runtime.ErrUnknownTarget)
	withdrawn, err := rt.Retract(ctx, topic, typo, runtime.ActOptions{})
	require.NoError(t, err)
	m = live.wait(t, string(withdrawn))
	assert.Equal(t, typo, m.Retracts)
	assert.Empty(t, m.Content)

	// A reaction (XEP-0444), by someone else than the sender: anyone may.
	react := mallory.do(map[string]any{"op": "react", "id": orig.StanzaID, "reactions": []string{"👍"}})
	m = live.wait(t, react.StanzaID)
	assert.Equal(t, seam.BackendMsgID(orig.StanzaID), m.ReactsTo)
	assert.Equal(t, []string{"👍"}, m.Reactions)
	assert.Empty(t, m.Content)

	// A file shared as a link (XEP-0066).
	file := alice.do(map[string]any{"op": "oob", "url": "https://files.parley.local/cat.png"})
	m = live.wait(t, file.StanzaID)
	assert.Equal(t, []seam.Attachment{{URL: "https://files.parley.local/cat.png"}}, m.Attachments)

	// The sender's retraction (XEP-0424, slixmpp's v0.3 with a fallback body).
	retract := alice.do(map[string]any{"op": "retract", "id": orig.ID})
	m = live.wait(t, retract.StanzaID)
	assert.Equal(t, seam.BackendMsgID(orig.StanzaID), m.Retracts)
	assert.Empty(t, m.Content, "a retraction's fallback is not a message")

	// A subject change reaches OnRoomEvent.
	alice.do(map[string]any{"op": "subject", "subject": "relations, issue 23"})
	require.Eventually(t, func() bool {
		evMu.Lock()
		defer evMu.Unlock()
		return len(subjects) > 0
	}, 15*time.Second, 20*time.Millisecond, "the subject change reached OnRoomEvent")
	evMu.Lock()
	assert.Equal(t, "relations, issue 23", subjects[0].Subject)
	assert.Equal(t, "alice", subjects[0].By)
	evMu.Unlock()

	// FetchRecent agrees with live, on this runtime and on a fresh one that
	// saw none of it live.
	want := []string{orig.StanzaID, fix.StanzaID, forged.StanzaID, forgedRetract.StanzaID, reply.StanzaID, string(answer), string(typo), string(edited), string(reacted), string(withdrawn), react.StanzaID, file.StanzaID, retract.StanzaID}
	fresh := connected(t, newRuntime(t, s, 0, nil))
	for name, b := range map[string]*runtime.Runtime{"this runtime": rt, "a fresh runtime": fresh} {
		r, err := b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic})
		require.NoError(t, err, name)
		byID := map[seam.BackendMsgID]seam.Message{}
		for _, m := range r.Messages {
			byID[m.BackendMsgID] = m
		}
		assert.Len(t, r.Messages, len(want)+1, "%s: every message and relation once, the subject change none: %+v", name, r.Messages)
		for _, id := range want {
			a, ok := byID[seam.BackendMsgID(id)]
			require.True(t, ok, "%s: %s in FetchRecent", name, id)
			l := live.wait(t, id)
			a.Timestamp, l.Timestamp = time.Time{}, time.Time{}
			assert.Equal(t, l, a, "%s: FetchRecent and live agree on %s", name, id)
		}
	}
}

// TestRelationsToMessagesBeforeTheJoin: a person corrects, retracts and
// reacts to messages sent before the bridge's runtime joined the room (issue
// 23, item 2: the room looks the targets up in its archive), and the subject
// set before the join reaches OnRoomEvent at the join, once (item 5). Live
// and FetchRecent (of a page without the targets, on this runtime and a
// fresh one) agree.
func TestRelationsToMessagesBeforeTheJoin(t *testing.T) {
	s := xmpptest.Require(t)
	python := xmpptest.RequirePython(t, "/usr/bin/python3", "slixmpp", "python3-slixmpp")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	topic := freshTopic()
	room := roomOf(t, s, topic)
	maker := connected(t, newRuntime(t, s, 0, nil))
	_, err := maker.Post(ctx, topic, "bridge", "the room is made", seam.PostOptions{})
	require.NoError(t, err)
	owner, err := xmpptest.Dial(s, 0)
	require.NoError(t, err)
	defer owner.Close()
	require.NoError(t, owner.Admin(room, "http://jabber.org/protocol/muc#admin",
		"<item affiliation='admin' jid='"+s.Accounts[1][0]+"@"+s.Domain+"'/>"))
	alice := newPerson(t, python, s, 1, room, "alice")
	orig := alice.do(map[string]any{"op": "send", "body": "written before the bridge joined"})
	gone := alice.do(map[string]any{"op": "send", "body": "to be retracted"})
	alice.do(map[string]any{"op": "subject", "subject": "set before the bridge joined"})
	require.NoError(t, maker.Disconnect(ctx))

	// The bridge joins now: its subscription is its first use of the room.
	var evMu sync.Mutex
	var subjects []runtime.RoomEvent
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.OnRoomEvent = func(e runtime.RoomEvent) {
			if e.Kind == runtime.RoomSubjectChanged {
				evMu.Lock()
				subjects = append(subjects, e)
				evMu.Unlock()
			}
		}
	}))
	live := &liveMessages{byID: map[seam.BackendMsgID]seam.Message{}}
	sub, err := rt.Subscribe(ctx, topic, live.add)
	require.NoError(t, err)
	defer sub.Close()
	require.Eventually(t, func() bool {
		evMu.Lock()
		defer evMu.Unlock()
		return len(subjects) > 0
	}, 15*time.Second, 20*time.Millisecond, "the subject the join showed reached OnRoomEvent")

	fix := alice.do(map[string]any{"op": "correct", "id": orig.ID, "body": "corrected after the bridge joined"})
	retract := alice.do(map[string]any{"op": "retract", "id": gone.ID})
	react := alice.do(map[string]any{"op": "react", "id": orig.StanzaID, "reactions": []string{"👍"}})
	after := alice.do(map[string]any{"op": "send", "body": "after"})
	m := live.wait(t, fix.StanzaID)
	assert.Equal(t, seam.BackendMsgID(orig.StanzaID), m.Replaces, "the correction names a message from before the join")
	assert.Equal(t, "corrected after the bridge joined", m.Content)
	m = live.wait(t, retract.StanzaID)
	assert.Equal(t, seam.BackendMsgID(gone.StanzaID), m.Retracts, "the retraction too")
	assert.Empty(t, m.Content)
	m = live.wait(t, react.StanzaID)
	assert.Equal(t, seam.BackendMsgID(orig.StanzaID), m.ReactsTo)
	assert.Equal(t, []string{"👍"}, m.Reactions)
	live.wait(t, after.StanzaID)
	live.mu.Lock()
	var order []string
	for _, m := range live.all {
		order = append(order, string(m.BackendMsgID))
	}
	live.mu.Unlock()
	assert.Equal(t, []string{fix.StanzaID, retract.StanzaID, react.StanzaID, after.StanzaID}, order, "each once, in order")

	evMu.Lock()
	require.Len(t, subjects, 1, "the join's subject, once")
	assert.Equal(t, "set before the bridge joined", subjects[0].Subject)
	assert.Equal(t, "alice", subjects[0].By)
	evMu.Unlock()

	want := []string{fix.StanzaID, retract.StanzaID, react.StanzaID, after.StanzaID}
	fresh := connected(t, newRuntime(t, s, 0, nil))
	for name, b := range map[string]*runtime.Runtime{"this runtime": rt, "a fresh runtime": fresh} {
		r, err := b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Limit: len(want)})
		require.NoError(t, err, name)
		require.Len(t, r.Messages, len(want), "%s: the page holds the relations, not their targets", name)
		for i, id := range want {
			a, l := r.Messages[i], live.wait(t, id)
			a.Timestamp, l.Timestamp = time.Time{}, time.Time{}
			assert.Equal(t, l, a, "%s: FetchRecent and live agree on %s", name, id)
		}
	}
}

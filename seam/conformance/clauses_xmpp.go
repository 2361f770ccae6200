package conformance

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

// Clause 28 (generic) and the XMPP clauses 25, 26, 27 and 29.

// 28. A Since cursor the backend never issued yields seam.ErrUnknownCursor, never a
// silent full replay or newest page.
func clause28(s *suite, t *testing.T) {
	topic := s.topic()
	s.postAll(t, topic, "one", "two")
	bogus := seam.Cursor("no-such-cursor-" + tag())

	r, err := s.f.Backend.FetchRecent(opCtx(t, 0), seam.FetchRecentArgs{Topic: topic, Since: &bogus})
	require.ErrorIs(t, err, seam.ErrUnknownCursor, "Since names a cursor never issued")
	require.Empty(t, contents(r.Messages), "nothing is returned in place of an unknown cursor")
}

// connect connects b and disconnects it when the test ends.
func connect(t testing.TB, b seam.Backend) {
	t.Helper()
	require.NotNil(t, b, "the fixture returned no backend")
	t.Cleanup(func() { disconnect(b) })
	require.NoError(t, b.Connect(opCtx(t, 0)), "Connect")
}

// fetchUntil fetches topic on b until a message with content shows up.
func fetchUntil(t testing.TB, b seam.Backend, topic seam.Topic, content string) seam.Message {
	t.Helper()
	deadline := time.Now().Add(liveTimeout)
	for {
		r := fetchOn(t, b, seam.FetchRecentArgs{Topic: topic})
		if i := slices.IndexFunc(r.Messages, func(m seam.Message) bool { return m.Content == content }); i >= 0 {
			return r.Messages[i]
		}
		require.True(t, time.Now().Before(deadline), "%q never showed up in FetchRecent of %q; got %q", content, topic, contents(r.Messages))
		time.Sleep(50 * time.Millisecond) // archiving may lag the post a little
	}
}

// 25. Cold creation: 5 connections of the same account, nick unset, join a
// brand-new room at the same moment; all succeed, and the room ends up unlocked (a
// post of one is read by another) and archived (the suite's backend fetches it).
func clause25(s *suite, t *testing.T) {
	const n = 5
	require.NotNil(t, s.f.XMPP.NewConnection, "XMPPFixture.NewConnection")
	topic := s.topic()
	conns := make([]seam.Backend, n)
	for i := range conns {
		conns[i] = s.f.XMPP.NewConnection(t, "")
		connect(t, conns[i])
	}

	gate := make(chan struct{}) // opened once: every Subscribe races for the new room
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, b := range conns {
		wg.Go(func() {
			<-gate
			sub, err := b.Subscribe(opCtx(t, 0), topic, func(seam.Message) {})
			if err == nil {
				t.Cleanup(func() { _ = sub.Close() })
			}
			errs[i] = err
		})
	}
	close(gate)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "connection %d joining the new room", i)
	}

	content := "cold room #" + tag()
	id := s.post(t, conns[0], topic, content)
	require.Equal(t, id, fetchUntil(t, conns[1], topic, content).BackendMsgID, "another joiner reads the post")
	require.Equal(t, id, fetchUntil(t, s.f.Backend, topic, content).BackendMsgID, "the room is archived")
}

// 26. A pinned nick used by two live connections: the second fails loudly, with an
// error naming the nick, on the same account and on another.
func clause26(s *suite, t *testing.T) {
	require.NotNil(t, s.f.XMPP.NewConnection, "XMPPFixture.NewConnection")
	nick := "pinned-" + tag()
	topic := s.topic()
	first := s.f.XMPP.NewConnection(t, nick)
	connect(t, first)
	subscribe(t, first, topic)

	type maker struct {
		which   string
		newConn func(testing.TB, string) seam.Backend
	}
	seconds := []maker{{"same account", s.f.XMPP.NewConnection}}
	if s.f.XMPP.NewAccountConnection != nil {
		seconds = append(seconds, maker{"another account", s.f.XMPP.NewAccountConnection})
	}
	for _, m := range seconds {
		which := m.which
		b := m.newConn(t, nick)
		require.NotNil(t, b, which)
		t.Cleanup(func() { disconnect(b) })
		if err := b.Connect(opCtx(t, 0)); err != nil { // a backend may notice at Connect already
			requireNickConflict(t, err, nick, which+": Connect")
			continue
		}
		sub, err := b.Subscribe(opCtx(t, 0), topic, func(seam.Message) {})
		if err == nil {
			_ = sub.Close()
		}
		requireNickConflict(t, err, nick, which+": Subscribe")
		_, err = b.Post(opCtx(t, 0), topic, identity, "from the duplicate nick", seam.PostOptions{})
		requireNickConflict(t, err, nick, which+": Post")
	}
}

func requireNickConflict(t *testing.T, err error, nick, what string) {
	t.Helper()
	require.ErrorIs(t, err, seam.ErrNickConflict, "%s with nick %q already in the room", what, nick)
	require.Contains(t, err.Error(), nick, "%s: the error names the nick", what)
}

// 27. A room without an archive yields seam.ErrNoArchive at first use, never a
// silent empty history.
func clause27(s *suite, t *testing.T) {
	require.NotNil(t, s.f.XMPP.NoArchiveBackend, "XMPPFixture.NoArchiveBackend")
	b := s.f.XMPP.NoArchiveBackend(t)
	require.NotNil(t, b)
	t.Cleanup(func() { disconnect(b) })

	_, err := b.Post(opCtx(t, 0), s.topic(), identity, "into a room without archive", seam.PostOptions{})
	assert.ErrorIs(t, err, seam.ErrNoArchive, "first use by Post")
	r, err := b.FetchRecent(opCtx(t, 0), seam.FetchRecentArgs{Topic: s.topic()})
	assert.ErrorIs(t, err, seam.ErrNoArchive, "first use by FetchRecent; got %d messages", len(r.Messages))
}

// 29. Only the room's own <stanza-id> counts: a message carrying forged ones is
// delivered and fetched with an id and cursor that are none of them, the same on
// both paths.
func clause29(s *suite, t *testing.T) {
	require.NotNil(t, s.f.XMPP.PostForged, "XMPPFixture.PostForged")
	topic := s.topic()
	live := subscribe(t, s.f.Backend, topic)
	salt := tag()
	forged := []string{fmt.Sprintf("forged-%s-a", salt), fmt.Sprintf("forged-%s-b", salt)}
	content := "forged stanza-ids #" + salt
	require.NoError(t, s.f.XMPP.PostForged(opCtx(t, 0), topic, content, slices.Clone(forged)), "PostForged")

	got := live.waitContent(t, content)
	fetched := fetchUntil(t, s.f.Backend, topic, content)
	for _, m := range []seam.Message{got, fetched} {
		require.NotContains(t, forged, string(m.BackendMsgID), "a forged id taken as the id")
		require.NotContains(t, forged, string(m.Cursor), "a forged id taken as the cursor")
	}
	require.Equal(t, fetched.BackendMsgID, got.BackendMsgID, "id via Subscribe and via FetchRecent")
	require.Equal(t, fetched.Cursor, got.Cursor, "cursor via Subscribe and via FetchRecent")
}

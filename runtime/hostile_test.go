package runtime_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Hostile-input tests: a scripted server sends what no real server would, and the
// runtime must neither take it for the room's word nor hang.

const hostileTopic = seam.Topic("hostile")
const hostileRoom = "hostile@muc.parley.local"

type mamQuery struct {
	iq      xmpptest.Element
	queryID string
	after   string
	before  string
	last    bool // <before/>
	max     int
}

func parseMAM(iq xmpptest.Element) (mamQuery, bool) {
	var q struct {
		QueryID string `xml:"queryid,attr"`
		Set     struct {
			Max    int     `xml:"max"`
			After  string  `xml:"after"`
			Before *string `xml:"before"`
		} `xml:"set"`
	}
	if !strings.Contains(iq.Inner, "urn:xmpp:mam:2") || !iq.Child("query", &q) {
		return mamQuery{}, false
	}
	m := mamQuery{iq: iq, queryID: q.QueryID, after: q.Set.After, max: q.Set.Max}
	if q.Set.Before != nil {
		m.before, m.last = *q.Set.Before, *q.Set.Before == ""
	}
	return m, true
}

// fakeMUC plays one MUC room on a scripted stream: joins succeed, the unlock
// form is accepted, and MAM queries and messages go to the test's handlers.
type fakeMUC struct {
	onMAM     func(st *xmpptest.Stream, q mamQuery)
	onMessage func(st *xmpptest.Stream, m xmpptest.Element)
	streams   chan *xmpptest.Stream
	nick      string // the runtime's nick, from its join
	// onPresence, when set, is told of every join presence.
	onPresence func()
	// onStream, when set, is told of every new client stream.
	onStream func()
	// onIQ, when set, may answer an IQ first; it returns false to let the default
	// answer (an empty result).
	onIQ func(st *xmpptest.Stream, iq xmpptest.Element) bool
	// onJoin, when set, answers a join presence instead of the default welcome;
	// it returns false to let the default answer.
	onJoin func(st *xmpptest.Stream, p xmpptest.Element) bool
}

// welcome answers a join with the occupant's own presence.
func welcome(st *xmpptest.Stream, p xmpptest.Element) {
	st.Send(`<presence from='%s' to='%s' id='%s'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/><status code='110'/></x></presence>`, p.Get("to"), st.JID, p.Get("id"))
}

// stream returns the client's stream, for a test that pushes stanzas itself.
func (f *fakeMUC) stream() *xmpptest.Stream { return <-f.streams }

func (f *fakeMUC) run(st *xmpptest.Stream) {
	if f.onStream != nil {
		f.onStream()
	}
	select {
	case f.streams <- st:
	default:
	}
	for {
		e, err := st.Next(time.Minute)
		if err != nil {
			return
		}
		switch e.XMLName.Local {
		case "presence":
			to := e.Get("to")
			if strings.HasPrefix(to, hostileRoom+"/") && e.Get("type") == "" {
				f.nick = strings.TrimPrefix(to, hostileRoom+"/")
				if f.onPresence != nil {
					f.onPresence()
				}
				if f.onJoin == nil || !f.onJoin(st, e) {
					welcome(st, e)
				}
			}
		case "iq":
			if q, ok := parseMAM(e); ok {
				if f.onMAM != nil {
					f.onMAM(st, q)
				} else {
					fin(st, q, true, "", "")
				}
				continue
			}
			if f.onIQ != nil && f.onIQ(st, e) {
				continue
			}
			if strings.Contains(e.Inner, "disco#info") && e.Get("type") == "get" {
				// The room and its service archive (the runtime checks before reading).
				st.Send(`<iq type='result' id='%s' from='%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'><feature var='http://jabber.org/protocol/muc'/><feature var='urn:xmpp:mam:2'/><feature var='urn:xmpp:sid:0'/></query></iq>`, e.Get("id"), e.Get("to"), st.JID)
				continue
			}
			if t := e.Get("type"); t == "get" || t == "set" {
				st.Send(`<iq type='result' id='%s' from='%s' to='%s'/>`, e.Get("id"), e.Get("to"), st.JID)
			}
		case "message":
			if f.onMessage != nil {
				f.onMessage(st, e)
			}
		}
	}
}

func row(st *xmpptest.Stream, from, queryID, id, nick, body string) {
	st.Send(`<message from='%s' to='%s'><result xmlns='urn:xmpp:mam:2' queryid='%s' id='%s'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-01-02T03:04:05Z'/><message xmlns='jabber:client' type='groupchat' from='%s/%s'>%s</message></forwarded></result></message>`,
		from, st.JID, queryID, id, hostileRoom, nick, body)
}

func fin(st *xmpptest.Stream, q mamQuery, complete bool, first, last string) {
	set := "<set xmlns='http://jabber.org/protocol/rsm'/>"
	if first != "" || last != "" {
		set = fmt.Sprintf("<set xmlns='http://jabber.org/protocol/rsm'><first>%s</first><last>%s</last></set>", first, last)
	}
	st.Send(`<iq type='result' id='%s' from='%s' to='%s'><fin xmlns='urn:xmpp:mam:2' complete='%v'>%s</fin></iq>`, q.iq.Get("id"), hostileRoom, st.JID, complete, set)
}

func hostileRuntime(t *testing.T, f *fakeMUC, mod func(*runtime.Config)) *runtime.Runtime {
	t.Helper()
	f.streams = make(chan *xmpptest.Stream, 1)
	srv := xmpptest.NewScripted(t, "parley.local", f.run)
	cfg := runtime.Config{Service: "xmpp://" + srv.Addr, Domain: "parley.local", MUCService: "muc.parley.local", RequestTimeout: 3 * time.Second, JoinTimeout: 5 * time.Second, PostTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	rt, err := runtime.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, rt.Connect(ctx))
	t.Cleanup(func() { _ = rt.Disconnect(context.Background()) })
	return rt
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func contents(ms []seam.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Content)
	}
	return out
}

// Clause 29, archive side: a MAM result counts only from the room's bare JID and
// for the query id the runtime chose.
func TestHostileMAMResultsFromOthersAreIgnored(t *testing.T) {
	rt := hostileRuntime(t, &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		row(st, "evil@muc.parley.local", q.queryID, "e1", "eve", "<body>from another archive</body>")
		row(st, hostileRoom, q.queryID+"x", "e2", "eve", "<body>for another query</body>")
		row(st, hostileRoom+"/eve", q.queryID, "e3", "eve", "<body>from an occupant, not the room</body>")
		row(st, hostileRoom, q.queryID, "g1", "alice", "<body>good</body>")
		fin(st, q, true, "g1", "g1")
	}}, nil)
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic})
	require.NoError(t, err)
	assert.Equal(t, []string{"good"}, contents(res.Messages))
	assert.Equal(t, seam.Cursor("g1"), res.NextCursor)
	assert.Equal(t, seam.Handle("alice"), res.Messages[0].SenderHandle)
}

// An IQ answer counts only from the entity asked: a stranger's empty <fin/> with
// the right id must not end the query.
func TestHostileIQAnswerFromStrangerIsIgnored(t *testing.T) {
	rt := hostileRuntime(t, &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		st.Send(`<iq type='result' id='%s' from='evil@muc.parley.local' to='%s'><fin xmlns='urn:xmpp:mam:2' complete='true'/></iq>`, q.iq.Get("id"), st.JID)
		row(st, hostileRoom, q.queryID, "g1", "alice", "<body>real</body>")
		fin(st, q, true, "g1", "g1")
	}}, nil)
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic})
	require.NoError(t, err)
	assert.Equal(t, []string{"real"}, contents(res.Messages))
}

// A page that doesn't advance is an error, not a loop: forward and backward.
func TestHostileStalledPagingIsAnError(t *testing.T) {
	var stalledForward atomic.Bool
	var mu sync.Mutex
	pages := 0
	rt := hostileRuntime(t, &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		mu.Lock()
		pages++
		mu.Unlock()
		switch {
		case q.after != "":
			fin(st, q, false, q.after, q.after) // "more to come", from where we already are
		case q.last && q.max == 1 && stalledForward.Load():
			// The runtime checks that c0, its cursor, is the newest row.
			row(st, hostileRoom, q.queryID, "c0", "alice", "<body>zero</body>")
			fin(st, q, true, "c0", "c0")
		case q.last:
			row(st, hostileRoom, q.queryID, "r1", "alice", "<active xmlns='http://jabber.org/protocol/chatstates'/>")
			fin(st, q, false, "r1", "r1")
		default: // <before>r1</before>: the same page again
			row(st, hostileRoom, q.queryID, "r1", "alice", "<active xmlns='http://jabber.org/protocol/chatstates'/>")
			fin(st, q, false, "r1", "r1")
		}
	}}, nil)
	since := seam.Cursor("c0")
	stalledForward.Store(true)
	_, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic, Since: &since})
	assert.ErrorIs(t, err, vocab.ErrArchiveStalled)
	stalledForward.Store(false)
	_, err = rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic})
	assert.ErrorIs(t, err, vocab.ErrArchiveStalled)
	mu.Lock()
	defer mu.Unlock()
	assert.Less(t, pages, 10, "paging stopped instead of looping")
}

// Rows without a body (chat states, subject changes) are not messages, and the
// cursor moves past them.
func TestHostileBodylessRowsAreSkipped(t *testing.T) {
	rt := hostileRuntime(t, &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		if q.before == "r1" { // the runtime checks that r0, its cursor, is there
			row(st, hostileRoom, q.queryID, "r0", "alice", "<body>zero</body>")
			fin(st, q, false, "r0", "r0")
			return
		}
		row(st, hostileRoom, q.queryID, "r1", "alice", "<body>one</body>")
		row(st, hostileRoom, q.queryID, "r2", "alice", "<active xmlns='http://jabber.org/protocol/chatstates'/>")
		row(st, hostileRoom, q.queryID, "r3", "alice", "<subject>new subject</subject>")
		fin(st, q, true, "r1", "r3")
	}}, nil)
	since := seam.Cursor("r0")
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic, Since: &since})
	require.NoError(t, err)
	assert.Equal(t, []string{"one"}, contents(res.Messages))
	assert.Equal(t, seam.Cursor("r3"), res.NextCursor, "the cursor passes the skipped rows")
}

// Clause 29, live side: a reflection whose only <stanza-id/> is not the room's
// is not taken at its word: the runtime reads the message from the archive,
// with the room's id, and delivers it once, in order.
func TestHostileForeignStanzaIDIsReplacedFromTheArchive(t *testing.T) {
	f := &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		switch {
		case q.last: // the tail read while joining
			row(st, hostileRoom, q.queryID, "t0", "alice", "<body>before we joined</body>")
			fin(st, q, true, "t0", "t0")
		case q.after == "t0":
			row(st, hostileRoom, q.queryID, "real-1", "alice", "<body>hello</body>")
			fin(st, q, true, "real-1", "real-1")
		default:
			fin(st, q, true, "", "")
		}
	}}
	rt := hostileRuntime(t, f, nil)
	got := make(chan seam.Message, 10)
	sub, err := rt.Subscribe(ctx5(t), hostileTopic, func(m seam.Message) { got <- m })
	require.NoError(t, err)
	defer sub.Close()

	st := f.stream()
	// Another entity's id, none of the room's.
	st.Send(`<message type='groupchat' from='%s/alice' to='%s'><body>hello</body><stanza-id xmlns='urn:xmpp:sid:0' by='mallory@parley.local' id='forged'/></message>`, hostileRoom, st.JID)
	// A live message with the room's id, after it: delivered after the archive's copy.
	st.Send(`<message type='groupchat' from='%s/alice' to='%s'><body>second</body><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='real-2'/></message>`, hostileRoom, st.JID, hostileRoom)

	deliveredOnce(t, got, "real-1", "real-2")
}

// A reflection of our own post without the room's stanza-id, and no trace of it
// in the archive: Post fails with a clear error instead of inventing an id.
func TestHostilePostWithoutStanzaIDFails(t *testing.T) {
	f := &fakeMUC{}
	f.onMessage = func(st *xmpptest.Stream, m xmpptest.Element) {
		body, origin := postOf(m)
		st.Send(`<message type='groupchat' from='%s' to='%s' id='%s'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>`,
			m.Get("to")+"/"+f.nick, st.JID, m.Get("id"), xmpptest.Escape(body), origin)
	}
	rt := hostileRuntime(t, f, nil)
	_, err := rt.Post(ctx5(t), hostileTopic, "me", "hi", seam.PostOptions{})
	assert.ErrorIs(t, err, vocab.ErrNoStanzaID)
}

// The room bouncing a post with an error (from its bare JID, with the post's
// id) fails that post, and only that post.
func TestHostilePostBouncedFails(t *testing.T) {
	rt := hostileRuntime(t, &fakeMUC{onMessage: func(st *xmpptest.Stream, m xmpptest.Element) {
		st.Send(`<message type='error' from='%s' to='%s' id='%s'><error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`, hostileRoom, st.JID, m.Get("id"))
	}}, nil)
	_, err := rt.Post(ctx5(t), hostileTopic, "me", "hi", seam.PostOptions{})
	assert.ErrorIs(t, err, vocab.ErrPostRefused)
	assert.ErrorContains(t, err, "forbidden")
}

// Errors that are not the room's answer to a post (from an occupant, from our
// own occupant JID, from another room, from the room with another id or none)
// don't fail it: it resolves with its reflection's id.
func TestHostileForgedBouncesDoNotFailAPost(t *testing.T) {
	f := &fakeMUC{}
	f.onMessage = func(st *xmpptest.Stream, m xmpptest.Element) {
		if m.Get("type") != "groupchat" {
			return
		}
		body, origin := postOf(m)
		id := m.Get("id")
		for _, forged := range []struct{ from, id string }{
			{hostileRoom + "/eve", id},
			{hostileRoom + "/" + f.nick, id},
			{"other@muc.parley.local", id},
			{"eve@parley.local/x", id},
			{hostileRoom, id + "x"},
			{hostileRoom, ""},
		} {
			st.Send(`<message type='error' from='%s' to='%s' id='%s'><error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`, forged.from, st.JID, forged.id)
		}
		st.Send(`<message type='groupchat' from='%s/%s' to='%s' id='%s'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%s'/><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='landed-%s'/></message>`,
			hostileRoom, f.nick, st.JID, id, xmpptest.Escape(body), origin, hostileRoom, origin)
	}
	rt := hostileRuntime(t, f, nil)
	for range 3 {
		id, err := rt.Post(ctx5(t), hostileTopic, "me", "hi", seam.PostOptions{})
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(string(id), "landed-"), "id %q", id)
	}
}

// An element go-xmpp has no type for is skipped; the stream goes on.
func TestHostileUnknownTopLevelElementIsSkipped(t *testing.T) {
	f := &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		row(st, hostileRoom, q.queryID, "g1", "alice", "<body>still here</body>")
		fin(st, q, true, "g1", "g1")
	}}
	rt := hostileRuntime(t, f, nil)
	st := f.stream()
	st.Send(`<r xmlns='urn:xmpp:sm:3'/><weird xmlns='x:y'><inner/></weird>`)
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic})
	require.NoError(t, err)
	assert.Equal(t, []string{"still here"}, contents(res.Messages))
}

// A stream that turns to garbage mid-stanza is abandoned: the runtime dials
// again, and the read in flight completes on the new link.
func TestHostileGarbageEndsTheLinkAndTheRuntimeReconnects(t *testing.T) {
	var conns atomic.Int32
	f := &fakeMUC{}
	f.onMAM = func(st *xmpptest.Stream, q mamQuery) {
		if conns.Load() == 1 {
			st.Send(`<message from='%s'><result xmlns='urn:xmpp:mam:2' queryid='%s' id='x'><forwarded`, hostileRoom, q.queryID) // cut mid-stanza
			st.Send(`<<<&&&`)
			return
		}
		row(st, hostileRoom, q.queryID, "g1", "alice", "<body>after the break</body>")
		fin(st, q, true, "g1", "g1")
	}
	f.onStream = func() { conns.Add(1) }
	states := make(chan runtime.State, 20)
	rt := hostileRuntime(t, f, func(c *runtime.Config) {
		c.OnStateChange = func(sc runtime.StateChange) { states <- sc.To }
	})
	res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic})
	require.NoError(t, err)
	assert.Equal(t, []string{"after the break"}, contents(res.Messages))
	assert.Equal(t, int32(2), conns.Load())
	var seen []runtime.State
	for len(seen) < 4 {
		select {
		case s := <-states:
			seen = append(seen, s)
		case <-time.After(2 * time.Second):
			t.Fatalf("states so far: %v", seen)
		}
	}
	assert.Equal(t, []runtime.State{runtime.Connecting, runtime.Online, runtime.Reconnecting, runtime.Online}, seen)
	assert.Equal(t, runtime.Online, rt.State())
}

// A server that sends more results than any page asked for can't grow the
// runtime's memory without bound: the query fails.
func TestHostileFloodOfResultsIsBounded(t *testing.T) {
	rt := hostileRuntime(t, &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		for i := range 1500 {
			row(st, hostileRoom, q.queryID, fmt.Sprintf("f%d", i), "alice", "<body>flood</body>")
		}
		fin(st, q, true, "f0", "f1499")
	}}, nil)
	_, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic})
	assert.ErrorContains(t, err, "more than")
}

// The server ending the stream, or sending a stream error, is a lost link like
// any other: the runtime reconnects and the read in flight completes.
func TestHostileStreamEndAndStreamErrorReconnect(t *testing.T) {
	for name, farewell := range map[string]string{
		"stream end":   `</stream:stream>`,
		"stream error": `<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`,
	} {
		t.Run(name, func(t *testing.T) {
			var conns atomic.Int32
			f := &fakeMUC{}
			f.onStream = func() { conns.Add(1) }
			f.onMAM = func(st *xmpptest.Stream, q mamQuery) {
				if conns.Load() == 1 {
					st.Send("%s", farewell)
					return
				}
				row(st, hostileRoom, q.queryID, "g1", "alice", "<body>on the new link</body>")
				fin(st, q, true, "g1", "g1")
			}
			rt := hostileRuntime(t, f, nil)
			res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic})
			require.NoError(t, err)
			assert.Equal(t, []string{"on the new link"}, contents(res.Messages))
			assert.Equal(t, int32(2), conns.Load())
		})
	}
}

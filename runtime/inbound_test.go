package runtime_test

import (
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/rawclient"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/metrics"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// occupied is a runtime subscribed to a fresh topic's room, under a nick of
// its own, with mallory (account parley2) in the room beside it; got has
// what the subscription delivers.
type occupied struct {
	rt      *runtime.Runtime
	room    string
	nick    string // the runtime's
	topic   seam.Topic
	got     chan seam.Message
	watch   *linkWatch
	mallory *rawclient.Client
}

// occupiedRoom sets one up on s; mod tunes the runtime's configuration.
func occupiedRoom(t *testing.T, s xmpptest.Server, mod func(*runtime.Config)) *occupied {
	t.Helper()
	o := &occupied{nick: "parley-" + strings.ToLower(rand.Text()[:8]), topic: freshTopic(), got: make(chan seam.Message, 64), watch: &linkWatch{}}
	o.rt = connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.OnStateChange, c.Nick = o.watch.on, o.nick
		if mod != nil {
			mod(c)
		}
	}))
	o.room = roomOf(t, s, o.topic)
	_, err := o.rt.Subscribe(ctx5(t), o.topic, func(m seam.Message) { o.got <- m })
	require.NoError(t, err)
	o.mallory, err = xmpptest.Dial(s, 1)
	require.NoError(t, err)
	t.Cleanup(o.mallory.Close)
	require.NoError(t, o.mallory.Join(o.room, "mallory"))
	return o
}

// occupant is the runtime's occupant JID.
func (o *occupied) occupant() string { return o.room + "/" + o.nick }

// next waits for the subscription's next message.
func (o *occupied) next(t *testing.T) seam.Message {
	t.Helper()
	select {
	case m := <-o.got:
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("the room stopped delivering")
		return seam.Message{}
	}
}

// avatarEvent is a pubsub event go-xmpp could not interpret (avatar metadata
// with no item): its typed Recv ended the link on it.
const avatarEvent = `<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:avatar:metadata'/></event>`

// Nothing a stranger or an occupant sends ends the link: pubsub events the
// runtime has no use for, as a private message through the room and as a
// headline to the account's bare JID from someone in no room; elements in
// unknown namespaces; thousands of small pings (the inbound cap is per
// stanza); requests for version and disco. Each is tried many times; the
// runtime stays online throughout, answers the requests, and the room still
// delivers afterwards. Before the reader was ours, the first avatar event cut
// the link.
func TestStrangersStanzasKeepTheLink(t *testing.T) {
	s := xmpptest.Require(t)
	prom := metrics.New()
	o := occupiedRoom(t, s, func(c *runtime.Config) { c.Metrics = prom })
	mallory, room, occupant := o.mallory, o.room, o.occupant()
	stranger, err := xmpptest.Dial(s, 2) // in no room at all
	require.NoError(t, err)
	defer stranger.Close()

	bare := s.Accounts[0][0] + "@" + s.Domain
	for i := range 20 {
		require.NoError(t, mallory.Send(fmt.Sprintf(`<message to='%s' type='chat' id='a%d'>%s</message>`, occupant, i, avatarEvent)))
		require.NoError(t, stranger.Send(fmt.Sprintf(`<message to='%s' type='headline' id='h%d'>%s</message>`, bare, i, avatarEvent)))
		require.NoError(t, mallory.Send(fmt.Sprintf(`<message to='%s' type='chat' id='u%d'><body>x</body><thing xmlns='urn:example:unknown'><deep><deeper/></deep></thing></message>`, occupant, i)))
		require.NoError(t, stranger.Send(fmt.Sprintf(`<presence to='%s' type='subscribe' id='p%d'/>`, bare, i)))
	}
	// Elements nested 20 deep with text around each level (once a panic on
	// the reader goroutine: the whole process).
	deep := strings.Repeat("<x xmlns='urn:example:deep'>t", 20) + strings.Repeat("u</x>", 20)
	require.NoError(t, mallory.Send(fmt.Sprintf(`<message to='%s' type='chat' id='deep'><body>x</body>%s</message>`, occupant, deep)))
	for i := range 3000 {
		require.NoError(t, mallory.Send(fmt.Sprintf(`<iq type='get' to='%s' id='ping%d'><ping xmlns='urn:xmpp:ping'/></iq>`, occupant, i)))
	}
	for _, payload := range []string{`<ping xmlns='urn:xmpp:ping'/>`, `<query xmlns='jabber:iq:version'/>`, `<query xmlns='http://jabber.org/protocol/disco#info'/>`} {
		typ, err := mallory.Request(occupant, payload, 20*time.Second)
		require.NoError(t, err, payload)
		assert.Equal(t, "result", typ, "%s answered", payload)
	}

	id, err := mallory.Post(room, "still here", "")
	require.NoError(t, err)
	assert.Equal(t, seam.BackendMsgID(id), o.next(t).BackendMsgID)
	assert.Zero(t, o.watch.drops.Load(), "links lost: %v", o.watch.reasons())
	assert.Equal(t, runtime.Online, o.rt.State())
	// 20 avatar events and 20 unknown payloads through the room, 20 headlines
	// to the bare JID: every one counted as a private message passed over.
	assert.Eventually(t, func() bool { return skippedOf(t, prom, observe.SkipPrivate) >= 60 }, 10*time.Second, 10*time.Millisecond,
		"private messages counted: %v", skippedOf(t, prom, observe.SkipPrivate))
}

// skippedOf reads parley_xmpp_inbound_skipped_total{kind}.
func skippedOf(t *testing.T, p *metrics.Prometheus, kind string) float64 {
	fams, err := p.Registry().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != "parley_xmpp_inbound_skipped_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == kind {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A ping or a version request that comes after the link has been idle for
// longer than the write timeout (10 s) is answered, and the link lives. The
// old reader answered it through go-xmpp's own writer, on a socket whose
// write deadline had passed: the answer failed and the link with it.
func TestIdleLinkAnswersPings(t *testing.T) {
	s := xmpptest.Require(t)
	o := occupiedRoom(t, s, func(c *runtime.Config) {
		c.KeepAlive = -1 // no pings of our own: the link stays idle
	})

	time.Sleep(11 * time.Second)
	var wg sync.WaitGroup
	for _, payload := range []string{`<ping xmlns='urn:xmpp:ping'/>`, `<query xmlns='jabber:iq:version'/>`} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			typ, err := o.mallory.Request(o.occupant(), payload, 10*time.Second)
			assert.NoError(t, err, payload)
			assert.Equal(t, "result", typ, payload)
		}()
	}
	wg.Wait()
	time.Sleep(time.Second) // a failed write would show by now
	assert.Zero(t, o.watch.drops.Load(), "links lost: %v", o.watch.reasons())
	assert.Equal(t, runtime.Online, o.rt.State())
}

// Live and archive agree on what a message says, whatever a sender adds:
// a second <body/> in another namespace (before or after the real one), a
// <delay/> claiming the room's stamp. Subscribers get the text the room, its
// archive and every client show, with the live receive time, never the
// forged stamp.
func TestLiveAgreesWithTheArchive(t *testing.T) {
	s := xmpptest.Require(t)
	o := occupiedRoom(t, s, nil)
	rt, topic, room, mallory := o.rt, o.topic, o.room, o.mallory

	forged := `<delay xmlns='urn:xmpp:delay' from='` + room + `' stamp='2001-01-01T00:00:00Z'/>`
	for _, extra := range []string{
		`<body xmlns='urn:example:hidden'>hidden text</body>`,
		forged,
	} {
		_, err := mallory.Post(room, "shown text", extra)
		require.NoError(t, err)
	}
	// A body in another namespace before the real one.
	require.NoError(t, mallory.Send(`<message to='`+room+`' type='groupchat' id='h2'><body xmlns='urn:example:hidden'>hidden first</body><body>shown text</body></message>`))

	var live []seam.Message
	for range 3 {
		live = append(live, o.next(t))
	}
	page, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Messages, 3)
	for i, m := range live {
		assert.Equal(t, "shown text", m.Content, "live")
		assert.Equal(t, page.Messages[i].BackendMsgID, m.BackendMsgID)
		assert.Equal(t, page.Messages[i].Content, m.Content, "live and archive content")
		assert.Equal(t, page.Messages[i].SenderHandle, m.SenderHandle)
		assert.Greater(t, m.Timestamp.Year(), 2001, "a live stamp from the sender's <delay/>")
	}
}

// An occupant whose presence carries an <x><item jid/></x> of its own,
// claiming another account's JID (in a namespace of its choosing, or in
// muc#user beside the room's), gets nothing through a JID allowlist: the
// sender's identity comes only from the room's muc#user payload, and in an
// anonymous room, whose items name no JID, a JID allowlist admits nobody.
// The archive path agrees. go-xmpp read any <x> and kept a jid that the
// room's later item did not overwrite.
func TestForgedPresenceJIDIsNotASender(t *testing.T) {
	s := xmpptest.Require(t)
	victim := s.Accounts[3][0] + "@" + s.Domain
	for _, tc := range []struct{ name, x string }{
		{"foreign namespace", `<x xmlns='urn:example:forged'><item jid='` + victim + `/res' affiliation='owner' role='moderator'/></x>`},
		{"no namespace of its own", `<x><item jid='` + victim + `/res'/></x>`},
		{"muc#user", `<x xmlns='http://jabber.org/protocol/muc#user'><item jid='` + victim + `/res' affiliation='owner' role='moderator'/></x>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Another account owns the room, as created (semi-anonymous): the
			// runtime, a plain participant, is shown no real JIDs.
			topic := freshTopic()
			room := roomOf(t, s, topic)
			owner, err := xmpptest.Dial(s, 2)
			require.NoError(t, err)
			defer owner.Close()
			require.NoError(t, owner.Join(room, "owner"))
			rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
				c.Allow = map[seam.Topic]runtime.Allowlist{topic: {JIDs: []string{victim}}}
			}))
			got := make(chan seam.Message, 16)
			_, err = rt.Subscribe(ctx5(t), topic, func(m seam.Message) { got <- m })
			require.NoError(t, err)

			mallory, err := xmpptest.Dial(s, 1)
			require.NoError(t, err)
			defer mallory.Close()
			require.NoError(t, mallory.Send(`<presence to='`+room+`/mallory'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x>`+tc.x+`</presence>`))
			time.Sleep(time.Second)
			_, err = mallory.Post(room, "let me in", "")
			require.NoError(t, err)
			select {
			case m := <-got:
				t.Fatalf("a forged presence JID got %q through the allowlist", m.Content)
			case <-time.After(3 * time.Second):
			}
			page, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic, Limit: 10})
			require.NoError(t, err)
			assert.Empty(t, page.Messages, "the archive path doesn't admit it either")
		})
	}
}

// 12,000 small pings from an occupant, sent as fast as the server takes
// them, keep the link: the inbound cap counts each stanza, not everything
// read while go-xmpp answered pings inside one Recv (which passed 1 MiB and
// dropped the link).
func TestPingFloodKeepsTheLink(t *testing.T) {
	s := xmpptest.Require(t)
	o := occupiedRoom(t, s, nil)
	mallory, room, nick := o.mallory, o.room, o.nick

	var b strings.Builder
	for i := range 12000 {
		fmt.Fprintf(&b, `<iq type='get' to='%s/%s' id='flood%d'><ping xmlns='urn:xmpp:ping'/></iq>`, room, nick, i)
		if i%200 == 199 {
			require.NoError(t, mallory.Send(b.String()))
			b.Reset()
		}
	}
	// The last ping's answer comes after every other one's: the flood was read.
	typ, err := mallory.Request(room+"/"+nick, `<ping xmlns='urn:xmpp:ping'/>`, 60*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "result", typ)
	id, err := mallory.Post(room, "after the flood", "")
	require.NoError(t, err)
	assert.Equal(t, seam.BackendMsgID(id), o.next(t).BackendMsgID)
	assert.Zero(t, o.watch.drops.Load(), "links lost: %v", o.watch.reasons())
}

// One timestamp per message (issue 19): live deliveries carry the server's
// stamp, at the archive's precision, the same as FetchRecent gives for the
// same id: on ejabberd the archive id's microseconds, on Prosody the whole
// second (read back from the archive when the receipt is too near a second's
// boundary to tell). Posts from another connection and the runtime's own.
func TestLiveAndArchiveCarryOneTimestamp(t *testing.T) {
	s := xmpptest.Require(t)
	rt := connected(t, newRuntime(t, s, 0, nil))
	topic := freshTopic()
	room := roomOf(t, s, topic)
	const n = 40
	got := make(chan seam.Message, 2*n)
	_, err := rt.Subscribe(ctx5(t), topic, func(m seam.Message) { got <- m })
	require.NoError(t, err)
	other, err := xmpptest.Dial(s, 1)
	require.NoError(t, err)
	defer other.Close()
	require.NoError(t, other.Join(room, "other"))
	var tOther, tOurs time.Duration
	for i := range n {
		t0 := time.Now()
		_, err := other.Post(room, fmt.Sprint("other ", i), "")
		require.NoError(t, err)
		t1 := time.Now()
		_, err = rt.Post(ctx5(t), topic, "", fmt.Sprint("ours ", i), seam.PostOptions{})
		require.NoError(t, err)
		tOther, tOurs = tOther+t1.Sub(t0), tOurs+time.Since(t1)
		time.Sleep(time.Duration(7+i%13) * time.Millisecond) // receipts all over the second
	}
	t.Logf("posting: other %v, ours %v", tOther, tOurs)
	live := map[seam.BackendMsgID]time.Time{}
	for len(live) < 2*n {
		select {
		case m := <-got:
			live[m.BackendMsgID] = m.Timestamp
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d delivered live", len(live), 2*n)
		}
	}
	start := seam.Cursor("")
	page, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic, Since: &start, Limit: 2 * n})
	require.NoError(t, err)
	require.Len(t, page.Messages, 2*n)
	for _, m := range page.Messages {
		assert.True(t, live[m.BackendMsgID].Equal(m.Timestamp), "%s: live %v, archive %v", m.BackendMsgID, live[m.BackendMsgID], m.Timestamp)
	}
}

// An occupant's own <stanza-id by=ROOM/> in its message (before or after the
// room's, which a server may or may not strip: XEP-0359 says it must) never
// becomes the message's id: the subscriber gets the archive's id.
func TestForgedStanzaIDIsNotTheMessagesID(t *testing.T) {
	s := xmpptest.Require(t)
	o := occupiedRoom(t, s, nil)
	forged := `<stanza-id xmlns='urn:xmpp:sid:0' by='` + o.room + `' id='forged-id'/>`
	id, err := o.mallory.Post(o.room, "with a forged id", forged)
	require.NoError(t, err)
	require.NotEqual(t, "forged-id", id, "the server kept the forged id as the room's")
	m := o.next(t)
	assert.Equal(t, seam.BackendMsgID(id), m.BackendMsgID)
	page, err := o.rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: o.topic, Limit: 5})
	require.NoError(t, err)
	require.Len(t, page.Messages, 1)
	assert.Equal(t, page.Messages[0].BackendMsgID, m.BackendMsgID, "live and archive ids")
}

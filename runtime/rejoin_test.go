package runtime_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// wireStanza is one top-level element a client wrote: its name, to, type, and
// the namespaces of everything inside it.
type wireStanza struct {
	name, to, typ string
	ns            []string
}

func (w wireStanza) has(ns string) bool {
	for _, n := range w.ns {
		if n == ns {
			return true
		}
	}
	return false
}

// wireStanzas reads the stanzas in bytes a client wrote (from the start of a
// stream: <stream:stream> opens at depth 0); a cut-off tail is ignored.
func wireStanzas(b []byte) []wireStanza {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = false
	var out []wireStanza
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return out // the end, or a stanza cut off by the kill
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local == "stream" {
				depth = 1 // a stream (restarted after login: never closed)
				continue
			}
			depth++
			switch {
			case depth == 2:
				w := wireStanza{name: t.Name.Local}
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "to":
						w.to = a.Value
					case "type":
						w.typ = a.Value
					}
				}
				out = append(out, w)
			case depth > 2 && len(out) > 0:
				out[len(out)-1].ns = append(out[len(out)-1].ns, t.Name.Space)
			}
		case xml.EndElement:
			depth = max(0, depth-1)
		}
	}
}

// Issue 12, item 3: after a link kill, a subscribed room's rejoin sends the
// room only its join presence (history suppressed) and the MAM query from its
// cursor: no disco#info, no nick probe, no unlock, no read of the archive's
// tail. What the first join checked still holds (occupancy.startRejoin). A
// message posted by another account while the link is down is replayed.
func TestRejoinSendsOnlyPresenceAndMAMQuery(t *testing.T) {
	s := xmpptest.Require(t)
	proxy := xmpptest.NewRecordingProxy(t, s.Addr)
	var ev events
	online := make(chan struct{}, 4)
	rt := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
		c.Service = "xmpp://" + proxy.Addr
		c.Nick = "rejoiner" // pinned: its first join probes the nick
		c.PersistentRooms = true
		c.ReconnectWait = 20 * time.Millisecond
		c.DialTimeout = time.Second // a login into the silent proxy fails soon
		c.OnRoomEvent = ev.add
		c.OnStateChange = func(sc runtime.StateChange) {
			if sc.To == runtime.Online {
				online <- struct{}{}
			}
		}
	}))
	<-online
	topic := freshTopic()
	room := roomOf(t, s, topic)
	var got collector
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := rt.Subscribe(ctx, topic, got.add)
	require.NoError(t, err)
	_, err = rt.Post(ctx, topic, "me", "before the kill", seam.PostOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(got.got()) == 1 }, 10*time.Second, 5*time.Millisecond)

	// The first join made every check: the test would prove nothing otherwise.
	first := wireStanzas(proxy.Sent())
	assert.True(t, sentTo(first, room, func(w wireStanza) bool { return w.has("http://jabber.org/protocol/disco#info") }) > 0, "the first join asked disco#info")

	// A link that lived more than a second reconnects at once (session flapWindow).
	time.Sleep(1100 * time.Millisecond)
	mark := len(proxy.Sent())
	proxy.SetSilent(true)
	// Another account posts while the link is down: the replay must bring it.
	poster := &independentPoster{s: s}
	require.NoError(t, poster.post(t, topic, "while down", ""))
	proxy.SetSilent(false)
	select {
	case <-online:
	case <-time.After(15 * time.Second):
		t.Fatal("never back online")
	}
	require.Eventually(t, func() bool { return ev.has(runtime.RoomRejoined) }, 15*time.Second, 5*time.Millisecond, "rejoined and replayed")
	require.Eventually(t, func() bool { return len(got.got()) == 2 }, 5*time.Second, 5*time.Millisecond, "the message posted while down")
	time.Sleep(300 * time.Millisecond) // anything sent right after the replay

	assertOnlyJoinAndQuery(t, proxy.Sent()[mark:], room)

	// Again, with nothing posted meanwhile (the common case of a short outage):
	// an empty replay, still nothing else.
	time.Sleep(1100 * time.Millisecond)
	mark = len(proxy.Sent())
	proxy.SetSilent(true)
	proxy.SetSilent(false)
	require.Eventually(t, func() bool { return rejoins(&ev) == 2 }, 15*time.Second, 5*time.Millisecond, "rejoined again")
	time.Sleep(300 * time.Millisecond)
	assertOnlyJoinAndQuery(t, proxy.Sent()[mark:], room)
	assert.Len(t, got.got(), 2)
}

func rejoins(ev *events) int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	n := 0
	for _, e := range ev.es {
		if e.Kind == runtime.RoomRejoined {
			n++
		}
	}
	return n
}

// assertOnlyJoinAndQuery: what a client wrote (from a stream's start) holds,
// for room, the join presence and the MAM query, and nothing else.
func assertOnlyJoinAndQuery(t *testing.T, sent []byte, room string) {
	t.Helper()
	var toRoom []wireStanza
	for _, w := range wireStanzas(sent) {
		if strings.EqualFold(w.to, room) || strings.HasPrefix(strings.ToLower(w.to), strings.ToLower(room)+"/") {
			toRoom = append(toRoom, w)
		}
	}
	var names []string
	for _, w := range toRoom {
		names = append(names, w.name+" "+w.to+" "+w.typ+" "+strings.Join(w.ns, ","))
	}
	require.Len(t, toRoom, 2, "the rejoin sent the room: %v", names)
	assert.Equal(t, "presence", toRoom[0].name)
	assert.True(t, toRoom[0].has("http://jabber.org/protocol/muc"), "a MUC join: %v", names)
	assert.Equal(t, "iq", toRoom[1].name)
	assert.True(t, toRoom[1].has("urn:xmpp:mam:2"), "the MAM query: %v", names)
}

func sentTo(ws []wireStanza, room string, ok func(wireStanza) bool) int {
	n := 0
	for _, w := range ws {
		if strings.HasPrefix(strings.ToLower(w.to), strings.ToLower(room)) && ok(w) {
			n++
		}
	}
	return n
}

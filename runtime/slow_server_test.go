package runtime_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// answerLate answers iq with an empty result after d, off the script's reading
// loop (as a busy server does: it reads on, and answers when it gets to it).
func answerLate(st *xmpptest.Stream, iq xmpptest.Element, d time.Duration) {
	time.AfterFunc(d, func() {
		st.Send(`<iq type='result' id='%s' from='%s' to='%s'/>`, iq.Get("id"), iq.Get("to"), st.JID)
	})
}

// Issue 12, item 3: a slow but live server is not taken for a dead link. The
// server answers every keepalive ping late, later each time (past the
// KeepAliveTimeout, and the second past the first ping's whole grace), and
// sends nothing else: each late answer extends the wait, and the link stays
// up. (TestKeepAliveFindsAHalfOpenLink: a server that never answers is still
// dropped.)
func TestKeepAliveKeepsASlowServer(t *testing.T) {
	var streams, pings atomic.Int32
	delays := []time.Duration{300 * time.Millisecond, 500 * time.Millisecond, 700 * time.Millisecond, 700 * time.Millisecond}
	f := &fakeMUC{onStream: func() { streams.Add(1) }}
	f.onIQ = func(st *xmpptest.Stream, iq xmpptest.Element) bool {
		if !strings.Contains(iq.Inner, "urn:xmpp:ping") {
			return false
		}
		n := int(pings.Add(1)) - 1
		answerLate(st, iq, delays[min(n, len(delays)-1)])
		return true
	}
	states := make(chan runtime.State, 20)
	hostileRuntime(t, f, func(c *runtime.Config) {
		c.KeepAlive, c.KeepAliveTimeout = 50*time.Millisecond, 200*time.Millisecond
		c.OnStateChange = func(sc runtime.StateChange) { states <- sc.To }
	})
	require.Eventually(t, func() bool { return pings.Load() >= 4 }, 10*time.Second, 5*time.Millisecond, "four pings, each answered late")
	time.Sleep(800 * time.Millisecond) // the fourth ping's answer, and its grace
	assert.Equal(t, int32(1), streams.Load(), "the link was never dropped")
	close(states)
	var seen []runtime.State
	for s := range states {
		seen = append(seen, s)
	}
	assert.Equal(t, []runtime.State{runtime.Connecting, runtime.Online}, seen)
}

// Issue 12, item 3: on a loaded server, whose answers all come late, a
// request is given more time than RequestTimeout instead of failing (and being
// retried, which loads it more). The server answers everything 400 ms late;
// the requests time out at 300 ms.
func TestRequestsWaitForALoadedServer(t *testing.T) {
	const late = 400 * time.Millisecond
	var pings atomic.Int32
	f := &fakeMUC{}
	f.onIQ = func(st *xmpptest.Stream, iq xmpptest.Element) bool {
		if strings.Contains(iq.Inner, "urn:xmpp:ping") {
			pings.Add(1)
		}
		if t := iq.Get("type"); t != "get" && t != "set" {
			return true
		}
		if strings.Contains(iq.Inner, "disco#info") {
			time.AfterFunc(late, func() {
				st.Send(`<iq type='result' id='%s' from='%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'><feature var='http://jabber.org/protocol/muc'/><feature var='urn:xmpp:mam:2'/></query></iq>`, iq.Get("id"), iq.Get("to"), st.JID)
			})
			return true
		}
		answerLate(st, iq, late)
		return true
	}
	f.onMAM = func(st *xmpptest.Stream, q mamQuery) {
		time.AfterFunc(late, func() { fin(st, q, true, "", "") })
	}
	rt := hostileRuntime(t, f, func(c *runtime.Config) {
		c.RequestTimeout = 300 * time.Millisecond
		c.KeepAlive, c.KeepAliveTimeout = 50*time.Millisecond, time.Second
	})
	// The keepalive pings have shown how long the server takes.
	require.Eventually(t, func() bool { return pings.Load() >= 2 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(late)
	page, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: hostileTopic})
	require.NoError(t, err, "a request answered late but answered")
	assert.Empty(t, page.Messages)
}

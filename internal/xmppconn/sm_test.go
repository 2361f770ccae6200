package xmppconn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

// smConn logs in to the server under test through a recording proxy, as its
// account 0 with a resource of its own, and starts the Conn. The server must
// offer stream management (scripts/devserver.sh enables it).
type smConn struct {
	*Conn
	proxy     *xmpptest.RecordingProxy
	mu        sync.Mutex
	bodies    []string // chat bodies received, in order
	suspended int
	resumed   int
	unacked   int
	closed    chan error
}

func dialSM(t *testing.T, o func(*Options)) *smConn {
	t.Helper()
	s := xmpptest.Require(t)
	p := xmpptest.NewRecordingProxy(t, s.Addr)
	opt := Options{Addr: p.Addr, User: s.Accounts[0][0] + "@" + s.Domain, Password: s.Accounts[0][1],
		Resource: fmt.Sprintf("sm-%d", time.Now().UnixNano()), AllowPlaintext: true, DialTimeout: 5 * time.Second}
	if o != nil {
		o(&opt)
	}
	c, err := Dial(context.Background(), opt)
	require.NoError(t, err)
	sc := &smConn{Conn: c, proxy: p, closed: make(chan error, 1)}
	c.Start(Handler{
		Stanza: func(v any) {
			// Only what this Conn sent itself: a chat message another test's
			// session left unacknowledged comes to the account's next login
			// from the server's offline store.
			if m, ok := v.(stanza.Message); ok && m.Body != "" && m.From == c.JID() {
				sc.mu.Lock()
				sc.bodies = append(sc.bodies, m.Body)
				sc.mu.Unlock()
			}
		},
		Closed:    func(err error) { sc.closed <- err },
		Suspended: func(error) { sc.mu.Lock(); sc.suspended++; sc.mu.Unlock() },
		Resumed:   func() { sc.mu.Lock(); sc.resumed++; sc.mu.Unlock() },
		Unacked:   func(n int) { sc.mu.Lock(); sc.unacked = n; sc.mu.Unlock() },
	})
	t.Cleanup(func() { c.Close(time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st := c.WaitSM(ctx); !st.Offered {
		if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
			t.Fatalf("%s (%s) offers no stream management: restart it with scripts/devserver.sh restart", s.Addr, s.Name)
		}
		t.Skipf("%s (%s) offers no stream management (scripts/devserver.sh restart enables it)", s.Addr, s.Name)
	}
	return sc
}

func (sc *smConn) chat(t *testing.T, body string) {
	t.Helper()
	require.NoError(t, sc.Send(fmt.Appendf(nil, "<message to='%s' id='%s' type='chat'><body>%s</body></message>", sc.JID(), body, body)))
}

func (sc *smConn) got() []string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return append([]string(nil), sc.bodies...)
}

func (sc *smConn) counts() (suspended, resumed, unacked int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.suspended, sc.resumed, sc.unacked
}

func want(prefix string, n int) []string {
	var w []string
	for i := range n {
		w = append(w, fmt.Sprintf("%s%d", prefix, i))
	}
	return w
}

// After login the server's offer is taken: enabled with resumption, the
// server's resumption timeout known; what the runtime sends is acknowledged
// (a burst asks at once, the rest within the periodic request), and the
// server's requests are answered.
func TestStreamManagementEnabledAndAcked(t *testing.T) {
	sc := dialSM(t, nil)
	st := sc.SM()
	require.True(t, st.Enabled, "%+v", st)
	assert.True(t, st.Resumable, "%+v", st)
	assert.Greater(t, st.Max, time.Duration(0), "the server's resumption timeout")
	for i := range 40 {
		sc.chat(t, fmt.Sprintf("a%d", i))
	}
	require.Eventually(t, func() bool { return len(sc.got()) == 40 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, want("a", 40), sc.got())
	require.Eventually(t, func() bool { _, _, u := sc.counts(); return u == 0 }, 3*ackInterval, 10*time.Millisecond,
		"every stanza acknowledged")
	assert.Contains(t, string(sc.proxy.Sent()), "<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	assert.Contains(t, string(sc.proxy.Sent()), "<r xmlns='urn:xmpp:sm:3'/>")
}

// Turned off, nothing is enabled even though the server offers it.
func TestStreamManagementDisabled(t *testing.T) {
	sc := dialSM(t, func(o *Options) { o.DisableStreamManagement = true })
	st := sc.SM()
	assert.True(t, st.Offered)
	assert.False(t, st.Enabled)
	assert.NotContains(t, string(sc.proxy.Sent()), "<enable")
}

// A killed link resumes: the same Conn, no Closed, and every message sent
// before, around and after the kill arrives once, in order (what the server
// had not acknowledged is sent again, what it had not delivered it delivers
// on <resumed/>).
func TestResumeAfterLinkKill(t *testing.T) {
	sc := dialSM(t, nil)
	for i := range 5 {
		sc.chat(t, fmt.Sprintf("m%d", i))
	}
	sc.proxy.SetSilent(true) // drops the link: nothing more gets through
	for i := 5; i < 10; i++ {
		sc.chat(t, fmt.Sprintf("m%d", i))
	}
	time.Sleep(300 * time.Millisecond)
	sc.proxy.SetSilent(false)
	for i := 10; i < 15; i++ {
		sc.chat(t, fmt.Sprintf("m%d", i))
	}
	require.Eventually(t, func() bool { return len(sc.got()) >= 15 }, 20*time.Second, 10*time.Millisecond, "got %v", sc.got())
	time.Sleep(500 * time.Millisecond) // nothing more comes
	assert.Equal(t, want("m", 15), sc.got())
	s, r, _ := sc.counts()
	assert.Equal(t, 1, s, "suspended once")
	assert.Equal(t, 1, r, "resumed once")
	assert.Equal(t, 1, sc.SM().Resumes)
	assert.Contains(t, string(sc.proxy.Sent()), "<resume xmlns='urn:xmpp:sm:3'")
	select {
	case err := <-sc.closed:
		t.Fatalf("closed: %v", err)
	default:
	}
	// A stanza the server acknowledged is not sent again: the only body
	// written twice is one the server had not acknowledged.
	sent := string(sc.proxy.Sent())
	for i := range 5 {
		assert.LessOrEqual(t, strings.Count(sent, fmt.Sprintf("<body>m%d</body>", i)), 2)
	}
}

// A resumption the server refuses (a session it doesn't know: it restarted,
// or the session timed out) ends the Conn with the error that lost the link,
// as a lost link always did: the runtime then recovers in full.
func TestResumeRefusedEndsTheConn(t *testing.T) {
	sc := dialSM(t, nil)
	sc.sm.mu.Lock()
	sc.sm.id = "no-such-session" // as after a server restart
	sc.sm.mu.Unlock()
	sc.proxy.SetSilent(true)
	sc.proxy.SetSilent(false)
	select {
	case err := <-sc.closed:
		require.Error(t, err)
		assert.True(t, errors.Is(err, errResumeRefused) || strings.Contains(err.Error(), errResumeRefused.Error()), "%v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the refused resumption didn't end the Conn")
	}
	s, r, _ := sc.counts()
	assert.Equal(t, 1, s)
	assert.Equal(t, 0, r)
}

// Without resumption (the server grants none, or the queue overflowed) a
// lost link ends the Conn at once, as before.
func TestOverflowedQueueIsNotResumed(t *testing.T) {
	sc := dialSM(t, func(o *Options) { o.SMQueue = 3 })
	for i := range 10 {
		sc.chat(t, fmt.Sprintf("o%d", i))
	}
	require.Eventually(t, func() bool { return len(sc.got()) == 10 }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return !sc.SM().Resumable }, 5*time.Second, 10*time.Millisecond)
	sc.proxy.SetSilent(true)
	select {
	case err := <-sc.closed:
		require.Error(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("a lost link without resumption didn't end the Conn")
	}
	s, _, _ := sc.counts()
	assert.Equal(t, 0, s, "no resumption tried")
}

// A stanza written into a link that was already dead never reached the
// server: its <resumed h/> doesn't cover it, and it is written again on the
// new link, once. (The stanza is tracked as the writer tracks what it writes,
// and its bytes go nowhere: a write the kernel took and the dead link lost.)
func TestResumeResendsWhatTheServerNeverGot(t *testing.T) {
	sc := dialSM(t, nil)
	sc.chat(t, "w0")
	require.Eventually(t, func() bool { return len(sc.got()) == 1 }, 10*time.Second, 10*time.Millisecond)
	sc.track(fmt.Appendf(nil, "<message to='%s' id='w1' type='chat'><body>w1</body></message>", sc.JID()), nil)
	sc.proxy.SetSilent(true)
	sc.proxy.SetSilent(false)
	sc.chat(t, "w2")
	require.Eventually(t, func() bool { return len(sc.got()) >= 3 }, 20*time.Second, 10*time.Millisecond, "got %v", sc.got())
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, want("w", 3), sc.got())
	assert.Equal(t, 1, sc.SM().Resumes)
}

// A fenced stanza (SendFenced: a cluster node's relay post) that the server
// never got is written again on the resumed link only while its fence still
// answers nil: one whose fence ended meanwhile (the node's lease) is left
// out, and what follows is numbered from the server's h, so everything sent
// afterwards is still acknowledged.
func TestResumeAsksTheFence(t *testing.T) {
	sc := dialSM(t, nil)
	sc.chat(t, "f0")
	require.Eventually(t, func() bool { return len(sc.got()) == 1 }, 10*time.Second, 10*time.Millisecond)
	msg := func(body string) []byte {
		return fmt.Appendf(nil, "<message to='%s' id='%s' type='chat'><body>%s</body></message>", sc.JID(), body, body)
	}
	// Written into the dead link (tracked as the writer does, the bytes gone).
	sc.track(msg("f1"), func() error { return errors.New("the lease ended") })
	sc.track(msg("f2"), func() error { return nil })
	sc.proxy.SetSilent(true)
	sc.proxy.SetSilent(false)
	sc.chat(t, "f3")
	require.Eventually(t, func() bool { return len(sc.got()) >= 3 }, 20*time.Second, 10*time.Millisecond, "got %v", sc.got())
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, []string{"f0", "f2", "f3"}, sc.got())
	assert.Equal(t, 1, sc.SM().Resumes)
	sc.chat(t, "f4")
	require.Eventually(t, func() bool { _, _, n := sc.counts(); return n == 0 }, 10*time.Second, 10*time.Millisecond,
		"the server's h and ours agree: all acknowledged")
}

// Drop (the keepalive's verdict on a half-open link) resumes a resumable
// session on a new link; without resumption it ends the Conn with its error.
func TestDropResumes(t *testing.T) {
	sc := dialSM(t, nil)
	sc.chat(t, "d0")
	require.Eventually(t, func() bool { return len(sc.got()) == 1 }, 10*time.Second, 10*time.Millisecond)
	sc.Drop(errors.New("keepalive unanswered"))
	sc.chat(t, "d1")
	require.Eventually(t, func() bool { return len(sc.got()) == 2 }, 20*time.Second, 10*time.Millisecond)
	assert.Equal(t, want("d", 2), sc.got())
	assert.Equal(t, 1, sc.SM().Resumes)

	off := dialSM(t, func(o *Options) { o.DisableStreamManagement = true })
	gone := errors.New("keepalive unanswered")
	off.Drop(gone)
	select {
	case err := <-off.closed:
		assert.ErrorIs(t, err, gone)
	case <-time.After(10 * time.Second):
		t.Fatal("Drop without resumption didn't end the Conn")
	}
}

// Over TLS (STARTTLS, SCRAM with channel binding; on ejabberd the login's
// retry over TLS 1.2), a killed link resumes: the resumption's login is the
// same as the first, stopped before the bind.
func TestResumeOverTLS(t *testing.T) {
	for _, name := range []string{"prosody", "ejabberd"} {
		t.Run(name, func(t *testing.T) {
			po := xmpptest.PrivateOptions{Accounts: map[string]string{"tlsuser": tlsPass}, StreamManagement: true}
			var p *xmpptest.Private
			if name == "prosody" {
				p = xmpptest.StartProsody(t, po)
			} else {
				p = xmpptest.StartEjabberd(t, po)
			}
			proxy := xmpptest.NewRecordingProxy(t, p.Addr)
			o := tlsOpts(p, proxy.Addr)
			o.TLSConfig = p.CA.TLSConfig()
			c, err := Dial(context.Background(), o)
			require.NoError(t, err)
			defer c.Close(time.Second)
			var mu sync.Mutex
			var bodies []string
			resumed := make(chan struct{}, 1)
			c.Start(Handler{
				Stanza: func(v any) {
					if m, ok := v.(stanza.Message); ok && m.Body != "" {
						mu.Lock()
						bodies = append(bodies, m.Body)
						mu.Unlock()
					}
				},
				Closed:  func(error) {},
				Resumed: func() { resumed <- struct{}{} },
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.True(t, c.WaitSM(ctx).Resumable, "%+v", c.SM())
			mech := c.t.Load().client.Mechanism
			chat := func(b string) {
				require.NoError(t, c.Send(fmt.Appendf(nil, "<message to='%s' type='chat'><body>%s</body></message>", c.JID(), b)))
			}
			chat("t0")
			proxy.SetSilent(true)
			proxy.SetSilent(false)
			chat("t1")
			select {
			case <-resumed:
			case <-time.After(30 * time.Second):
				t.Fatal("not resumed")
			}
			require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 2 }, 10*time.Second, 10*time.Millisecond)
			mu.Lock()
			assert.Equal(t, []string{"t0", "t1"}, bodies)
			mu.Unlock()
			assert.True(t, c.t.Load().client.IsEncrypted())
			assert.Equal(t, mech, c.t.Load().client.Mechanism, "the resumption's login used the same mechanism")
			if name == "ejabberd" { // its TLS 1.2 retry keeps channel binding
				assert.True(t, strings.HasSuffix(mech, "-PLUS"), mech)
			}
			assertNothingInClear(t, proxy.Sent())
		})
	}
}

// Past the server's resumption timeout (the link held down longer) there is
// no resumption: the Conn tries no longer than the server's <enabled max/>
// (here 1 s) and ends, and the runtime then recovers in full.
func TestResumeRefusedAfterTheTimeout(t *testing.T) {
	for _, name := range []string{"prosody", "ejabberd"} {
		t.Run(name, func(t *testing.T) {
			po := xmpptest.PrivateOptions{Accounts: map[string]string{"tlsuser": tlsPass}, StreamManagement: true, ResumeTimeout: time.Second}
			var p *xmpptest.Private
			if name == "prosody" {
				p = xmpptest.StartProsody(t, po)
			} else {
				p = xmpptest.StartEjabberd(t, po)
			}
			proxy := xmpptest.NewRecordingProxy(t, p.Addr)
			o := tlsOpts(p, proxy.Addr)
			o.TLSConfig, o.DialTimeout = p.CA.TLSConfig(), 2*time.Second
			c, err := Dial(context.Background(), o)
			require.NoError(t, err)
			defer c.Close(time.Second)
			closed := make(chan error, 1)
			suspended := make(chan struct{}, 1)
			c.Start(Handler{
				Stanza:    func(any) {},
				Closed:    func(err error) { closed <- err },
				Suspended: func(error) { suspended <- struct{}{} },
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st := c.WaitSM(ctx)
			require.True(t, st.Resumable, "%+v", st)
			require.Equal(t, time.Second, st.Max, "the server's resumption timeout")
			proxy.SetSilent(true) // down, and logins hang
			<-suspended
			time.Sleep(4 * time.Second) // past the server's timeout (the server may take a little more)
			proxy.SetSilent(false)
			select {
			case err := <-closed:
				require.Error(t, err)
				assert.Contains(t, err.Error(), "(resumption: ", "the resumption was tried and gave up")
			case <-time.After(30 * time.Second):
				t.Fatal("a resumption past the server's timeout was not refused")
			}
			assert.Equal(t, 0, c.SM().Resumes)
		})
	}
}

// Close acknowledges what the Conn handled before it ends the stream: the
// server would take the unacknowledged stanzas for undelivered (Prosody
// stores chat messages offline and answers the rest with errors).
func TestCloseAcknowledgesFirst(t *testing.T) {
	sc := dialSM(t, nil)
	for i := range 3 {
		sc.chat(t, fmt.Sprintf("c%d", i))
	}
	require.Eventually(t, func() bool { return len(sc.got()) == 3 }, 10*time.Second, 10*time.Millisecond)
	sc.Close(5 * time.Second)
	sent := string(sc.proxy.Sent())
	h := sc.sm.inH.Load()
	assert.GreaterOrEqual(t, h, uint32(3), "the three messages were counted")
	assert.True(t, strings.HasSuffix(sent, fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/></stream:stream>", h)), "the stream ends with an ack of all it handled: ...%s", sent[max(0, len(sent)-120):])
}

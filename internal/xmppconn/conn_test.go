package xmppconn

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

func opts(addr string) Options {
	return Options{Addr: addr, User: "user@parley.local", Password: "s3cret-pw", Resource: "r", AllowPlaintext: true, DialTimeout: 2 * time.Second}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Without permission for plain text, the password is never sent over a stream
// that didn't become TLS.
func TestRequireTLSNeverSendsThePasswordInTheClear(t *testing.T) {
	srv := xmpptest.NewScripted(t, "parley.local", func(*xmpptest.Stream) {})
	o := opts(srv.Addr)
	o.AllowPlaintext, o.RequireTLS = false, true
	_, err := Dial(context.Background(), o)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret-pw")
	assert.Zero(t, srv.Auths(), "no <auth/> reached the server")
}

func TestDialReadsAndWritesStanzas(t *testing.T) {
	got := make(chan xmpptest.Element, 1)
	srv := xmpptest.NewScripted(t, "parley.local", func(st *xmpptest.Stream) {
		st.Send(`<message from='room@muc/alice' type='groupchat'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc' id='s1'/></message>`)
		st.Send(`<iq type='result' id='q1' from='room@muc'><fin xmlns='urn:xmpp:mam:2' complete='true'/></iq>`)
		if e, err := st.Next(5 * time.Second); err == nil {
			got <- e
		}
		for { // hold the stream until the client goes
			if _, err := st.Next(5 * time.Second); err != nil {
				return
			}
		}
	})
	c, err := Dial(context.Background(), opts(srv.Addr))
	require.NoError(t, err)
	assert.Equal(t, "user@parley.local/r", c.JID())
	var mu sync.Mutex
	var in []any
	closed := make(chan error, 1)
	c.Start(Handler{
		Stanza: func(v any) { mu.Lock(); in = append(in, v); mu.Unlock() },
		Closed: func(err error) { closed <- err },
	})
	require.NoError(t, c.Send(stanza.PingIQ("parley.local", "p1")))
	select {
	case e := <-got:
		// go-xmpp's initial presence may come first; the ping is what we sent.
		if e.XMLName.Local == "presence" {
			t.Log("initial presence seen first")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server saw nothing")
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(in) >= 2 }, 5*time.Second, 5*time.Millisecond)
	mu.Lock()
	m, ok := in[0].(stanza.Message)
	require.True(t, ok, "%T", in[0])
	assert.Equal(t, stanza.StanzaID{ID: "s1", By: "room@muc"}, m.StanzaID)
	iq, ok := in[1].(stanza.IQ)
	require.True(t, ok, "%T", in[1])
	assert.Equal(t, "q1", iq.ID)
	f, err := stanza.ParseFin(iq.Payload)
	mu.Unlock()
	require.NoError(t, err)
	assert.True(t, f.Complete)

	c.Close(time.Second)
	select {
	case err := <-closed:
		assert.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Closed was not reported")
	}
	assert.ErrorIs(t, c.Send([]byte("<presence/>")), vocab.ErrConnClosed)
}

// Abort returns at once and the goroutines end even when the server never
// answers the closing of the stream.
func TestAbortEndsAHungStream(t *testing.T) {
	srv := xmpptest.NewScripted(t, "parley.local", func(st *xmpptest.Stream) {
		time.Sleep(3 * time.Second) // read nothing, answer nothing
	})
	c, err := Dial(context.Background(), opts(srv.Addr))
	require.NoError(t, err)
	c.Start(Handler{Stanza: func(any) {}, Closed: func(error) {}})
	start := time.Now()
	c.Abort()
	c.Wait()
	assert.Less(t, time.Since(start), time.Second)
}

func TestDialHonoursContext(t *testing.T) {
	addr := xmpptest.NewSilent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Dial(ctx, opts(addr))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), time.Second)
}

func TestScrubKeepsPasswordsOut(t *testing.T) {
	err := scrub(errors.New("auth failed for hunter2 at host"), "hunter2")
	assert.NotContains(t, err.Error(), "hunter2")
	assert.True(t, strings.Contains(err.Error(), "<password>"))
	plain := errors.New("nothing secret")
	assert.Same(t, plain, scrub(plain, "hunter2"))
}

// A stanza over the inbound limit ends the link with ErrInboundTooLarge, read
// no further than the limit (plus go-xmpp's read-ahead); one under it passes.
func TestInboundStanzaOverTheLimitClosesTheLink(t *testing.T) {
	srv := xmpptest.NewScripted(t, "parley.local", func(st *xmpptest.Stream) {
		st.Send(`<message from='room@muc/alice' type='groupchat'><body>%s</body></message>`, strings.Repeat("a", 100<<10))
		st.Send(`<message from='room@muc/alice' type='groupchat'><body>%s</body></message>`, strings.Repeat("b", 4<<20))
		_, _ = st.Next(5 * time.Second)
	})
	o := opts(srv.Addr)
	o.MaxInboundBytes = 1 << 20
	c, err := Dial(context.Background(), o)
	require.NoError(t, err)
	var bodies []int
	closed := make(chan error, 1)
	c.Start(Handler{
		Stanza: func(v any) {
			if m, ok := v.(stanza.Message); ok {
				bodies = append(bodies, len(m.Body))
			}
		},
		Closed: func(err error) { closed <- err },
	})
	select {
	case err := <-closed:
		assert.ErrorIs(t, err, vocab.ErrInboundTooLarge)
	case <-time.After(5 * time.Second):
		t.Fatal("the link stayed up")
	}
	c.Wait()
	assert.Equal(t, []int{100 << 10}, bodies, "the small stanza came through, the big one didn't")
}

// Send refuses a stanza over the link's limit, and a full queue, without
// dropping the link.
func TestSendRefusesWithoutDroppingTheLink(t *testing.T) {
	release := make(chan struct{})
	srv := xmpptest.NewScripted(t, "parley.local", func(st *xmpptest.Stream) {
		<-release // read nothing: the writer backs up
		for {
			if _, err := st.Next(5 * time.Second); err != nil {
				return
			}
		}
	})
	o := opts(srv.Addr)
	o.MaxStanzaBytes, o.SendQueue = 1000, 4
	c, err := Dial(context.Background(), o)
	require.NoError(t, err)
	closed := make(chan error, 1)
	c.Start(Handler{Stanza: func(any) {}, Closed: func(err error) { closed <- err }})
	assert.Equal(t, 1000, c.MaxStanza())
	assert.ErrorIs(t, c.Send([]byte("<message>"+strings.Repeat("x", 1000)+"</message>")), vocab.ErrStanzaTooLarge)
	full := false
	for range 100000 { // the socket's buffers fill, then the queue
		if err := c.Send([]byte("<presence>" + strings.Repeat("y", 900) + "</presence>")); err != nil {
			require.ErrorIs(t, err, vocab.ErrSendQueueFull)
			full = true
			break
		}
	}
	require.True(t, full, "the queue never filled")
	close(release)
	select {
	case err := <-closed:
		t.Fatalf("the link dropped: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.Eventually(t, func() bool { return c.Send([]byte("<presence/>")) == nil }, 5*time.Second, 10*time.Millisecond, "the writer drains the queue")
	c.Close(time.Second)
}

func TestEndedByServer(t *testing.T) {
	for err, want := range map[error]bool{
		errors.New("stream error: XML stanza is too big"):    true,
		errors.New("server closed stream"):                   true,
		&net.OpError{Op: "read", Err: syscall.ECONNRESET}:    true,
		errors.New("stream error: Server is shutting down"):  false,
		errors.New("unexpected EOF"):                         false,
		fmt.Errorf("%w: after 10s", errors.New("keepalive")): false,
		vocab.ErrConnClosed:                                  false,
	} {
		assert.Equal(t, want, EndedByServer(err), "%v", err)
	}
	assert.False(t, EndedByServer(nil))
}

// Issue 12, item 3: a server that stops reading what we send but still sends
// (a CPU-starved server working through its backlog) is busy, not dead: the
// write's deadline moves on while it talks, and the link stays up once it
// reads again. A server silent both ways still fails the write in
// WriteTimeout.
func TestWriteWaitsForAServerThatStillSends(t *testing.T) {
	for _, talking := range []bool{true, false} {
		t.Run(fmt.Sprintf("talking=%v", talking), func(t *testing.T) {
			release := make(chan struct{})
			srv := xmpptest.NewScripted(t, "parley.local", func(st *xmpptest.Stream) {
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
			stalled: // read nothing: the client's writer blocks
				for {
					select {
					case <-release:
						break stalled
					case <-tick.C:
						if talking {
							st.Send(`<message from='parley.local' to='%s'><body>busy</body></message>`, st.JID)
						}
					}
				}
				for {
					if _, err := st.Next(5 * time.Second); err != nil {
						return
					}
				}
			})
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			t.Cleanup(free) // before the server's own cleanup: its script ends
			o := opts(srv.Addr)
			o.WriteTimeout = 200 * time.Millisecond
			c, err := Dial(context.Background(), o)
			require.NoError(t, err)
			defer c.Close(time.Second)
			closed := make(chan error, 1)
			c.Start(Handler{Stanza: func(any) {}, Closed: func(err error) { closed <- err }})
			big := []byte("<presence>" + strings.Repeat("y", 60000) + "</presence>")
			for range 400 { // 24 MB: more than the socket buffers take
				if err := c.Send(big); err != nil {
					break
				}
			}
			select {
			case err := <-closed:
				if talking {
					t.Fatalf("the link to a server that still sends dropped: %v", err)
				}
				assert.ErrorContains(t, err, "write")
			case <-time.After(700 * time.Millisecond): // over 3 × WriteTimeout
				if !talking {
					t.Fatal("a server silent both ways kept the link")
				}
			}
			free()
			if talking {
				require.Eventually(t, func() bool { return c.Send([]byte("<presence/>")) == nil }, 5*time.Second, 10*time.Millisecond)
				select {
				case err := <-closed:
					t.Fatalf("the link dropped: %v", err)
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
}

// deadlineConn records the write deadlines set on it.
type deadlineConn struct {
	net.Conn
	mu        sync.Mutex
	deadlines []time.Time
}

func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	d.deadlines = append(d.deadlines, t)
	d.mu.Unlock()
	return d.Conn.SetWriteDeadline(t)
}

// Every write gets a fresh deadline and clears it when done: no stale
// deadline is left on the socket for whatever writes next (go-xmpp's own
// answers to pings once failed on one, 10 s after our last write). raw is
// the TCP connection under any TLS, so this holds with TLS too.
func TestWriteLeavesNoDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _, _ = io.Copy(io.Discard, b) }()
	rec := &deadlineConn{Conn: a}
	c := &Conn{wto: time.Second}
	tr := &transport{raw: rec, w: rec, in: newInboundLimit(0)}
	c.t.Store(tr)
	c.keeper = time.AfterFunc(time.Hour, c.keepWriting)
	c.keeper.Stop()
	for range 3 {
		require.NoError(t, c.write(tr, []byte("<presence/>")))
		rec.mu.Lock()
		last := rec.deadlines[len(rec.deadlines)-1]
		n := len(rec.deadlines)
		rec.mu.Unlock()
		assert.True(t, last.IsZero(), "a deadline left on the socket after a write: %v", last)
		assert.False(t, rec.deadlines[n-2].IsZero(), "the write itself had a deadline")
	}
}

// panicReader panics when read.
type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("a bug in reading") }

// A panic while reading a stanza ends the link with ErrReaderPanicked; it
// never reaches the process.
func TestReaderPanicEndsTheLinkNotTheProcess(t *testing.T) {
	c := readerConn(t, nil)
	c.t.Load().dec = xml.NewDecoder(panicReader{})
	_, _, counted, err := c.readOne()
	require.ErrorIs(t, err, vocab.ErrReaderPanicked)
	assert.False(t, counted)
	// Not resumed, even on a resumable session: the server would send the
	// stanza again, uncounted.
	c.sm.resumable, c.sm.id = true, "s1"
	assert.False(t, c.resumableLoss(err))
}

// Every link given up is reset (linger 0), the Conn's end and a link lost
// to a resumption alike: the peer reads a reset, not an orderly end after
// whatever the kernel still held.
func TestGivenUpLinksAreReset(t *testing.T) {
	for _, tc := range []struct {
		name string
		drop func(c *Conn, tr *transport)
	}{
		{"fail", func(c *Conn, _ *transport) { c.fail(vocab.ErrConnClosed) }},
		{"lost to a resumption", func(c *Conn, tr *transport) {
			c.sm.resumable, c.sm.id = true, "s1"
			require.True(t, c.lostWrite(tr, errors.New("write: timeout")))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer l.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				s, err := l.Accept()
				if err == nil {
					accepted <- s
				}
			}()
			raw, err := net.Dial("tcp", l.Addr().String())
			require.NoError(t, err)
			peer := <-accepted
			defer peer.Close()
			c := readerConn(t, nil)
			tr := c.t.Load()
			tr.raw, tr.w = raw, raw
			tc.drop(c, tr)
			_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = peer.Read(make([]byte, 1))
			require.ErrorIs(t, err, syscall.ECONNRESET)
		})
	}
}

package xmppconn

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

// A login against a server that never answers ends when its ctx does (its
// socket's deadline), not when TCP gives up; and with a shared gate a second
// login doesn't even dial while the first is in flight.
func TestLoginIsBoundedAndOneAtATime(t *testing.T) {
	silent := xmpptest.NewRecordingProxy(t, "127.0.0.1:1") // never dials it: silent from the start
	silent.SetSilent(true)
	gate := NewLoginGate()
	o := opts(silent.Addr)
	o.Logins, o.DialTimeout = gate, 0

	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() { _, err := Dial(ctxA, o); errA <- err }()
	require.Eventually(t, func() bool { return silent.Accepted() == 1 }, 5*time.Second, 5*time.Millisecond)

	ctxB, cancelB := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelB()
	_, err := Dial(ctxB, o)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 1, silent.Accepted(), "the second login waited for the first: it never dialed")

	cancelA()
	select {
	case err := <-errA:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("a login on a silent server outlived its ctx")
	}

	// DialTimeout alone bounds it too.
	o.Logins, o.DialTimeout = nil, 200*time.Millisecond
	_, err = Dial(context.Background(), o)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// hostileLogin listens on loopback and, for each connection, sends prefix
// then filler without end; it reports how many bytes the client took before
// it hung up.
func hostileLogin(t *testing.T, prefix func(c net.Conn, r *bufio.Reader), filler string) (addr string, sent func() int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		prefix(c, bufio.NewReader(c))
		chunk := []byte(strings.Repeat(filler, 64<<10/len(filler)))
		for n.Load() < 400<<20 {
			w, err := c.Write(chunk)
			n.Add(int64(w))
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return ln.Addr().String(), func() int64 { <-done; return n.Load() }
}

const hostileHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='parley.local' id='h' version='1.0'>`

// A server that sends endless stream features before TLS is dropped after
// maxNegotiationBytes (the unbounded read took 2.2 GB for 400 MiB): Dial
// fails with ErrNegotiationTooLarge, having read about 64 KiB.
func TestNegotiationReadIsCapped(t *testing.T) {
	addr, sent := hostileLogin(t, func(c net.Conn, _ *bufio.Reader) {
		_, _ = c.Write([]byte(hostileHeader + `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>`))
	}, "PLAIN")
	_, err := Dial(context.Background(), opts(addr))
	require.ErrorIs(t, err, vocab.ErrNegotiationTooLarge)
	assert.Less(t, sent(), int64(8<<20), "bytes the server got to send before the client hung up (socket buffers included)")
}

// Past the features, the login (SASL, bind), which go-xmpp reads, has a
// budget of its own: a server whose answer to <auth/> never ends is dropped
// with ErrInboundTooLarge.
func TestLoginReadIsCapped(t *testing.T) {
	addr, sent := hostileLogin(t, func(c net.Conn, r *bufio.Reader) {
		_, _ = c.Write([]byte(hostileHeader + `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`))
		for { // until the client's <auth/>
			line, err := r.ReadString('>')
			if err != nil || strings.Contains(line, "<auth") {
				break
			}
		}
		_, _ = c.Write([]byte(`<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>`))
	}, "AAAA")
	_, err := Dial(context.Background(), opts(addr))
	require.ErrorIs(t, err, vocab.ErrInboundTooLarge)
	assert.Less(t, sent(), int64(8<<20))
}

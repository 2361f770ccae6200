package xmpptest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-go/parley-xmpp/internal/fakexmpp"
)

// Scripted is an XMPP server that logs a client in (plain text, SASL PLAIN,
// resource binding) and then hands the stream to a script. It is for tests of
// hostile or broken input that no real server would send. It listens on
// 127.0.0.1 only.
type Scripted struct {
	Addr   string
	Domain string
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	auths  atomic.Int32
}

// Auths is how many SASL <auth/> elements (passwords) clients sent.
func (s *Scripted) Auths() int { return int(s.auths.Load()) }

// Element is a stanza the client sent, with its raw XML.
type Element = fakexmpp.Element

// Stream is one client's stream, after login.
type Stream struct {
	t testing.TB
	*fakexmpp.Stream
}

// NewScripted starts a server whose every connection runs script after login.
// The server stops at the end of the test.
func NewScripted(t testing.TB, domain string, script func(*Stream)) *Scripted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Scripted{Addr: ln.Addr().String(), Domain: domain, ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				st, err := s.login(t, c)
				if err != nil {
					return
				}
				script(st)
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and drops every connection.
func (s *Scripted) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Scripted) login(t testing.TB, c net.Conn) (*Stream, error) {
	st, err := fakexmpp.Login(c, s.Domain, 10*time.Second, func() { s.auths.Add(1) })
	if err != nil {
		return nil, err
	}
	return &Stream{t: t, Stream: st}, nil
}

// Next returns the client's next stanza, or an error after timeout or when the
// client is gone.
func (st *Stream) Next(timeout time.Duration) (Element, error) {
	_ = st.Conn.SetReadDeadline(time.Now().Add(timeout))
	return st.Stream.Next()
}

// Await returns the first stanza named local (message, presence, iq) for which
// ok holds, skipping the others; it fails the test after timeout.
func (st *Stream) Await(timeout time.Duration, local string, ok func(Element) bool) Element {
	deadline := time.Now().Add(timeout)
	for {
		e, err := st.Next(time.Until(deadline))
		if err != nil {
			st.t.Errorf("xmpptest: waiting for <%s/>: %v", local, err)
			return Element{}
		}
		if e.XMLName.Local == local && (ok == nil || ok(e)) {
			return e
		}
	}
}

// Send writes raw XML to the client.
func (st *Stream) Send(format string, args ...any) {
	if err := st.Stream.Send(fmt.Sprintf(format, args...)); err != nil && !errors.Is(err, net.ErrClosed) {
		st.t.Logf("xmpptest: send: %v", err)
	}
}

// Escape XML-escapes s.
func Escape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// NewSilent returns the address of a listener on 127.0.0.1 that accepts
// connections and never says a word: a server that hangs a login.
func NewSilent(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

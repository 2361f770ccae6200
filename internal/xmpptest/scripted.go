package xmpptest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
type Element struct {
	XMLName xml.Name
	Attr    []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

// Get returns the value of the attribute name.
func (e Element) Get(name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// Child decodes the first child element named local into v.
func (e Element) Child(local string, v any) bool {
	d := xml.NewDecoder(strings.NewReader(e.Inner))
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == local {
			return d.DecodeElement(v, &se) == nil
		}
	}
}

// Stream is one client's stream, after login.
type Stream struct {
	t    testing.TB
	conn net.Conn
	dec  *xml.Decoder
	JID  string // the client's full JID
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
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	header := fmt.Sprintf(`<?xml version='1.0'?><stream:stream from='%s' id='%d' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, s.Domain, time.Now().UnixNano())
	dec := xml.NewDecoder(c)
	if err := awaitStreamStart(dec); err != nil {
		return nil, err
	}
	fmt.Fprint(c, header+`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`)
	if _, err := nextElement(dec); err != nil { // <auth/>
		return nil, err
	}
	s.auths.Add(1)
	fmt.Fprint(c, `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
	dec = xml.NewDecoder(c) // the client restarts the stream
	if err := awaitStreamStart(dec); err != nil {
		return nil, err
	}
	fmt.Fprint(c, header+`<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`)
	bind, err := nextElement(dec)
	if err != nil {
		return nil, err
	}
	var res struct {
		Resource string `xml:"resource"`
	}
	bind.Child("bind", &res)
	jid := "user@" + s.Domain + "/" + res.Resource
	fmt.Fprintf(c, `<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>%s</jid></bind></iq>`, bind.Get("id"), jid)
	return &Stream{t: t, conn: c, dec: dec, JID: jid}, nil
}

func awaitStreamStart(dec *xml.Decoder) error {
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			return nil
		}
	}
}

func nextElement(dec *xml.Decoder) (Element, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return Element{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var e Element
			err := dec.DecodeElement(&e, &t)
			return e, err
		case xml.EndElement:
			return Element{}, io.EOF // </stream:stream>
		}
	}
}

// Next returns the client's next stanza, or an error after timeout or when the
// client is gone.
func (st *Stream) Next(timeout time.Duration) (Element, error) {
	_ = st.conn.SetReadDeadline(time.Now().Add(timeout))
	return nextElement(st.dec)
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
	if _, err := fmt.Fprintf(st.conn, format, args...); err != nil && !errors.Is(err, net.ErrClosed) {
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

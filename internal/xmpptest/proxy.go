package xmpptest

import (
	"bytes"
	"encoding/base64"
	"io"
	"net"
	"sync"
	"testing"
)

// RecordingProxy forwards TCP connections to an upstream address and keeps
// every byte that crosses it, both ways, so a test can search the wire. Made
// silent, it drops every connection and then plays a server that accepts and
// never answers.
type RecordingProxy struct {
	Addr     string
	mu       sync.Mutex
	up       []byte // client → server
	down     []byte // server → client
	silent   bool
	open     map[net.Conn]net.Conn // client side → upstream (nil when silent)
	accepted int
}

// NewRecordingProxy listens on a random loopback port; it stops with the test.
func NewRecordingProxy(t testing.TB, upstream string) *RecordingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &RecordingProxy{Addr: l.Addr().String(), open: map[net.Conn]net.Conn{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			silent := p.silent
			p.accepted++
			p.mu.Unlock()
			if silent {
				p.track(c, nil)
				wg.Add(1)
				go func() { defer wg.Done(); _, _ = io.Copy(io.Discard, c); p.untrack(c) }()
				continue
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.track(c, u)
			wg.Add(2)
			go func() { defer wg.Done(); p.pump(u, c, &p.up); _ = u.Close() }()
			go func() { defer wg.Done(); p.pump(c, u, &p.down); p.untrack(c) }()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		p.dropAll()
		wg.Wait()
	})
	return p
}

func (p *RecordingProxy) track(c, u net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open[c] = u
}

// untrack closes a client connection (and its upstream) and forgets it.
func (p *RecordingProxy) untrack(c net.Conn) {
	p.mu.Lock()
	u := p.open[c]
	delete(p.open, c)
	p.mu.Unlock()
	_ = c.Close()
	if u != nil {
		_ = u.Close()
	}
}

func (p *RecordingProxy) dropAll() {
	p.mu.Lock()
	var cs []net.Conn
	for c := range p.open {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		p.untrack(c)
	}
}

// SetSilent(true) drops every connection; from then on the proxy accepts
// connections and never answers (nor forwards) until SetSilent(false).
func (p *RecordingProxy) SetSilent(silent bool) {
	p.mu.Lock()
	p.silent = silent
	p.mu.Unlock()
	if silent {
		p.dropAll()
	}
}

// Open is how many client connections the proxy holds open now; Accepted how
// many it has accepted in all.
func (p *RecordingProxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.open)
}

// Accepted is how many connections the proxy has accepted in all.
func (p *RecordingProxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *RecordingProxy) pump(dst io.Writer, src io.Reader, rec *[]byte) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			*rec = append(*rec, buf[:n]...)
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Sent is every byte the clients sent; Received every byte the server sent.
func (p *RecordingProxy) Sent() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.up)
}

// Received is every byte the server sent to the clients.
func (p *RecordingProxy) Received() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.down)
}

// SecretForms are the ways a password shows on the wire or in a log: itself,
// base64 of it, and base64 of the SASL PLAIN message "\x00user\x00password"
// (and with the authzid "user@domain"), in std and raw URL encodings.
func SecretForms(user, domain, password string) []string {
	forms := []string{password}
	for _, s := range []string{password, "\x00" + user + "\x00" + password, user + "@" + domain + "\x00" + user + "\x00" + password} {
		forms = append(forms, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s)))
	}
	return forms
}

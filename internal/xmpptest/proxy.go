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
// every byte that crosses it, both ways, so a test can search the wire.
type RecordingProxy struct {
	Addr string
	mu   sync.Mutex
	up   []byte // client → server
	down []byte // server → client
}

// NewRecordingProxy listens on a random loopback port; it stops with the test.
func NewRecordingProxy(t testing.TB, upstream string) *RecordingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &RecordingProxy{Addr: l.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = c.Close()
				continue
			}
			conns.Store(c, u)
			wg.Add(2)
			go func() { defer wg.Done(); p.pump(u, c, &p.up); _ = u.Close() }()
			go func() { defer wg.Done(); p.pump(c, u, &p.down); _ = c.Close() }()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		conns.Range(func(k, v any) bool { _ = k.(net.Conn).Close(); _ = v.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return p
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

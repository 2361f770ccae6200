package xmppconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"time"
	"unsafe"

	xmpp "github.com/xmppo/go-xmpp"

	"github.com/parley-go/parley-xmpp/internal/vocab"
)

// Errors of the login.

// LoginGate lets one login at a time through: a runtime shares one among all its
// dials, so an abandoned login is over before the next one starts.
type LoginGate struct{ ch chan struct{} }

// NewLoginGate returns an open gate.
func NewLoginGate() *LoginGate { return &LoginGate{ch: make(chan struct{}, 1)} }

func (g *LoginGate) enter(ctx context.Context) error {
	if g == nil {
		return nil
	}
	select {
	case g.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *LoginGate) leave() {
	if g != nil {
		<-g.ch
	}
}

// clientInit is go-xmpp's login on a connection it is handed (stream, STARTTLS
// when not yet encrypted, SASL, bind). go-xmpp only exports it behind its own
// dialer, which takes no context and sets no deadline. go-xmpp v0.3.7 is
// pinned: a release without this method fails the build at link time, and the
// logins against real servers (tls_test.go, and every live test) exercise it.
//
//go:linkname clientInit github.com/xmppo/go-xmpp.(*Client).init
func clientInit(c *xmpp.Client, o *xmpp.Options) error

// setConn hands go-xmpp the connection it logs in on (its unexported field; the
// type is checked, so a changed layout is an error, not memory corruption).
func setConn(c *xmpp.Client, nc net.Conn) bool {
	f := reflect.ValueOf(c).Elem().FieldByName("conn")
	if !f.IsValid() || f.Type() != reflect.TypeFor[net.Conn]() {
		return false
	}
	*(*net.Conn)(unsafe.Pointer(f.UnsafeAddr())) = nc
	return true
}

// setShutdown sets go-xmpp's shutdown flag, which its reader checks before
// each element it reads: its login, stopped this way right after sending the
// stream header that follows a SASL success, returns io.EOF before it binds
// (resume.go). The field's type is checked like conn's.
func setShutdown(c *xmpp.Client) bool {
	f := reflect.ValueOf(c).Elem().FieldByName("shutdown")
	if !f.IsValid() || f.Kind() != reflect.Bool {
		return false
	}
	*(*bool)(unsafe.Pointer(f.UnsafeAddr())) = true
	return true
}

// loginDecoder is go-xmpp's decoder of the stream, where its login left it:
// the reader goes on with it, so nothing it has buffered is lost.
func loginDecoder(c *xmpp.Client) (*xml.Decoder, bool) {
	f := reflect.ValueOf(c).Elem().FieldByName("p")
	if !f.IsValid() || f.Type() != reflect.TypeFor[*xml.Decoder]() {
		return nil, false
	}
	d := *(**xml.Decoder)(unsafe.Pointer(f.UnsafeAddr()))
	return d, d != nil
}

// maxNegotiationBytes caps what the server may send before TLS: its stream
// header and features (and the answer to STARTTLS). A real server sends a
// few hundred bytes.
const maxNegotiationBytes = 64 << 10

// cappedReader fails a read past its budget.
type cappedReader struct {
	r    io.Reader
	left int
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, vocab.ErrNegotiationTooLarge
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= n
	return n, err
}

// login dials o.Addr and logs in, within ctx and DialTimeout. w is the stream's
// connection (TLS, or plain), raw the TCP connection under any TLS; in is
// go-xmpp's debug tee, which bounds what it reads.
//
// go-xmpp binds SCRAM-*-PLUS to TLS 1.3 with tls-exporter whenever the server
// lists no channel-binding types (XEP-0440); ejabberd 23.01 lists none and
// knows only tls-unique, so it refuses the binding. A login refused for its
// channel binding is tried once more over TLS 1.2, where go-xmpp binds with
// tls-unique: the binding is kept, not dropped.
func login(ctx context.Context, o Options, in *inboundLimit) (c *xmpp.Client, w, raw net.Conn, err error) {
	if o.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.DialTimeout)
		defer cancel()
	}
	c, w, raw, err = attempt(ctx, o, in, 0)
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "channel binding") && ctx.Err() == nil {
		c, w, raw, err = attempt(ctx, o, in, tls.VersionTLS12)
	}
	return c, w, raw, err
}

// attempt is one login. Every step is bounded by ctx: the socket's deadline is
// ctx's, and ctx ending sets it in the past, which fails whatever read or write
// the login is blocked in. The socket is closed on any failure. maxTLS, when
// set, caps the TLS version.
func attempt(ctx context.Context, o Options, in *inboundLimit, maxTLS uint16) (c *xmpp.Client, w, raw net.Conn, err error) {
	var d net.Dialer
	tcp, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = tcp.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = tcp.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() && err == nil { // ctx ended as the login finished
			err = ctx.Err()
		}
		if err != nil {
			switch {
			case ctx.Err() != nil:
				err = fmt.Errorf("%w (%v)", ctx.Err(), err)
			case errors.Is(err, os.ErrDeadlineExceeded): // the socket's deadline is ctx's
				err = fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
			}
			_ = tcp.Close()
			c, w, raw = nil, nil, nil
			return
		}
		_ = tcp.SetDeadline(time.Time{})
	}()

	domain := o.User[strings.LastIndexByte(o.User, '@')+1:]
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = domain // the certificate names the XMPP domain, not the address
	}
	if maxTLS != 0 && (cfg.MaxVersion == 0 || cfg.MaxVersion > maxTLS) {
		cfg.MaxVersion = maxTLS
	}
	xo := xmpp.Options{
		Host:            o.Addr,
		User:            o.User,
		Password:        o.Password,
		Resource:        o.Resource,
		NoTLS:           true,
		TLSConfig:       cfg,
		SoftwareName:    "parley-xmpp",
		SoftwareVersion: "dev",
		// The debug tee is the only way into go-xmpp's decoder: it bounds
		// what one stanza may read (inboundLimit).
		Debug:       true,
		DebugWriter: in,
	}
	var nc net.Conn
	if o.DirectTLS {
		if nc, err = handshake(ctx, tcp, cfg); err != nil {
			return nil, nil, nil, err
		}
	} else if nc, err = negotiate(ctx, tcp, domain, cfg, o.RequireTLS); err != nil {
		return nil, nil, nil, err
	}
	if _, encrypted := nc.(*tls.Conn); !encrypted {
		if !o.AllowPlaintext { // negotiate allows this only when the caller does
			return nil, nil, nil, vocab.ErrTLSRequired
		}
		xo.InsecureAllowUnencryptedAuth = true
	}
	c = new(xmpp.Client)
	if !setConn(c, nc) {
		return nil, nil, nil, errors.New("xmppconn: go-xmpp's client layout changed: can't hand it a connection (pin go-xmpp v0.3.7)")
	}
	c.Options = &xo
	in.startLogin(c)
	if err = clientInit(c, &xo); err != nil {
		if in.authStopped && errors.Is(err, io.EOF) {
			// Authenticated, stopped before the bind (resume.go): the
			// stream's new header is sent, the server's is unread.
			return c, nc, tcp, nil
		}
		return nil, nil, nil, err
	}
	if in.stopAuth && !in.authStopped {
		// A login that never restarted its stream (SASL2 with an inline
		// bind) bound a fresh session: there is nothing to resume.
		return nil, nil, nil, errBoundFresh
	}
	return c, nc, tcp, nil
}

func handshake(ctx context.Context, raw net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("%w with %s (certificate checked for %q): %v (a private CA: trust it with tls.ca_file, or TLSConfig.RootCAs)", vocab.ErrTLS, raw.RemoteAddr(), cfg.ServerName, err)
	}
	return tc, nil
}

const nsTLS = "urn:ietf:params:xml:ns:xmpp-tls"

// negotiate opens the stream and reads the server's features. STARTTLS is used
// whenever the server offers it (go-xmpp skips an offered STARTTLS when plain
// text is permitted); without it, the stream stays plain only when !insist.
// The plain stream is then handed to go-xmpp as if untouched: what the server
// sent is replayed to it, and its own stream header, already sent, is dropped.
func negotiate(ctx context.Context, raw net.Conn, domain string, cfg *tls.Config, insist bool) (net.Conn, error) {
	header := fmt.Sprintf("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>\n", xmlEscape(domain))
	if _, err := io.WriteString(raw, header); err != nil {
		return nil, err
	}
	rec := &recorder{r: &cappedReader{r: raw, left: maxNegotiationBytes}}
	br := bufio.NewReader(rec)
	dec := xml.NewDecoder(br)
	var f struct {
		StartTLS *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	}
	if err := readFeatures(dec, &f); err != nil {
		return nil, err
	}
	if f.StartTLS == nil {
		if insist {
			return nil, fmt.Errorf("%w (%s)", vocab.ErrTLSRequired, raw.RemoteAddr())
		}
		return &replayConn{Conn: raw, pending: rec.buf, dropWrite: true}, nil
	}
	if _, err := io.WriteString(raw, "<starttls xmlns='"+nsTLS+"'/>"); err != nil {
		return nil, err
	}
	var answer xml.StartElement
	for {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("xmppconn: reading the answer to STARTTLS: %w", err)
		}
		if se, ok := t.(xml.StartElement); ok {
			answer = se
			break
		}
	}
	if answer.Name.Space != nsTLS || answer.Name.Local != "proceed" {
		return nil, fmt.Errorf("%w: the server answered STARTTLS with <%s>", vocab.ErrTLS, answer.Name.Local)
	}
	if err := dec.Skip(); err != nil {
		return nil, err
	}
	if br.Buffered() > 0 {
		return nil, fmt.Errorf("%w: the server sent data in the clear after <proceed/>", vocab.ErrTLS)
	}
	return handshake(ctx, raw, cfg)
}

// readFeatures reads the server's stream header and its <stream:features>.
func readFeatures(dec *xml.Decoder, f any) error {
	const nsStream = "http://etherx.jabber.org/streams"
	opened := false
	for {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("xmppconn: reading the stream's features: %w", err)
		}
		se, ok := t.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case !opened && se.Name.Space == nsStream && se.Name.Local == "stream":
			opened = true
		case opened && se.Name.Space == nsStream && se.Name.Local == "features":
			return dec.DecodeElement(f, &se)
		case opened && se.Name.Space == nsStream && se.Name.Local == "error":
			var e struct {
				Inner []struct {
					XMLName xml.Name
				} `xml:",any"`
			}
			_ = dec.DecodeElement(&e, &se)
			cond := "undefined-condition"
			if len(e.Inner) > 0 {
				cond = e.Inner[0].XMLName.Local
			}
			return fmt.Errorf("xmppconn: stream error: %s", cond)
		default:
			return fmt.Errorf("xmppconn: expected the stream's features, got <%s>", se.Name.Local)
		}
	}
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// recorder keeps every byte read through it.
type recorder struct {
	r   io.Reader
	buf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

// replayConn gives go-xmpp a stream that looks unread: its reads return first
// what negotiate already read, and its first write (its stream header, which
// negotiate already sent) is dropped.
type replayConn struct {
	net.Conn
	pending   []byte
	dropWrite bool
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *replayConn) Write(p []byte) (int, error) {
	if c.dropWrite {
		c.dropWrite = false
		if strings.Contains(string(p), "<stream:stream") {
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

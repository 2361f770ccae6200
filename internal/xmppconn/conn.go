// Package xmppconn is the one place the product (runtime, actors, serve, config,
// the command) touches github.com/xmppo/go-xmpp; only test and benchmark
// tooling (internal/rawclient, bench's bare client) imports go-xmpp besides,
// and a test (runtime's TestOnlyXmppconnImportsGoXMPP) holds that. It dials and logs in, runs the single reader goroutine and the single writer
// goroutine of a connection, and converts what go-xmpp returns into package
// stanza's types, so the rest of the runtime never sees the library.
//
// The library's gaps handled here:
//   - go-xmpp has no context, deadlines or way to abort a read, and its Close can
//     hang for 10 s after a stream broken mid-stanza (and races with Recv). The
//     adapter dials the net.Conn itself (login.go) and closes that instead;
//     go-xmpp's Close is never called.
//   - Writes are unsynchronised single Write calls: all of ours go through one
//     writer goroutine fed by a bounded queue, so a slow or blackholed link never
//     blocks the session actor, and every write has a deadline.
//   - Recv reports an unknown top-level element as an error that is not fatal; the
//     reader skips those and treats every other error as the end of the link.
//   - go-xmpp dials by itself, with no context, no deadline on the login, and no
//     way to hand it a connection; a login against a server that accepts and
//     never answers blocks for ever. Dial dials the socket itself (ctx, deadline)
//     and runs go-xmpp's login on it through a go:linkname to its unexported
//     (*Client).init (login.go; go-xmpp v0.3.7 is pinned).
//   - go-xmpp cannot say "STARTTLS when offered, else plain text": permitted plain
//     text, it skips an offered STARTTLS, and asked for STARTTLS it fails on a
//     server without it. Dial reads the stream features itself, does STARTTLS
//     whenever offered (or fails before any <auth> when TLS is required and not
//     offered) and replays the untouched plain stream to go-xmpp otherwise.
//   - go-xmpp checks a direct-TLS certificate against the address it dialed, not
//     the XMPP domain; Dial's handshakes check the domain (or TLSConfig.ServerName).
//   - go-xmpp binds SCRAM-*-PLUS on TLS 1.3 with tls-exporter when the server
//     lists no channel-binding types; ejabberd 23.01 refuses that. A login
//     refused for its channel binding is retried once over TLS 1.2 (tls-unique).
//   - Sizes. go-xmpp reads the server's XEP-0478 <max-bytes> (Client.LimitMaxBytes)
//     but SendOrg then fails a larger stanza as a write error; the adapter checks
//     every stanza against that limit and Options.MaxStanzaBytes in Send, so an
//     oversized stanza is refused without touching the link, and the writer
//     writes the stanza's bytes as they are (no SendOrg). go-xmpp has no limit
//     on what it reads and no hook into its decoder other than its debug tee:
//     the adapter turns Options.Debug on with a writer of its own that counts
//     the bytes read since the last stanza (it ignores what it sees sent, which
//     includes the login) and fails the read past Options.MaxInboundBytes.
package xmppconn

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	xmpp "github.com/xmppo/go-xmpp"

	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/observe"
)

// Options configure a connection.
type Options struct {
	// Logins, shared by a runtime's dials, lets one login at a time run (nil: no limit).
	Logins *LoginGate

	Addr     string // host:port
	User     string // bare JID to log in as
	Password string
	Resource string
	// DirectTLS: TLS from the first byte (xmpps://). Otherwise the stream starts in
	// the clear and STARTTLS is used whenever the server offers it; RequireTLS
	// makes a server that doesn't offer it an error (ErrTLSRequired).
	DirectTLS  bool
	RequireTLS bool
	// AllowPlaintext permits password authentication on a stream whose server
	// offers no STARTTLS. Without it such a server is ErrTLSRequired.
	// TLSConfig is for TLS and STARTTLS; nil: the system's roots. An empty
	// ServerName is the domain of User: the certificate must name the XMPP
	// domain. DialTimeout bounds the TCP connect and the login (as does Dial's ctx).
	AllowPlaintext bool
	TLSConfig      *tls.Config
	DialTimeout    time.Duration
	WriteTimeout   time.Duration // per write, extended while the server still sends (Conn.write); 0: 10 s
	SendQueue      int           // stanzas queued for the writer; 0: 4096
	// MaxStanzaBytes caps one stanza we send; the server's advertised XEP-0478
	// limit, when lower, wins. 0: DefaultMaxStanzaBytes.
	MaxStanzaBytes int
	// MaxInboundBytes caps one stanza the server sends; a larger one ends the
	// link with ErrInboundTooLarge. 0: DefaultMaxInboundBytes.
	MaxInboundBytes int
}

// Size defaults. Prosody's default c2s stanza limit and ejabberd's usual
// max_stanza_size are 256 KiB; the outbound default stays below that, with room
// for a server that counts a little more than the bytes we write.
const (
	DefaultMaxStanzaBytes  = defaults.MaxStanzaBytes
	DefaultMaxInboundBytes = defaults.MaxInboundStanzaBytes
)

// Errors the adapter reports.
var (
	// ErrClosed: the connection was closed (by Close or Abort, or after a failure).
	ErrClosed = errors.New("xmppconn: connection closed")
	// ErrSendQueueFull: the writer is this far behind; the stanza was not queued
	// and the link is untouched: try again when the writer has caught up.
	ErrSendQueueFull = errors.New("xmppconn: send queue full")
	// ErrStanzaTooLarge: the stanza is over the link's limit (MaxStanza); it was
	// not sent, and the link is untouched.
	ErrStanzaTooLarge = errors.New("xmppconn: stanza too large")
	// ErrReaderPanicked: reading a stanza panicked (a bug); the link was
	// closed, and the process goes on.
	ErrReaderPanicked = errors.New("xmppconn: reading a stanza panicked")
	// ErrInboundTooLarge: the server sent a stanza over MaxInboundBytes; the link
	// was closed.
	ErrInboundTooLarge = errors.New("xmppconn: the server sent a stanza over the inbound limit")
)

// Handler receives what a connection reads, on the reader goroutine. Stanza gets
// a stanza.Message, stanza.Presence or stanza.IQ (requests the connection
// answers itself, ping, version and plain disco#info, don't reach it).
// Skipped (nil: not told) hears of every element read and passed over, by
// kind (observe.SkipUnknown, SkipOversized or SkipReplyDropped). Closed is
// called once, last, with the reason the connection ended.
type Handler struct {
	Stanza  func(any)
	Skipped func(kind string)
	Closed  func(error)
}

// Conn is a logged-in XMPP client stream.
type Conn struct {
	client *xmpp.Client
	dec    *xml.Decoder // go-xmpp's decoder, positioned after the login
	raw    net.Conn     // the TCP connection under any TLS
	w      net.Conn     // what stanzas are written to (raw, or the TLS connection)
	jid    string
	wto    time.Duration
	limit  int // outbound stanza limit
	in     *inboundLimit

	out chan outStanza
	// writing is when the write in progress began (unix ns; 0: none); keeper
	// extends its deadline while the server still sends.
	writing   atomic.Int64
	keeper    *time.Timer
	stop      chan struct{} // closed to stop the writer
	stopOnce  sync.Once
	readerEnd chan struct{}
	writerEnd chan struct{}
	startOnce sync.Once
	closeErr  error
	errOnce   sync.Once
}

// Dial connects and logs in. It returns when logged in, or as soon as ctx ends
// (or DialTimeout passes): the login's socket has ctx's deadline, and ctx
// ending fails its pending read or write, so an abandoned login leaves neither
// a goroutine nor a socket behind. Dials sharing o.Logins run one at a time.
func Dial(ctx context.Context, o Options) (*Conn, error) {
	if err := o.Logins.enter(ctx); err != nil {
		return nil, err
	}
	defer o.Logins.leave()
	in := newInboundLimit(o.MaxInboundBytes)
	client, w, raw, err := login(ctx, o, in)
	if err != nil {
		return nil, fmt.Errorf("xmppconn: login as %s at %s: %w", o.User, o.Addr, scrub(err, o.Password))
	}
	dec, ok := loginDecoder(client)
	if !ok {
		_ = raw.Close()
		return nil, errors.New("xmppconn: go-xmpp's client layout changed: can't take its decoder (pin go-xmpp v0.3.7)")
	}
	in.loggedIn()
	wto := o.WriteTimeout
	if wto <= 0 {
		wto = 10 * time.Second
	}
	q := o.SendQueue
	if q <= 0 {
		q = 4096
	}
	limit := o.MaxStanzaBytes
	if limit <= 0 {
		limit = DefaultMaxStanzaBytes
	}
	if adv := client.LimitMaxBytes; adv > 0 && adv < limit {
		limit = adv
	}
	return &Conn{
		client:    client,
		dec:       dec,
		raw:       raw,
		w:         w,
		jid:       client.JID(),
		wto:       wto,
		limit:     limit,
		in:        in,
		out:       make(chan outStanza, q),
		stop:      make(chan struct{}),
		readerEnd: make(chan struct{}),
		writerEnd: make(chan struct{}),
	}, nil
}

// scrub keeps a password out of an error that might quote it.
func scrub(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "<password>"))
}

// JID is the full JID the server bound.
func (c *Conn) JID() string { return c.jid }

// Start runs the reader and writer goroutines. h is called from the reader.
func (c *Conn) Start(h Handler) {
	c.startOnce.Do(func() {
		go c.readLoop(h)
		go c.writeLoop()
	})
}

// MaxStanza is the largest stanza Send accepts, in bytes: Options.MaxStanzaBytes,
// or the server's advertised XEP-0478 limit when that is lower.
func (c *Conn) MaxStanza() int { return c.limit }

// Send queues a stanza for the writer without blocking. A stanza over MaxStanza
// gets ErrStanzaTooLarge and a full queue ErrSendQueueFull: in both cases nothing
// was queued and the link is untouched.
func (c *Conn) Send(stanza []byte) error { return c.SendFenced(stanza, nil) }

// SendFenced is Send for a stanza that the writer writes only if fence answers
// nil immediately before the write (nil: always). A stanza fence refuses is
// dropped, unwritten: the caller checked the fence when it queued it and
// learns nothing more (a refused post is then not reflected). fence must be
// quick and must not block: it runs on the writer. What is left between the
// check and the write system call is a few instructions: a process paused
// (SIGSTOP) exactly there writes the stanza when it runs again.
func (c *Conn) SendFenced(stanza []byte, fence func() error) error {
	select {
	case <-c.stop:
		return ErrClosed
	default:
	}
	if len(stanza) > c.limit {
		return fmt.Errorf("%w: %d bytes, over the link's %d-byte limit", ErrStanzaTooLarge, len(stanza), c.limit)
	}
	select {
	case c.out <- outStanza{b: stanza, fence: fence}:
		return nil
	default:
		return ErrSendQueueFull
	}
}

// outStanza is a stanza queued for the writer, with its fence (nil: none).
type outStanza struct {
	b     []byte
	fence func() error
}

func (c *Conn) writeLoop() {
	defer close(c.writerEnd)
	c.keeper = time.AfterFunc(time.Hour, c.keepWriting)
	c.keeper.Stop()
	defer c.keeper.Stop()
	for {
		select {
		case <-c.stop:
			return
		case o := <-c.out:
			if o.fence != nil && o.fence() != nil {
				continue // its fence ended while it was queued: never written
			}
			if err := c.write(o.b); err != nil {
				c.fail(fmt.Errorf("xmppconn: write: %w", err))
				return
			}
		}
	}
}

// write writes one stanza within WriteTimeout. A server that doesn't read what
// we send is dead, or only busy: while it still sends (anything came in within
// the last WriteTimeout) the deadline moves on, up to maxWriteStretch ×
// WriteTimeout in all, so a CPU-starved server that is working through its
// backlog doesn't lose its link; one that is silent both ways fails the write
// in WriteTimeout.
//
// The deadline is cleared once the write is done: no stale deadline is left
// on the socket for a later write (they all come through here anyway).
func (c *Conn) write(b []byte) error {
	now := time.Now()
	c.writing.Store(now.UnixNano())
	_ = c.raw.SetWriteDeadline(now.Add(c.wto))
	c.keeper.Reset(c.wto / 2)
	_, err := c.w.Write(b)
	c.writing.Store(0)
	c.keeper.Stop()
	if err == nil {
		_ = c.raw.SetWriteDeadline(time.Time{})
	}
	return err
}

// maxWriteStretch bounds a write's extensions, in WriteTimeouts.
const maxWriteStretch = 6

// keepWriting runs while a write is in progress (every half WriteTimeout).
func (c *Conn) keepWriting() {
	began := c.writing.Load()
	if began == 0 {
		return
	}
	now := time.Now()
	if now.Sub(time.Unix(0, c.in.heard.Load())) < c.wto && now.Sub(time.Unix(0, began)) < maxWriteStretch*c.wto {
		_ = c.raw.SetWriteDeadline(now.Add(c.wto))
	}
	c.keeper.Reset(c.wto / 2)
}

// readLoop reads the stream after the login, one top-level element at a time,
// with package stanza's parser. Only the stream itself ends the link: a
// decoder or transport error, a stream error, the server's </stream:stream>,
// or a stanza over the inbound byte cap. Every other element is handed on,
// answered (answer), or counted and skipped.
func (c *Conn) readLoop(h Handler) {
	defer close(c.readerEnd)
	for {
		v, skip, err := c.readOne()
		switch {
		case err != nil:
			c.fail(err)
			h.Closed(c.reason())
			return
		case v != nil:
			h.Stanza(v)
		case skip != "" && h.Skipped != nil:
			h.Skipped(skip)
		}
	}
}

// readOne reads the next top-level element of the stream: a stanza for the
// handler (v), or the kind of an element passed over (skip: observe.Skip*),
// or neither (whitespace, a request answered here), or the error that ends
// the link.
func (c *Conn) readOne() (v any, skip string, err error) {
	defer func() {
		// A bug in reading one stanza ends this link (the runtime
		// reconnects), never the process: the reader runs for every
		// stranger's stanza.
		if r := recover(); r != nil {
			v, skip, err = nil, "", fmt.Errorf("%w: %v", ErrReaderPanicked, r)
		}
	}()
	c.in.n.Store(0) // the cap counts each stanza's bytes from here
	tok, err := c.dec.Token()
	if err != nil {
		return nil, "", c.readError(err)
	}
	switch t := tok.(type) {
	case xml.EndElement: // </stream:stream>
		return nil, "", errors.New("server closed stream")
	case xml.StartElement:
		e, err := stanza.ReadElement(c.dec, t)
		switch {
		case errors.Is(err, stanza.ErrTooDeep) || errors.Is(err, stanza.ErrTooManyElements):
			return nil, observe.SkipOversized, nil
		case err != nil:
			return nil, "", c.readError(err)
		case e.Is(nsStream, "error"):
			return nil, "", streamError(e)
		}
		v, _ := stanza.Parse(e)
		switch v := v.(type) {
		case stanza.Message:
			v.Received = time.Now()
			return v, "", nil
		case nil:
			return nil, observe.SkipUnknown, nil
		case stanza.IQ:
			if answered, queued := c.answer(v); answered {
				if !queued {
					return nil, observe.SkipReplyDropped, nil
				}
				return nil, "", nil
			}
		}
		return v, "", nil
	}
	return nil, "", nil
}

// readError names why a read failed: the inbound cap, or the stream's error.
func (c *Conn) readError(err error) error {
	if c.in.tripped.Load() {
		return fmt.Errorf("%w (%d bytes): %v", ErrInboundTooLarge, c.in.max.Load(), err)
	}
	return err
}

const nsStream = "http://etherx.jabber.org/streams"

// streamError reads a <stream:error/>: "stream error: CONDITION[: TEXT]", the
// form EndedByServer knows.
func streamError(e *stanza.Element) error {
	const nsStreams = "urn:ietf:params:xml:ns:xmpp-streams"
	cond, text := "undefined-condition", ""
	found := false
	for _, c := range e.Children {
		if c.Name.Space != nsStreams {
			continue
		}
		if c.Name.Local == "text" {
			text = c.Text
		} else if !found {
			cond, found = c.Name.Local, true
		}
	}
	if text != "" {
		return fmt.Errorf("stream error: %s: %s", cond, text)
	}
	return fmt.Errorf("stream error: %s", cond)
}

// answer answers the requests every XMPP client must (XEP-0199 ping,
// XEP-0092 version, XEP-0030 disco#info without a node) through the writer,
// like every other write. answered: the request was one of those; queued:
// its answer was queued (false when the send queue is full: the request goes
// unanswered rather than the link down). Other requests go to the handler.
func (c *Conn) answer(iq stanza.IQ) (answered, queued bool) {
	if iq.Type != "get" {
		return false, false
	}
	var reply []byte
	switch {
	case iq.PayloadName.Space == stanza.NSPing && iq.PayloadName.Local == "ping":
		reply = stanza.ResultIQ(iq.From, iq.ID)
	case iq.PayloadName.Space == stanza.NSVersion && iq.PayloadName.Local == "query":
		reply = stanza.VersionResultIQ(iq.From, iq.ID, "parley-xmpp", version())
	case iq.PayloadName.Space == stanza.NSDiscoInfo && iq.PayloadName.Local == "query" && !hasNode(iq.Payload):
		reply = stanza.DiscoInfoResultIQ(iq.From, iq.ID, stanza.NSDiscoInfo, stanza.NSPing, stanza.NSVersion)
	default:
		return false, false
	}
	return true, c.Send(reply) == nil
}

// hasNode: a disco#info request for a node (the rooms' nick probe asks one);
// those are the runtime's business.
func hasNode(payload []byte) bool {
	e, err := stanza.ParseElement(payload)
	return err != nil || e.Attribute("node") != ""
}

// inboundLimit is go-xmpp's debug writer: it sees every chunk go-xmpp's decoder
// reads (prefixed "RECV ") and every write go-xmpp makes itself ("SEND ", the
// login among them, which it discards without looking further), and fails the
// read that takes the current stanza past max. The reader resets n before each
// top-level element; the decoder reads ahead in chunks of 4 KiB, so the count
// is that exact.
//
// During the login the whole exchange after the stream's features (TLS,
// SASL, bind) counts against loginBudget; loggedIn then sets the cap to
// stanzaMax, counted per stanza.
type inboundLimit struct {
	n         atomic.Int64
	max       atomic.Int64
	stanzaMax int64
	tripped   atomic.Bool
	heard     atomic.Int64 // when the server last sent anything (unix ns)
}

// loginBudget bounds what the server may send during a login, after the
// features negotiate read (capped on its own: maxNegotiationBytes).
const loginBudget = 256 << 10

func newInboundLimit(stanzaMax int) *inboundLimit {
	l := &inboundLimit{stanzaMax: int64(stanzaMax)}
	if l.stanzaMax <= 0 {
		l.stanzaMax = DefaultMaxInboundBytes
	}
	l.max.Store(min(loginBudget, l.stanzaMax))
	return l
}

func (l *inboundLimit) loggedIn() {
	l.max.Store(l.stanzaMax)
	l.n.Store(0)
}

func (l *inboundLimit) Write(p []byte) (int, error) {
	if !bytes.HasPrefix(p, []byte("RECV ")) {
		return len(p), nil
	}
	l.heard.Store(time.Now().UnixNano())
	if l.n.Add(int64(len(p)-len("RECV "))) > l.max.Load() {
		l.tripped.Store(true)
		return 0, ErrInboundTooLarge
	}
	return len(p), nil
}

// EndedByServer: the link ended because the server ended the stream (a stream
// error, or </stream:stream>), as a server does on a stanza it won't take, or
// reset the connection (a server that closes its socket before reading all we
// sent resets it, and the reset can overtake its stream error); not for a
// connection that just ended, and not when the server says it is shutting down.
func EndedByServer(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "stream error") && !strings.HasPrefix(msg, "server closed stream") {
		return false
	}
	return !strings.Contains(strings.ToLower(msg), "shut")
}

// fail records the first reason the connection ends and tears the link down so
// both goroutines finish.
//
// The kernel drops whatever it still holds unsent (linger 0: a reset, not a
// FIN after the queue): closed gracefully, it would go on retransmitting it,
// and a path that heals after the link was given up would deliver a stanza
// late. A cluster node cut off from the server had a relay post queued when
// it gave its topics up; the next owner found it missing from the archive and
// posted it, then the healed path delivered the old one too.
func (c *Conn) fail(err error) {
	c.errOnce.Do(func() { c.closeErr = err })
	c.stopOnce.Do(func() { close(c.stop) })
	if tc, ok := c.raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.raw.Close()
}

func (c *Conn) reason() error {
	c.errOnce.Do(func() { c.closeErr = ErrClosed })
	return c.closeErr
}

// Abort drops the link at once. It doesn't block.
func (c *Conn) Abort() { c.fail(ErrClosed) }

// Close ends the stream politely: it sends </stream:stream>, gives the server
// until grace to close its side, then drops the link; it returns when both
// goroutines have finished. It blocks: never call it from an actor's Receive.
func (c *Conn) Close(grace time.Duration) {
	if c.Send(StreamEndBytes) == nil {
		select {
		case <-c.readerEnd:
		case <-time.After(grace):
		}
	}
	c.fail(ErrClosed)
	c.Wait()
}

// Wait returns when the reader and writer have finished (after a failure, Abort
// or Close). Before Start it returns at once.
func (c *Conn) Wait() {
	started := true
	c.startOnce.Do(func() {
		started = false
		close(c.readerEnd)
		close(c.writerEnd)
	})
	if started {
		<-c.readerEnd
		<-c.writerEnd
	}
}

// StreamEndBytes closes the XML stream.
var StreamEndBytes = []byte("</stream:stream>")

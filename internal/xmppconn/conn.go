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
	"github.com/parley-go/parley-xmpp/internal/vocab"
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
	// DisableStreamManagement: never <enable/> XEP-0198 stream management,
	// even when the server offers it (sm.go). Otherwise it is enabled, with
	// resumption, whenever offered.
	DisableStreamManagement bool
	// SMQueue bounds the unacknowledged stanzas kept for a resumption (0:
	// DefaultSMQueue); ResumeWithin bounds how long a lost link tries to
	// resume (0: DefaultResumeWithin; the server's resumption timeout, when
	// shorter, wins).
	SMQueue      int
	ResumeWithin time.Duration
}

// OptionsFor is the Options of a login planned as p (the runtime's and
// doctor's one way from a DialPlan to a login); Logins is left to the caller.
func OptionsFor(p vocab.DialPlan) Options {
	return Options{
		Addr: p.Addr, User: p.User, Password: p.Password, Resource: p.Resource,
		DirectTLS: p.DirectTLS, RequireTLS: p.RequireTLS, AllowPlaintext: p.AllowPlaintext, TLSConfig: p.TLSConfig,
		DialTimeout: p.DialTimeout, MaxStanzaBytes: p.MaxStanzaBytes, MaxInboundBytes: p.MaxInboundBytes,
		DisableStreamManagement: p.DisableStreamManagement,
	}
}

// Size defaults. Prosody's default c2s stanza limit and ejabberd's usual
// max_stanza_size are 256 KiB; the outbound default stays below that, with room
// for a server that counts a little more than the bytes we write.
const (
	DefaultMaxStanzaBytes  = defaults.MaxStanzaBytes
	DefaultMaxInboundBytes = defaults.MaxInboundStanzaBytes
)

// Handler receives what a connection reads, on the reader goroutine. Stanza gets
// a stanza.Message, stanza.Presence or stanza.IQ (requests the connection
// answers itself, ping, version and plain disco#info, don't reach it).
// Skipped (nil: not told) hears of every element read and passed over, by
// kind (observe.SkipUnknown, SkipOversized or SkipReplyDropped). Closed is
// called once, last, with the reason the connection ended.
//
// With stream management (sm.go): Suspended (nil: not told) hears that the
// link was lost and the Conn is resuming (the error that lost it); Resumed
// that it resumed (the same session: nothing was lost); a resumption that
// fails ends in Closed. Unacked hears the number of stanzas the server has not
// acknowledged yet whenever it changes (from the reader or the writer).
type Handler struct {
	Stanza    func(any)
	Skipped   func(kind string)
	Closed    func(error)
	Suspended func(error)
	Resumed   func()
	Unacked   func(n int)
}

// Conn is a logged-in XMPP client stream.
type Conn struct {
	opts  Options
	t     atomic.Pointer[transport] // the link now (a resumption replaces it)
	jid   string
	wto   time.Duration
	limit int // outbound stanza limit
	sm    streamMgmt

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

// transport is one TCP link of a Conn, logged in.
type transport struct {
	client  *xmpp.Client
	dec     *xml.Decoder // go-xmpp's decoder, positioned after the login
	raw     net.Conn     // the TCP connection under any TLS
	w       net.Conn     // what stanzas are written to (raw, or the TLS connection)
	in      *inboundLimit
	lossErr atomic.Pointer[error] // the failed write that lost it, if one did
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
	c := &Conn{
		opts:      o,
		jid:       client.JID(),
		wto:       wto,
		limit:     limit,
		out:       make(chan outStanza, q),
		stop:      make(chan struct{}),
		readerEnd: make(chan struct{}),
		writerEnd: make(chan struct{}),
	}
	c.sm.init(o)
	c.t.Store(&transport{client: client, dec: dec, raw: raw, w: w, in: in})
	if offersSM(in.rec) {
		c.sm.offered = true
		if !o.DisableStreamManagement {
			// Before anything else is written: every stanza from here counts.
			if err := writeDirect(c.t.Load(), enableBytes, wto); err != nil {
				_ = raw.Close()
				return nil, fmt.Errorf("xmppconn: enabling stream management: %w", err)
			}
			c.sm.counting = true
		}
	}
	in.loggedIn()
	return c, nil
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
		c.sm.unackedN = h.Unacked
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
		return vocab.ErrConnClosed
	default:
	}
	if len(stanza) > c.limit {
		return fmt.Errorf("%w: %d bytes, over the link's %d-byte limit", vocab.ErrStanzaTooLarge, len(stanza), c.limit)
	}
	select {
	case c.out <- outStanza{b: stanza, fence: fence}:
		return nil
	default:
		return vocab.ErrSendQueueFull
	}
}

// sendNonza queues what is not a stanza (stream management doesn't count it).
func (c *Conn) sendNonza(b []byte) error {
	select {
	case <-c.stop:
		return vocab.ErrConnClosed
	case c.out <- outStanza{b: b, nonza: true}:
		return nil
	default:
		return vocab.ErrSendQueueFull
	}
}

// outStanza is a stanza queued for the writer, with its fence (nil: none).
// nonza: not a stanza (the stream's end): stream management doesn't count it.
type outStanza struct {
	b     []byte
	fence func() error
	nonza bool
}

func (c *Conn) writeLoop() {
	defer close(c.writerEnd)
	c.keeper = time.AfterFunc(time.Hour, c.keepWriting)
	c.keeper.Stop()
	defer c.keeper.Stop()
	tick := time.NewTicker(ackInterval)
	defer tick.Stop()
	for {
		var b []byte
		ask := false
		select {
		case <-c.stop:
			return
		case <-c.sm.ackWanted:
			b = ackBytes(c.sm.inH.Load())
		case <-tick.C:
			if !c.periodicRequest() {
				continue
			}
			b = requestBytes
		case o := <-c.out:
			t := c.ready() // waits while a lost link resumes
			if t == nil {
				return
			}
			if o.fence != nil && o.fence() != nil {
				continue // its fence ended while it was queued: never written
			}
			out := o.b
			if !o.nonza {
				ask = c.track(o.b, o.fence)
			} else if c.smEnabled() {
				// The stream's end: acknowledge what was handled first, or
				// the server treats it as undelivered (Prosody stores chat
				// messages offline and answers the rest with errors).
				out = append(ackBytes(c.sm.inH.Load()), out...)
			}
			if !c.writeOn(t, out) {
				return
			}
			if !ask {
				continue
			}
			b = requestBytes
		}
		t := c.ready()
		if t == nil || !c.writeOn(t, b) {
			return
		}
	}
}

// writeOn writes b on t; false: the Conn failed. A failed write on a
// resumable session leaves the link to the reader's resumption (lostWrite).
func (c *Conn) writeOn(t *transport, b []byte) bool {
	err := c.write(t, b)
	if err == nil || c.lostWrite(t, err) {
		return true
	}
	c.fail(fmt.Errorf("xmppconn: write: %w", err))
	return false
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
func (c *Conn) write(t *transport, b []byte) error {
	now := time.Now()
	c.writing.Store(now.UnixNano())
	_ = t.raw.SetWriteDeadline(now.Add(c.wto))
	c.keeper.Reset(c.wto / 2)
	_, err := t.w.Write(b)
	c.writing.Store(0)
	c.keeper.Stop()
	if err == nil {
		_ = t.raw.SetWriteDeadline(time.Time{})
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
	t := c.t.Load()
	if now.Sub(time.Unix(0, t.in.heard.Load())) < c.wto && now.Sub(time.Unix(0, began)) < maxWriteStretch*c.wto {
		_ = t.raw.SetWriteDeadline(now.Add(c.wto))
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
		v, skip, counted, err := c.readOne()
		switch {
		case err != nil:
			if c.resumableLoss(err) && c.resume(h, err) {
				continue
			}
			if p := c.t.Load().lossErr.Load(); p != nil { // a failed write, or Drop, lost it first
				err = fmt.Errorf("%w (%v)", *p, err)
			}
			c.fail(err)
			c.reportUnacked(0) // the queue goes with the Conn
			h.Closed(c.reason())
			return
		case v != nil:
			h.Stanza(v)
		case skip != "" && h.Skipped != nil:
			h.Skipped(skip)
		}
		if counted && c.sm.inCount {
			c.sm.inH.Add(1) // handled: a resumption won't have it sent again
		}
	}
}

// readOne reads the next top-level element of the stream: a stanza for the
// handler (v), or the kind of an element passed over (skip: observe.Skip*),
// or neither (whitespace, a request answered here, stream management's
// elements), or the error that ends the link. counted: the element was a
// stanza (message, presence or iq), which stream management counts once
// handled.
func (c *Conn) readOne() (v any, skip string, counted bool, err error) {
	defer func() {
		// A bug in reading one stanza ends this link (the runtime
		// reconnects), never the process: the reader runs for every
		// stranger's stanza. Not a lost link: it is not resumed
		// (resumableLoss), and the stanza is not counted.
		if r := recover(); r != nil {
			v, skip, counted, err = nil, "", false, fmt.Errorf("%w: %v", vocab.ErrReaderPanicked, r)
		}
	}()
	t := c.t.Load() // only the reader replaces it
	t.in.n.Store(0) // the cap counts each stanza's bytes from here
	tok, err := t.dec.Token()
	if err != nil {
		return nil, "", false, t.readError(err)
	}
	switch st := tok.(type) {
	case xml.EndElement: // </stream:stream>
		return nil, "", false, errors.New("server closed stream")
	case xml.StartElement:
		counted = isStanza(st.Name)
		e, err := stanza.ReadElement(t.dec, st)
		switch {
		case errors.Is(err, stanza.ErrTooDeep) || errors.Is(err, stanza.ErrTooManyElements):
			return nil, observe.SkipOversized, counted, nil
		case err != nil:
			return nil, "", false, t.readError(err)
		case e.Is(nsStream, "error"):
			return nil, "", false, streamError(e)
		case e.Name.Space == NSStreamManagement:
			c.onSM(e)
			return nil, "", false, nil
		}
		v, _ := stanza.Parse(e)
		switch v := v.(type) {
		case stanza.Message:
			v.Received = time.Now()
			return v, "", counted, nil
		case nil:
			return nil, observe.SkipUnknown, counted, nil
		case stanza.IQ:
			if answered, queued := c.answer(v); answered {
				if !queued {
					return nil, observe.SkipReplyDropped, counted, nil
				}
				return nil, "", counted, nil
			}
		}
		return v, "", counted, nil
	}
	return nil, "", false, nil
}

// isStanza: a top-level element stream management counts.
func isStanza(n xml.Name) bool {
	return n.Space == "jabber:client" && (n.Local == "message" || n.Local == "presence" || n.Local == "iq")
}

// readError names why a read failed: the inbound cap, or the stream's error.
func (t *transport) readError(err error) error {
	if t.in.tripped.Load() {
		return fmt.Errorf("%w (%d bytes): %v", vocab.ErrInboundTooLarge, t.in.max.Load(), err)
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

	// The login's own goroutine only, until loggedIn (stream management,
	// sm.go): the stream headers go-xmpp sent, and what the server sent after
	// the second (the stream that follows SASL: its features, and the bind's
	// answer). stopAuth: stop go-xmpp's login at that header, before it
	// binds (a resumption); authStopped: it was stopped there.
	client      *xmpp.Client
	headers     int
	recording   bool
	rec         []byte
	stopAuth    bool
	authStopped bool
}

// startLogin readies l for one login attempt by c.
func (l *inboundLimit) startLogin(c *xmpp.Client) {
	l.client, l.headers, l.recording, l.rec, l.authStopped = c, 0, false, nil, false
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
	l.client, l.recording = nil, false
}

func (l *inboundLimit) Write(p []byte) (int, error) {
	if !bytes.HasPrefix(p, []byte("RECV ")) {
		if l.client != nil && bytes.HasPrefix(p, []byte("SEND ")) && bytes.Contains(p, []byte("<stream:stream")) {
			l.headers++
			if l.headers == 2 { // the stream after SASL
				l.recording = true
				if l.stopAuth && setShutdown(l.client) {
					l.authStopped = true
				}
			}
		}
		return len(p), nil
	}
	if l.recording {
		// go-xmpp's debug writer ends each chunk with a newline it adds
		// unless the chunk had one: taking one off leaves the bytes read,
		// less at most a newline between elements.
		l.rec = append(l.rec, bytes.TrimSuffix(p[len("RECV "):], []byte("\n"))...)
	}
	l.heard.Store(time.Now().UnixNano())
	if l.n.Add(int64(len(p)-len("RECV "))) > l.max.Load() {
		l.tripped.Store(true)
		return 0, vocab.ErrInboundTooLarge
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
	c.sm.mu.Lock()
	c.stopOnce.Do(func() { close(c.stop) })
	t := c.t.Load()
	c.sm.cond.Broadcast() // a writer waiting for a resumption
	c.sm.mu.Unlock()
	t.reset()
}

// reset closes t's socket with linger 0: the kernel discards what it still
// holds unsent and resets the connection. Every link given up goes this way,
// the Conn's end (fail) and a link lost to a resumption (lostWrite, resume)
// alike: a resumption writes the unacknowledged stanzas again itself, on the
// new link, so a copy the old socket went on retransmitting could reach the
// server after the new link's, out of order or twice.
func (t *transport) reset() { resetConn(t.raw) }

func resetConn(raw net.Conn) {
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = raw.Close()
}

func (c *Conn) reason() error {
	c.errOnce.Do(func() { c.closeErr = vocab.ErrConnClosed })
	return c.closeErr
}

// Abort drops the link at once. It doesn't block.
func (c *Conn) Abort() { c.fail(vocab.ErrConnClosed) }

// Close ends the stream politely: it sends </stream:stream>, gives the server
// until grace to close its side, then drops the link; it returns when both
// goroutines have finished. It blocks: never call it from an actor's Receive.
func (c *Conn) Close(grace time.Duration) {
	if c.sendNonza(StreamEndBytes) == nil {
		select {
		case <-c.readerEnd:
		case <-time.After(grace):
		}
	}
	c.fail(vocab.ErrConnClosed)
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

package xmppconn

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
)

// XEP-0198 stream management, the connection's part (issue 22).
//
// After a fresh login whose stream (the one after SASL) offers urn:xmpp:sm:3,
// Dial sends <enable resume='true'/>. From then on:
//   - the reader counts every stanza it has read and handled (h) and the
//     writer answers the server's <r/> with <a h/>;
//   - the writer keeps every stanza it writes in a bounded queue until the
//     server's <a h/> acknowledges it, and asks for acks (<r/>) after a burst
//     of ackBurst stanzas and every ackInterval while some are unacknowledged;
//   - when the link is lost (a transport or decoder error, a failed write; not
//     a stream error, the server's </stream:stream> nor Abort/Close) and the
//     server granted resumption, the Conn resumes by itself: it logs in again,
//     stopping go-xmpp's login after SASL (before it binds; see
//     inboundLimit), sends <resume previd h/>, and on <resumed h/> resends
//     what the server had not acknowledged and carries on: the same Conn, the
//     same session on the server, the rooms still joined. The writer waits
//     meanwhile (Send still queues). A refused resumption (<failed/>: the
//     server restarted, the session timed out), or none within the
//     resumption's window, ends the Conn with the original error, as a lost
//     link always did: the runtime then logs in afresh, rejoins and replays.
//
// go-xmpp has no stream management, and its login always binds (or binds
// inline with SASL2); a resumption must authenticate and not bind. Its login
// writes through the net.Conn we hand it and tells its debug writer (ours,
// inboundLimit) what it sends: when it sends the stream header that follows
// a SASL success, inboundLimit sets go-xmpp's shutdown flag, which its reader
// checks before each element, so the login returns io.EOF right there,
// authenticated, with the server's answer unread. go-xmpp thus stays the one
// SASL implementation (SCRAM with channel binding, PLAIN, the TLS 1.2 retry),
// and no second SASL library is needed. A server whose SASL2 binds inline
// never restarts the stream: there the resumption is refused (errBoundFresh).

// NSStreamManagement is XEP-0198's namespace.
const NSStreamManagement = "urn:xmpp:sm:3"

// Stream management's tunables.
const (
	// DefaultSMQueue bounds the unacknowledged stanzas kept for a resumption.
	// Past it the session is no longer resumable (the queue is dropped): the
	// next lost link recovers in full.
	DefaultSMQueue = 10000
	// DefaultResumeWithin bounds how long a lost link tries to resume (and the
	// server's <enabled max/>, when shorter).
	DefaultResumeWithin = 30 * time.Second
	ackBurst            = 32
	ackInterval         = 2 * time.Second
)

// errResumeRefused: the server refused to resume the session (<failed/>: it
// restarted, or the session timed out), or offered no stream management on
// the new stream.
var errResumeRefused = errors.New("xmppconn: the server refused to resume the session")

// errBoundFresh: a login meant to resume bound a fresh session instead.
var errBoundFresh = fmt.Errorf("%w: the login bound a fresh session (SASL2 inline bind)", errResumeRefused)

// SMState is what stream management came to on a Conn.
type SMState struct {
	Offered   bool          // the server offered urn:xmpp:sm:3 after login
	Enabled   bool          // the server answered <enabled/>
	Resumable bool          // … with resume='true', and the queue never overflowed
	Max       time.Duration // the server's resumption timeout (<enabled max/>; 0: not said)
	Resumes   int           // the link losses this Conn resumed
}

type tracked struct {
	seq   uint32
	b     []byte
	fence func() error // SendFenced's (nil: none), asked again before a resend
}

// streamMgmt is a Conn's stream management. mu guards it; the writer waits
// on cond while the link is down (a resumption in progress).
type streamMgmt struct {
	mu        sync.Mutex
	cond      *sync.Cond
	down      bool // resuming: the writer waits
	counting  bool // <enable/> sent and not refused: written stanzas are tracked
	enabled   bool
	resumable bool
	offered   bool
	id        string
	max       time.Duration
	out       uint32 // stanzas written since <enable/>
	unacked   []tracked
	maxQueue  int
	sinceReq  int // stanzas written since the last <r/>
	resumes   int
	decided   chan struct{} // closed on <enabled/> or <failed/> (or never, when not asked)
	decideOne sync.Once

	inH       atomic.Uint32 // stanzas read and handled since <enabled/> (the reader's)
	inCount   bool          // the reader counts (after <enabled/>)
	ackWanted chan struct{} // the server's <r/>: the writer answers
	unackedN  func(int)     // Handler.Unacked
}

func (m *streamMgmt) init(o Options) {
	m.cond = sync.NewCond(&m.mu)
	m.maxQueue = o.SMQueue
	if m.maxQueue <= 0 {
		m.maxQueue = DefaultSMQueue
	}
	m.ackWanted = make(chan struct{}, 1)
	m.decided = make(chan struct{})
}

func (m *streamMgmt) decide() { m.decideOne.Do(func() { close(m.decided) }) }

// offersSM reads the features of the stream after SASL from what the login
// recorded (inboundLimit.rec): whether they offer urn:xmpp:sm:3.
func offersSM(rec []byte) bool {
	if len(rec) == 0 {
		return false
	}
	var f smFeatures
	return readFeatures(xml.NewDecoder(bytes.NewReader(rec)), &f) == nil && f.SM != nil
}

type smFeatures struct {
	SM *struct{} `xml:"urn:xmpp:sm:3 sm"`
}

var (
	enableBytes  = []byte("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	requestBytes = []byte("<r xmlns='urn:xmpp:sm:3'/>")
)

func ackBytes(h uint32) []byte {
	return fmt.Appendf(nil, "<a xmlns='urn:xmpp:sm:3' h='%d'/>", h)
}

// SM says what stream management came to (a snapshot).
func (c *Conn) SM() SMState {
	m := &c.sm
	m.mu.Lock()
	defer m.mu.Unlock()
	return SMState{Offered: m.offered, Enabled: m.enabled, Resumable: m.resumable, Max: m.max, Resumes: m.resumes}
}

// WaitSM waits until the server has answered <enable/> (or ctx ends, or the
// server wasn't asked), and returns SM.
func (c *Conn) WaitSM(ctx context.Context) SMState {
	c.sm.mu.Lock()
	asked := c.sm.counting || c.sm.enabled
	c.sm.mu.Unlock()
	if asked {
		select {
		case <-c.sm.decided:
		case <-ctx.Done():
		case <-c.stop:
		}
	}
	return c.SM()
}

// onSM handles an element of urn:xmpp:sm:3 the server sent (the reader's).
func (c *Conn) onSM(e *stanza.Element) {
	m := &c.sm
	switch e.Name.Local {
	case "r":
		select {
		case m.ackWanted <- struct{}{}:
		default: // an answer is due already; it carries the newest h
		}
	case "a":
		h, err := strconv.ParseUint(e.Attribute("h"), 10, 32)
		if err == nil {
			c.acked(uint32(h))
		}
	case "enabled":
		m.mu.Lock()
		m.enabled, m.inCount = true, true
		m.id = e.Attribute("id")
		r := e.Attribute("resume")
		m.resumable = m.counting && m.id != "" && (r == "true" || r == "1")
		if !m.resumable {
			m.unacked = nil // kept only for a resumption
		}
		if s, err := strconv.Atoi(e.Attribute("max")); err == nil && s > 0 {
			m.max = time.Duration(s) * time.Second
		}
		m.mu.Unlock()
		m.decide()
	case "failed": // to <enable/>: no stream management on this stream
		m.mu.Lock()
		if !m.enabled {
			m.counting, m.unacked = false, nil
		}
		m.mu.Unlock()
		m.decide()
	}
}

// track keeps a stanza about to be written until the server acknowledges it
// (the writer's). ask: time to request an ack.
func (c *Conn) track(b []byte, fence func() error) (ask bool) {
	m := &c.sm
	m.mu.Lock()
	if !m.counting {
		m.mu.Unlock()
		return false
	}
	m.out++
	m.sinceReq++
	if m.resumable || !m.enabled {
		if len(m.unacked) >= m.maxQueue {
			// The server hasn't acknowledged maxQueue stanzas: give up the
			// resumption rather than grow without bound.
			m.resumable, m.unacked = false, nil
		} else {
			m.unacked = append(m.unacked, tracked{seq: m.out, b: b, fence: fence})
		}
	}
	n := len(m.unacked)
	ask = m.sinceReq >= ackBurst
	if ask {
		m.sinceReq = 0
	}
	m.mu.Unlock()
	c.reportUnacked(n)
	return ask
}

// acked drops what the server's h acknowledges.
func (c *Conn) acked(h uint32) {
	m := &c.sm
	m.mu.Lock()
	if int32(m.out-h) < 0 { // acknowledges more than was sent: ignored
		m.mu.Unlock()
		return
	}
	i := 0
	for i < len(m.unacked) && int32(h-m.unacked[i].seq) >= 0 {
		i++
	}
	if i > 0 {
		m.unacked = append(m.unacked[:0:0], m.unacked[i:]...)
	}
	n := len(m.unacked)
	m.mu.Unlock()
	c.reportUnacked(n)
}

func (c *Conn) reportUnacked(n int) {
	if f := c.sm.unackedN; f != nil {
		f(n)
	}
}

// smEnabled: the server enabled stream management on this stream.
func (c *Conn) smEnabled() bool {
	c.sm.mu.Lock()
	defer c.sm.mu.Unlock()
	return c.sm.enabled
}

// periodicRequest: stanzas are unacknowledged, and none was requested since
// the last tick.
func (c *Conn) periodicRequest() bool {
	m := &c.sm
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.enabled || len(m.unacked) == 0 {
		return false
	}
	m.sinceReq = 0
	return true
}

// ready returns the transport to write on, waiting while the link resumes;
// nil once the Conn is stopping.
func (c *Conn) ready() *transport {
	m := &c.sm
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		select {
		case <-c.stop:
			return nil
		default:
		}
		if !m.down {
			return c.t.Load()
		}
		m.cond.Wait()
	}
}

// lostWrite: a write on t failed. When the session is resumable, the link is
// marked down and t closed, so the reader resumes; the stanza is in the queue
// and goes again unless the server acknowledges it. Otherwise false: the
// Conn fails as it always did.
func (c *Conn) lostWrite(t *transport, err error) bool {
	m := &c.sm
	m.mu.Lock()
	ok := m.resumable
	if ok && c.t.Load() == t {
		m.down = true
	}
	m.mu.Unlock()
	if !ok {
		return false
	}
	t.lossErr.CompareAndSwap(nil, &err)
	t.reset() // what it still holds goes again on the new link, if unacknowledged
	return true
}

// Drop abandons the link now (a half-open link the keepalive found): on a
// resumable session the Conn resumes (Suspended, then Resumed or Closed);
// otherwise it ends, as Abort, with err as its reason. It doesn't block.
func (c *Conn) Drop(err error) {
	if c.lostWrite(c.t.Load(), err) {
		return
	}
	c.fail(err)
}

// resumableLoss: the reader's err is a lost link that may be resumed.
func (c *Conn) resumableLoss(err error) bool {
	select {
	case <-c.stop:
		return false
	default:
	}
	// A stanza over the cap, or one whose reading panicked, would come
	// again with the resumption (it was not counted): the Conn ends.
	if errors.Is(err, vocab.ErrInboundTooLarge) || errors.Is(err, vocab.ErrReaderPanicked) || errors.Is(err, vocab.ErrConnClosed) {
		return false
	}
	// The server ended the stream itself (a stream error, </stream:stream>):
	// it ended the session too. A reset is a lost link like any other: a
	// server that reset it for a stanza it refused has ended the session,
	// and refuses the resumption.
	if msg := err.Error(); strings.HasPrefix(msg, "stream error") || strings.HasPrefix(msg, "server closed stream") {
		return false
	}
	c.sm.mu.Lock()
	defer c.sm.mu.Unlock()
	return c.sm.resumable && c.sm.id != ""
}

// resume runs on the reader after a lost link (lossErr): it logs in again and
// resumes the session within the resumption's window. true: the Conn carries
// on with a new transport; false: the Conn ends, with the original error.
func (c *Conn) resume(h Handler, lossErr error) bool {
	m := &c.sm
	m.mu.Lock()
	m.down = true
	old := c.t.Load()
	id, window := m.id, c.opts.ResumeWithin
	if window <= 0 {
		window = DefaultResumeWithin
	}
	if m.max > 0 && m.max < window {
		window = m.max
	}
	m.mu.Unlock()
	old.reset() // the unacknowledged stanzas go again on the new link
	if p := old.lossErr.Load(); p != nil {
		lossErr = *p // the write that failed first says more
	}
	if h.Suspended != nil {
		h.Suspended(lossErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := 100 * time.Millisecond
	for {
		t, sh, err := c.dialResume(ctx, id)
		if err == nil {
			if err = c.resumedOn(t, sh); err == nil {
				if h.Resumed != nil {
					h.Resumed()
				}
				return true
			}
			t.reset()
		}
		if errors.Is(err, errResumeRefused) || ctx.Err() != nil {
			c.errOnce.Do(func() { c.closeErr = fmt.Errorf("%w (resumption: %v)", lossErr, err) })
			return false
		}
		select {
		case <-ctx.Done():
			c.errOnce.Do(func() { c.closeErr = fmt.Errorf("%w (resumption: %v)", lossErr, err) })
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// resumedOn carries on over t after the server's <resumed h/>: what it
// acknowledged is dropped, the rest written again in order, and the writer
// let go.
//
// A fenced stanza (SendFenced) is written again only while its fence still
// answers nil, as the runtime's own resend after a full recovery asks it: a
// cluster node's relay post whose lease ended meanwhile may have been posted
// by the next owner. One left out is not counted: the stanzas written again
// are numbered from the server's h on. What the writer tracked while this
// resent (it had taken the old link just before the loss) goes again too.
func (c *Conn) resumedOn(t *transport, h uint32) error {
	c.acked(h)
	m := &c.sm
	m.mu.Lock()
	kept := m.unacked[:0:0]
	for _, s := range m.unacked {
		if s.fence != nil && s.fence() != nil {
			continue
		}
		s.seq = h + uint32(len(kept)) + 1
		kept = append(kept, s)
	}
	m.unacked, m.out = kept, h+uint32(len(kept))
	sent := 0
	for {
		again := append([]tracked(nil), m.unacked[min(sent, len(m.unacked)):]...)
		if len(again) == 0 {
			break
		}
		m.mu.Unlock()
		for _, s := range again {
			if err := writeDirect(t, s.b, c.wto); err != nil {
				return err
			}
		}
		sent += len(again)
		m.mu.Lock()
	}
	defer m.mu.Unlock()
	select {
	case <-c.stop:
		return vocab.ErrConnClosed
	default:
	}
	c.t.Store(t)
	m.down = false
	m.resumes++
	m.sinceReq = 0
	m.cond.Broadcast()
	return nil
}

// writeDirect writes b on t within wto (a resumption's own writes, while the
// writer waits).
func writeDirect(t *transport, b []byte, wto time.Duration) error {
	_ = t.raw.SetWriteDeadline(time.Now().Add(wto))
	_, err := t.w.Write(b)
	if err == nil {
		_ = t.raw.SetWriteDeadline(time.Time{})
	}
	return err
}

// dialResume logs in without binding and asks to resume session id with the
// reader's h. It returns the new transport and the server's h.
func (c *Conn) dialResume(ctx context.Context, id string) (*transport, uint32, error) {
	o := c.opts
	if o.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.DialTimeout)
		defer cancel()
	}
	if err := o.Logins.enter(ctx); err != nil {
		return nil, 0, err
	}
	defer o.Logins.leave()
	in := newInboundLimit(o.MaxInboundBytes)
	in.stopAuth = true
	client, w, raw, err := login(ctx, o, in)
	if err != nil {
		return nil, 0, scrub(err, o.Password)
	}
	dec, ok := loginDecoder(client)
	if !ok {
		_ = raw.Close()
		return nil, 0, errors.New("xmppconn: go-xmpp's client layout changed: can't take its decoder (pin go-xmpp v0.3.7)")
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	h, err := resumeExchange(dec, w, id, c.sm.inH.Load())
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		resetConn(raw) // a <resume/> still in the kernel must not arrive late
		return nil, 0, err
	}
	_ = raw.SetDeadline(time.Time{})
	in.loggedIn()
	return &transport{client: client, dec: dec, raw: raw, w: w, in: in}, h, nil
}

// resumeExchange reads the new stream's header and features, sends
// <resume/>, and reads the answer: the server's h, or errResumeRefused.
func resumeExchange(dec *xml.Decoder, w interface{ Write([]byte) (int, error) }, id string, h uint32) (uint32, error) {
	var f smFeatures
	if err := readFeatures(dec, &f); err != nil {
		return 0, err
	}
	if f.SM == nil {
		return 0, fmt.Errorf("%w: no stream management offered", errResumeRefused)
	}
	if _, err := fmt.Fprintf(w, "<resume xmlns='%s' h='%d' previd='%s'/>", NSStreamManagement, h, xmlEscape(id)); err != nil {
		return 0, err
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return 0, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		e, err := stanza.ReadElement(dec, se)
		if err != nil {
			return 0, err
		}
		switch {
		case e.Is(NSStreamManagement, "resumed"):
			sh, err := strconv.ParseUint(e.Attribute("h"), 10, 32)
			if err != nil {
				return 0, fmt.Errorf("xmppconn: <resumed/> with h=%q", e.Attribute("h"))
			}
			return uint32(sh), nil
		case e.Is(NSStreamManagement, "failed"):
			cond := "undefined-condition"
			if len(e.Children) > 0 {
				cond = e.Children[0].Name.Local
			}
			return 0, fmt.Errorf("%w (%s)", errResumeRefused, cond)
		case e.Is(nsStream, "error"):
			return 0, streamError(e)
		default:
			return 0, fmt.Errorf("xmppconn: expected <resumed/> or <failed/>, got <%s>", se.Name.Local)
		}
	}
}

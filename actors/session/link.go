// Package session is the session actor: the link, and nothing else. It owns the
// one XMPP connection of a runtime and
//   - connects, keeps the link alive with XEP-0199 pings, and reconnects with
//     exponential backoff when it is lost (link.go);
//   - writes the stanzas that need it, and matches each IQ with its answer, a
//     timeout or the lost link (iq.go); a MAM row goes straight to the archive
//     actor that asked for its query id, which collects its own pages;
//   - routes inbound stanzas to rooms, spawning one room actor per room on first
//     use (and the subscribers the rooms ask for) and supervising them
//     (rooms.go).
//
// Messages carry an epoch, the connection's staleness token: whatever an older
// connection still reports is ignored (the room uses the same word for its own).
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/internal/mailbox"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/internal/xmppconn"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
)

// ErrDuplicateIQ: an IQ id already in flight. (The session's other errors
// are the runtime's: internal/vocab.)
var ErrDuplicateIQ = errors.New("session: duplicate IQ id")

// Reconnect is the reconnection policy.
type Reconnect struct {
	// InitialInterval is the wait before the second attempt (the first is
	// immediate); it doubles per attempt, with ±50% jitter, up to MaxInterval.
	InitialInterval time.Duration
	MaxInterval     time.Duration
	// MaxAttempts ends reconnecting after that many failed logins (0: never).
	MaxAttempts int
	// StableAfter: a link that stayed up this long resets the backoff.
	StableAfter time.Duration
}

// Config configures a session.
type Config struct {
	Conn   xmppconn.Options
	Logger *slog.Logger
	// NewRoom builds the props of a room actor. The session spawns it as a child
	// on the room's first use.
	NewRoom func(RoomSpec) *actor.Props
	// Rooms supervises the rooms and subscribers.
	Rooms actor.SupervisorStrategy
	// Notify, when set, receives a *StateChange on every change of state.
	Notify *actor.PID
	// State, when set, is stored the State at every change, before the
	// change is announced or any caller is answered: a reader outside the
	// actors sees Online once Connect has been answered (Notify's events
	// arrive later, behind the embedder's callbacks).
	State *atomic.Int32
	// FailFast: while the link is down, requests fail at once with
	// seam.ErrNotConnected instead of waiting for it.
	FailFast  bool
	Reconnect Reconnect
	// KeepAlive is the interval of the XEP-0199 pings that find a half-open link;
	// KeepAliveTimeout is how long a ping may take before it counts as late. A
	// late ping is not a dead link: only silence (no answer, nothing else either)
	// for twice the current wait drops it, and the wait grows with the round
	// trips of answered pings, up to 4 × KeepAliveTimeout (see ping). 0 turns
	// pings off.
	KeepAlive        time.Duration
	KeepAliveTimeout time.Duration
	// LoginTimeout bounds one login attempt, TCP connect included: a link that
	// hangs mid-login (a blackhole) fails the attempt and the next one follows.
	LoginTimeout time.Duration
	// CloseGrace bounds how long Disconnect waits for the server to close the
	// stream before dropping the link.
	CloseGrace time.Duration
	// RejoinInFlight bounds the rooms rejoining at once after a reconnect
	// (rooms with subscribers first); RejoinLease is how long one room's
	// rejoin counts against it (see rejoin.go).
	RejoinInFlight int
	RejoinLease    time.Duration
	// MaxMAMResults is not used: the archive actor bounds the rows of a query
	// (archive.Config.MaxResults). Kept so configurations that set it compile.
	MaxMAMResults int
	// Metrics receives the connection's measurements (nil: none).
	Metrics observe.Metrics
	// Dial is xmppconn.Dial unless a test replaces it.
	Dial func(context.Context, xmppconn.Options) (*xmppconn.Conn, error)
}

// phase is the session's own state; State is what embedders see of it.
type phase int

const (
	idle phase = iota
	dialing
	online
	// resuming: the link was lost and the connection is resuming the session
	// (XEP-0198): the rooms stay joined, writes and IQs queue in the
	// connection, keepalive pings wait.
	resuming
	reconnecting
	closing
	closed
)

// linked: the session has a connection, up or resuming.
func (s *Session) linked() bool { return s.phase == online || s.phase == resuming }

// Session is the session actor.
type Session struct {
	cfg   Config
	log   *slog.Logger
	phase phase
	state vocab.State // last state announced

	epoch      int // the connection's staleness token (the room's word too): events of older connections are ignored
	conn       *xmppconn.Conn
	cancelDial context.CancelFunc
	connectors []*actor.PID // Connect requests waiting for the login
	lastErr    error        // why the link is down / why reconnecting gave up
	lostErr    error        // why the link was lost, for the reconnect's log line
	lostAt     time.Time

	policy linkPolicy // backoff, flap damping, the keepalive's wait (policy.go)
	pingID string
	// heard: a stanza came in since the ping in flight was sent. A link that
	// delivers is alive, however late the ping's answer (it waits behind a long
	// send queue on a busy link).
	heard      bool
	retryTimer *time.Timer
	pingTimer  *time.Timer
	pingSent   time.Time

	rooms roomRegistry // the room actors (rooms.go)
	iqs   iqTable      // the IQs in flight (iq.go)
	turns turns        // the rooms' rejoin turns (rejoin.go)

	disconnectors []*actor.PID
	openConns     int // connections whose goroutines haven't ended yet
}

// Messages the session sends itself.
type (
	dialed struct {
		epoch int
		conn  *xmppconn.Conn
		err   error
	}
	inbound struct {
		epoch int
		s     any
	}
	linkClosed struct {
		epoch int
		err   error
	}
	iqTimedOut struct{ id string }
	connEnded  struct{}
	retryNow   struct{ epoch int }
	pingNow    struct{ epoch int }
	// The link was lost and the connection is resuming it (XEP-0198), and
	// it resumed.
	linkSuspended struct {
		epoch int
		err   error
	}
	linkResumed struct{ epoch int }
)

// Props returns the session's props.
func Props(cfg Config) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Dial == nil {
		cfg.Dial = xmppconn.Dial
	}
	defaults.MustBeSet(cfg, "CloseGrace", "LoginTimeout", "KeepAliveTimeout", "RejoinInFlight", "RejoinLease")
	defaults.MustBeSet(cfg.Reconnect, "InitialInterval", "MaxInterval", "StableAfter")
	if cfg.Rooms == nil {
		cfg.Rooms = actor.DefaultSupervisorStrategy()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = observe.Nop{}
	}
	return actor.PropsFromProducer(func() actor.Actor {
		return &Session{cfg: cfg, log: cfg.Logger, rooms: newRoomRegistry(), iqs: newIQTable(),
			policy: newLinkPolicy(cfg.Reconnect, cfg.KeepAliveTimeout)}
	}, actor.WithMailbox(mailbox.Unbounded()))
}

// Receive handles one message.
func (s *Session) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Connect:
		s.connect(ctx)
	case *AbortConnect:
		s.abortConnect(ctx)
	case *dialed:
		s.onDialed(ctx, m)
	case *retryNow:
		s.onRetry(ctx, m)
	case *inbound:
		s.onInbound(ctx, m)
	case *linkClosed:
		s.onLinkClosed(ctx, m)
	case *linkSuspended:
		s.onSuspended(ctx, m)
	case *linkResumed:
		s.onResumed(ctx, m)
	case *pingNow:
		s.onPingNow(ctx, m)
	case *IQResult: // the answer to our own keepalive ping
		s.onPingAnswer(ctx, m)
	case *Send:
		_ = s.write(m.Stanza)
	case *IQ:
		s.sendIQ(ctx, m)
	case *iqTimedOut:
		s.onIQTimer(ctx, m.id)
	case *ToRoom:
		s.toRoom(ctx, m)
	case *RejoinTurn:
		s.onRejoinTurn(ctx, m)
	case *RejoinDone:
		s.onRejoinDone(ctx, m)
	case *turnLease:
		s.onTurnLease(ctx, m)
	case *turnsOpen:
		s.onTurnsOpen(ctx, m)
	case *SpawnSubscriber:
		ctx.Respond(ctx.Spawn(m.Props))
	case *Disconnect:
		s.disconnect(ctx)
	case *connEnded:
		s.onConnEnded(ctx)
	case *actor.Terminated:
		s.onTerminated(ctx, m)
	case *actor.Stopping:
		s.onStopping(ctx)
	}
}

func (s *Session) abortConnect(ctx actor.Context) {
	if s.phase == dialing {
		s.cancelDial()
		s.epoch++ // the login's result, when it comes, is stale
		s.phase = idle
		s.answerConnectors(ctx, context.Canceled)
	}
}

func (s *Session) onRetry(ctx actor.Context, m *retryNow) {
	if m.epoch == s.epoch && s.phase == reconnecting {
		s.dial(ctx)
	}
}

func (s *Session) onInbound(ctx actor.Context, m *inbound) {
	if m.epoch == s.epoch && s.linked() {
		s.heard = true
		s.onStanza(ctx, m.s)
	}
}

func (s *Session) onLinkClosed(ctx actor.Context, m *linkClosed) {
	if m.epoch == s.epoch && s.linked() {
		s.linkLost(ctx, m.err)
	}
}

func (s *Session) onPingNow(ctx actor.Context, m *pingNow) {
	if m.epoch == s.epoch && s.phase == online {
		s.ping(ctx)
	}
}

// onPingAnswer takes the answer to the session's own keepalive ping.
func (s *Session) onPingAnswer(ctx actor.Context, m *IQResult) {
	if m.ID != s.pingID || s.phase != online {
		return
	}
	s.pingID = ""
	if m.Err != nil && errors.Is(m.Err, vocab.ErrIQTimeout) && !s.heard {
		err := fmt.Errorf("%w: nothing from the server for %s", vocab.ErrKeepAlive, time.Since(s.pingSent).Round(time.Millisecond))
		if s.conn.SM().Resumable {
			// A half-open link: the connection drops it and resumes the
			// session on a new one (Suspended, then Resumed or, refused,
			// Closed and the full recovery).
			s.log.Warn("keepalive unanswered; resuming the session on a new link", slog.Any("err", err))
			s.conn.Drop(err)
			return
		}
		s.linkLost(ctx, err)
		return
	}
	if m.Err == nil {
		s.pinged(time.Since(s.pingSent))
	}
	s.schedulePing(ctx)
}

func (s *Session) onConnEnded(ctx actor.Context) {
	s.openConns--
	s.maybeDone(ctx)
}

func (s *Session) onTerminated(ctx actor.Context, m *actor.Terminated) {
	s.forgetRoom(m.Who)
	s.maybeDone(ctx)
}

func (s *Session) onStopping(ctx actor.Context) {
	s.failIQs(ctx, seam.ErrDisconnected)
	s.stopTimers()
	s.dropTurns()
}

// ---- the link ----

func (s *Session) connect(ctx actor.Context) {
	switch s.phase {
	case online, resuming:
		ctx.Respond(&Connected{})
	case closing, closed:
		ctx.Respond(&Connected{Err: seam.ErrDisconnected})
	case dialing, reconnecting:
		s.connectors = append(s.connectors, ctx.Sender())
	case idle:
		s.connectors = append(s.connectors, ctx.Sender())
		s.phase = dialing
		s.announce(ctx, vocab.Connecting, nil)
		s.dial(ctx)
	}
}

// dial starts a login on its own goroutine; its result comes back as *dialed.
func (s *Session) dial(ctx actor.Context) {
	s.epoch++
	s.policy.dialing()
	dctx, cancel := context.WithTimeout(context.Background(), s.cfg.LoginTimeout)
	s.cancelDial = cancel
	epoch, self, root, dial, opts := s.epoch, ctx.Self(), ctx.ActorSystem().Root, s.cfg.Dial, s.cfg.Conn
	go func() {
		conn, err := dial(dctx, opts)
		root.Send(self, &dialed{epoch: epoch, conn: conn, err: err})
	}()
}

func (s *Session) onDialed(ctx actor.Context, m *dialed) {
	if m.epoch != s.epoch || (s.phase != dialing && s.phase != reconnecting) {
		// A login that finished after Disconnect, or after it was abandoned.
		if m.conn != nil {
			s.reap(ctx, m.conn, 0)
		}
		return
	}
	s.cancelDial()
	if m.err != nil {
		if s.phase == dialing { // the first Connect reports its failure
			s.phase = idle
			s.announce(ctx, vocab.Closed, m.err)
			s.answerConnectors(ctx, m.err)
			return
		}
		s.lastErr = m.err
		s.retryLater(ctx, m.err, false)
		return
	}
	if s.phase == reconnecting {
		s.cfg.Metrics.Reconnected()
	}
	s.conn, s.phase, s.lastErr = m.conn, online, nil
	s.policy.loggedIn(time.Now())
	s.iqs.newLink()
	epoch, self, root := s.epoch, ctx.Self(), ctx.ActorSystem().Root
	h := xmppconn.Handler{
		Stanza:    func(v any) { root.Send(self, &inbound{epoch: epoch, s: v}) },
		Skipped:   skipCounter(s.cfg.Metrics),
		Closed:    func(err error) { root.Send(self, &linkClosed{epoch: epoch, err: err}) },
		Suspended: func(err error) { root.Send(self, &linkSuspended{epoch: epoch, err: err}) },
		Resumed:   func() { root.Send(self, &linkResumed{epoch: epoch}) },
	}
	if sm, ok := s.cfg.Metrics.(observe.StreamManager); ok {
		h.Unacked = sm.UnackedStanzas
	}
	m.conn.Start(h)
	s.openConns++
	if s.lostErr != nil {
		// A reconnect says why it was needed: the cause of the outage, not
		// the last failed attempt's.
		s.log.Info("reconnected", slog.String("jid", m.conn.JID()), slog.Int("attempt", s.policy.upAfter),
			slog.Any("cause", s.lostErr), slog.Duration("down", time.Since(s.lostAt).Round(time.Millisecond)))
		s.lostErr = nil
	} else {
		s.log.Info("online", slog.String("jid", m.conn.JID()), slog.Int("attempt", s.policy.upAfter))
	}
	s.announce(ctx, vocab.Online, nil)
	s.answerConnectors(ctx, nil)
	s.gatherTurns(ctx, s.rooms.len())
	for _, pid := range s.rooms.each() {
		ctx.Send(pid, &LinkUp{Link: m.conn})
	}
	s.schedulePing(ctx)
}

// linkLost abandons the connection (closed off the actor's path: go-xmpp can
// hang on a stream broken mid-stanza), tells every room, and starts
// reconnecting.
func (s *Session) linkLost(ctx actor.Context, err error) {
	s.log.Info("connection lost; reconnecting", slog.Any("err", err))
	conn := s.conn
	s.conn, s.lastErr = nil, err
	s.lostErr, s.lostAt = err, time.Now()
	s.epoch++ // whatever the old connection still reports is stale
	conn.Abort()
	s.reapWhenDone(ctx, conn)
	s.stopTimers()
	s.dropTurns()
	s.failIQs(ctx, fmt.Errorf("%w: %v", vocab.ErrLinkLost, err))
	for _, pid := range s.rooms.each() {
		ctx.Send(pid, &LinkDown{Err: err})
	}
	s.phase = reconnecting
	if flapped, up := s.policy.lost(time.Now()); flapped {
		// The link died within seconds of coming up: whatever the cause (a
		// stanza the server won't take, a server that drops every new stream),
		// the login counts as failed, and the next waits its backoff.
		s.log.Warn("the link died soon after login; counted as a failed attempt", slog.Duration("up", up), slog.Int("attempt", s.policy.attempt))
		s.retryLater(ctx, err, true)
		return
	}
	s.announce(ctx, vocab.Reconnecting, err)
	s.dial(ctx) // the first attempt at once (RetryIn 0): most losses are a single dropped link
}

// onSuspended: the link was lost and the connection is resuming it
// (XEP-0198). The rooms are not told: the session on the server keeps their
// occupancy, what they send waits in the connection's queue, and what was
// sent to them the server delivers on the resumption. Keepalive pings wait
// too (the connection bounds the resumption); the IQs in flight keep their
// timeouts. A resumption that fails ends the link: linkClosed, a full
// recovery.
//
// Embedders see the link as it is: Reconnecting (with the error), then
// Online when it resumed. Requests keep queueing meanwhile (FailFast fails
// them only once the link is given up for a full recovery).
func (s *Session) onSuspended(ctx actor.Context, m *linkSuspended) {
	if m.epoch != s.epoch || s.phase != online {
		return
	}
	s.log.Warn("connection lost; resuming the session", slog.Any("err", m.err))
	s.phase = resuming
	s.announce(ctx, vocab.Reconnecting, m.err)
	if s.pingTimer != nil {
		s.pingTimer.Stop()
	}
	s.pingID = "" // the ping in flight, if any, proves nothing now
}

// onResumed: the connection resumed the session: the rooms hear of it
// (RoomResumed), nothing else changes.
func (s *Session) onResumed(ctx actor.Context, m *linkResumed) {
	if m.epoch != s.epoch || s.phase != resuming {
		return
	}
	s.log.Info("session resumed", slog.String("jid", s.conn.JID()))
	s.phase = online
	s.cfg.Metrics.Reconnected() // a lost link re-established, resumed
	if sm, ok := s.cfg.Metrics.(observe.StreamManager); ok {
		sm.Resumed()
	}
	s.announce(ctx, vocab.Online, nil)
	for _, pid := range s.rooms.each() {
		ctx.Send(pid, &LinkResumed{})
	}
	s.schedulePing(ctx)
}

// retryLater schedules the next login attempt, or gives up, and says so:
// lost, the link was just lost (Online to Reconnecting); otherwise a login
// attempt failed (Reconnecting to Reconnecting).
func (s *Session) retryLater(ctx actor.Context, err error, lost bool) {
	wait, giveUp := s.policy.next()
	if giveUp {
		if lost {
			s.announce(ctx, vocab.Reconnecting, err)
		}
		s.phase = idle
		s.lastErr = fmt.Errorf("%w after %d attempts: %v", vocab.ErrGaveUp, s.policy.attempt, err)
		s.log.Error("reconnecting gave up", slog.Any("err", s.lastErr))
		s.announce(ctx, vocab.Closed, s.lastErr)
		s.answerConnectors(ctx, s.lastErr)
		for _, pid := range s.rooms.each() {
			ctx.Send(pid, &LinkDown{Err: s.lastErr, GaveUp: true})
		}
		return
	}
	if !lost {
		s.log.Info("login failed; retrying", slog.Any("err", err), slog.Duration("retry_in", wait), slog.Int("attempt", s.policy.attempt))
	}
	s.announceRetry(ctx, vocab.Reconnecting, err, wait)
	epoch := s.epoch
	s.retryTimer = s.after(ctx, wait, &retryNow{epoch: epoch})
}

func (s *Session) schedulePing(ctx actor.Context) {
	if s.cfg.KeepAlive <= 0 {
		return
	}
	s.pingTimer = s.after(ctx, s.cfg.KeepAlive, &pingNow{epoch: s.epoch})
}

// ping sends a keepalive ping. It is late after pingWait, but a late ping is
// a slow server, not a dead link: the link is dropped only when neither the
// answer nor anything else came within keepAliveGrace × pingWait (a half-open
// link, or a server gone). Anything heard meanwhile is a live link (a ping's
// answer can wait behind a long send queue on a busy link), and so is a late
// answer, which lengthens the next pings' wait (pinged).
func (s *Session) ping(ctx actor.Context) {
	s.pingID, s.heard, s.pingSent = "ping-"+randID(), false, time.Now()
	domain := s.cfg.Conn.User[strings.IndexByte(s.cfg.Conn.User, '@')+1:]
	s.sendIQ(ctx, &IQ{ID: s.pingID, To: "", Stanza: stanza.PingIQ(domain, s.pingID), Timeout: s.policy.pingTimeout()})
}

// pinged takes a ping's round trip (linkPolicy.pinged).
func (s *Session) pinged(rtt time.Duration) {
	if wait, late := s.policy.pinged(rtt); late {
		s.log.Warn("the server answered a keepalive ping late; the link is kept and the wait extended",
			slog.Duration("took", rtt.Round(time.Millisecond)), slog.Duration("wait", wait))
	}
}

func (s *Session) stopTimers() {
	for _, t := range []*time.Timer{s.retryTimer, s.pingTimer} {
		if t != nil {
			t.Stop()
		}
	}
	s.pingID = ""
}

// reapWhenDone counts conn until its goroutines have ended, so Disconnect can
// wait for them.
func (s *Session) reapWhenDone(ctx actor.Context, conn *xmppconn.Conn) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	go func() {
		conn.Wait()
		root.Send(self, &connEnded{})
	}()
}

// reap closes a connection nobody uses, off the actor's path.
func (s *Session) reap(ctx actor.Context, conn *xmppconn.Conn, grace time.Duration) {
	s.openConns++
	self, root := ctx.Self(), ctx.ActorSystem().Root
	go func() {
		conn.Close(grace)
		root.Send(self, &connEnded{})
	}()
}

func (s *Session) announce(ctx actor.Context, to vocab.State, err error) {
	s.announceRetry(ctx, to, err, 0)
}

// announceRetry announces a State (Reconnecting to Reconnecting: a failed
// login attempt) with the wait before the next login attempt.
func (s *Session) announceRetry(ctx actor.Context, to vocab.State, err error, retryIn time.Duration) {
	from := s.state
	s.state = to
	if s.cfg.State != nil {
		s.cfg.State.Store(int32(to))
	}
	if from != vocab.Reconnecting || to != vocab.Reconnecting { // not a failed attempt
		s.cfg.Metrics.ConnectionState(to)
	}
	if s.cfg.Notify != nil {
		ctx.Send(s.cfg.Notify, &vocab.StateChange{From: from, To: to, Err: err, Attempt: s.policy.attempt, RetryIn: retryIn, At: time.Now()})
	}
}

func (s *Session) answerConnectors(ctx actor.Context, err error) {
	for _, pid := range s.connectors {
		ctx.Send(pid, &Connected{Err: err})
	}
	s.connectors = nil
}

// ---- traffic ----

// write queues b on the link. A full queue or an oversized stanza leaves the
// link as it is (the error says so); any other error means the link is gone,
// and its reader reports linkClosed.
func (s *Session) write(b []byte) error {
	if !s.linked() {
		return nil
	}
	err := s.conn.Send(b)
	if err != nil {
		s.log.Warn("write failed", slog.Any("err", err))
	}
	return err
}

func (s *Session) disconnect(ctx actor.Context) {
	s.disconnectors = append(s.disconnectors, ctx.Sender())
	if s.phase == closing || s.phase == closed {
		s.maybeDone(ctx)
		return
	}
	if s.phase == dialing || s.phase == reconnecting {
		s.cancelDial()
	}
	s.phase = closing
	s.epoch++
	s.stopTimers()
	s.dropTurns()
	s.answerConnectors(ctx, seam.ErrDisconnected)
	s.failIQs(ctx, seam.ErrDisconnected)
	for _, pid := range s.rooms.each() {
		// Closing first, then a poison pill behind it: the room tells what it
		// answers that the runtime is closing, not failing.
		ctx.Send(pid, &Closing{})
		ctx.Poison(pid)
	}
	for _, pid := range ctx.Children() {
		if !s.rooms.isRoom(pid) {
			ctx.Stop(pid) // subscribers
		}
	}
	if s.conn != nil {
		s.openConns-- // counted since it came up; reap counts it again
		s.reap(ctx, s.conn, s.cfg.CloseGrace)
		s.conn = nil
	}
	s.maybeDone(ctx)
}

// maybeDone answers Disconnect once every room and subscriber has stopped and
// every connection's goroutines have ended.
func (s *Session) maybeDone(ctx actor.Context) {
	if s.phase != closing && s.phase != closed {
		return
	}
	if len(ctx.Children()) > 0 || s.openConns > 0 {
		return
	}
	if s.phase == closing {
		s.phase = closed
		s.announce(ctx, vocab.Closed, nil)
	}
	for _, pid := range s.disconnectors {
		ctx.Send(pid, &Disconnected{})
	}
	s.disconnectors = nil
}

// after delivers msg to this actor after d.
func (s *Session) after(ctx actor.Context, d time.Duration, msg any) *time.Timer {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	return time.AfterFunc(d, func() { root.Send(self, msg) })
}

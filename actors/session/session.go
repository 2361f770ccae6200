// Package session is the session actor: the owner of the one XMPP connection of a
// runtime. It dials through package xmppconn, turns everything the connection's
// reader delivers into messages for itself, writes every stanza, correlates IQs
// with their answers (with timeouts), spawns one room actor per room, supervises
// them, and routes each room's traffic to it.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/xmppconn"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/supervision"
)

// Errors the session answers with.
var (
	// ErrLinkLost: the connection ended while the request was in flight.
	ErrLinkLost = errors.New("session: connection lost")
	// ErrIQTimeout: no answer within the IQ's timeout.
	ErrIQTimeout = errors.New("session: no answer in time")
	// ErrDuplicateIQ: an IQ id already in flight.
	ErrDuplicateIQ = errors.New("session: duplicate IQ id")
)

// Config configures a session.
type Config struct {
	Conn   xmppconn.Options
	Logger *slog.Logger
	// NewRoom builds the props of a room actor. The session spawns it as a child
	// on the room's first use.
	NewRoom func(RoomSpec) *actor.Props
	// CloseGrace bounds how long Disconnect waits for the server to close the
	// stream before dropping the link.
	CloseGrace time.Duration
	// MaxMAMResults bounds the results one query may collect; a server sending more
	// fails the query instead of growing memory without bound.
	MaxMAMResults int
	// Dial is xmppconn.Dial unless a test replaces it.
	Dial func(context.Context, xmppconn.Options) (*xmppconn.Conn, error)
}

type state int

const (
	idle state = iota
	dialing
	online
	closing
	closed
)

// Session is the session actor.
type Session struct {
	cfg   Config
	log   *slog.Logger
	state state

	gen        int // connection generation: events of older connections are ignored
	conn       *xmppconn.Conn
	cancelDial context.CancelFunc
	connectors []*actor.PID // Connect requests waiting for the login

	rooms map[string]*actor.PID // by lower-case bare JID
	iqs   map[string]*pendingIQ

	disconnectors []*actor.PID
	connClosed    bool
}

type pendingIQ struct {
	req     IQ
	replyTo *actor.PID
	timer   *time.Timer
	mam     []stanza.MAMResult
	tooMany bool
}

// Messages the session sends itself.
type (
	dialed struct {
		gen  int
		conn *xmppconn.Conn
		err  error
	}
	inbound struct {
		gen int
		s   any
	}
	linkClosed struct {
		gen int
		err error
	}
	iqTimedOut   struct{ id string }
	connFinished struct{}
)

// Props returns the session's props.
func Props(cfg Config) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Dial == nil {
		cfg.Dial = xmppconn.Dial
	}
	if cfg.CloseGrace <= 0 {
		cfg.CloseGrace = 2 * time.Second
	}
	if cfg.MaxMAMResults <= 0 {
		cfg.MaxMAMResults = 1000
	}
	return actor.PropsFromProducer(func() actor.Actor {
		return &Session{cfg: cfg, log: cfg.Logger, rooms: map[string]*actor.PID{}, iqs: map[string]*pendingIQ{}}
	}, actor.WithSupervisor(supervision.Children(cfg.Logger, 10, time.Minute)))
}

// Receive handles one message.
func (s *Session) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Connect:
		s.connect(ctx)
	case *AbortConnect:
		if s.state == dialing {
			s.cancelDial()
			s.gen++ // the login's result, when it comes, is stale
			s.state = idle
			s.answerConnectors(ctx, context.Canceled)
		}
	case *dialed:
		s.onDialed(ctx, m)
	case *inbound:
		if m.gen == s.gen && s.state == online {
			s.onStanza(ctx, m.s)
		}
	case *linkClosed:
		if m.gen == s.gen && s.state == online {
			s.onLinkClosed(ctx, m.err)
		}
	case *Send:
		s.write(ctx, m.Stanza)
	case *IQ:
		s.sendIQ(ctx, m)
	case *iqTimedOut:
		if p, ok := s.iqs[m.id]; ok {
			delete(s.iqs, m.id)
			ctx.Send(p.replyTo, &IQResult{ID: m.id, Err: fmt.Errorf("%w: IQ to %q after %s", ErrIQTimeout, p.req.To, p.req.Timeout)})
		}
	case *ToRoom:
		s.toRoom(ctx, m)
	case *Disconnect:
		s.disconnect(ctx)
	case *connFinished:
		s.connClosed = true
		s.maybeDone(ctx)
	case *actor.Terminated:
		for k, pid := range s.rooms {
			if pid.Equal(m.Who) {
				delete(s.rooms, k)
			}
		}
		s.maybeDone(ctx)
	case *actor.Stopping:
		s.failIQs(ctx, seam.ErrDisconnected)
	}
}

func (s *Session) connect(ctx actor.Context) {
	switch s.state {
	case online:
		ctx.Respond(&Connected{})
		return
	case closing, closed:
		ctx.Respond(&Connected{Err: seam.ErrDisconnected})
		return
	case dialing:
		s.connectors = append(s.connectors, ctx.Sender())
		return
	}
	s.state = dialing
	s.gen++
	s.connectors = append(s.connectors, ctx.Sender())
	dctx, cancel := context.WithCancel(context.Background())
	s.cancelDial = cancel
	gen, self, root, dial, opts := s.gen, ctx.Self(), ctx.ActorSystem().Root, s.cfg.Dial, s.cfg.Conn
	go func() {
		conn, err := dial(dctx, opts)
		root.Send(self, &dialed{gen: gen, conn: conn, err: err})
	}()
}

func (s *Session) onDialed(ctx actor.Context, m *dialed) {
	if m.gen != s.gen || s.state != dialing {
		// A login that finished after Disconnect: nobody wants it.
		if m.conn != nil {
			go m.conn.Close(0)
		}
		return
	}
	s.cancelDial()
	if m.err != nil {
		s.state = idle
		s.answerConnectors(ctx, m.err)
		return
	}
	s.conn, s.state = m.conn, online
	gen, self, root := s.gen, ctx.Self(), ctx.ActorSystem().Root
	m.conn.Start(xmppconn.Handler{
		Stanza: func(v any) { root.Send(self, &inbound{gen: gen, s: v}) },
		Closed: func(err error) { root.Send(self, &linkClosed{gen: gen, err: err}) },
	})
	s.log.Debug("session online", slog.String("jid", m.conn.JID()))
	s.answerConnectors(ctx, nil)
}

func (s *Session) answerConnectors(ctx actor.Context, err error) {
	for _, pid := range s.connectors {
		ctx.Send(pid, &Connected{Err: err})
	}
	s.connectors = nil
}

func (s *Session) onLinkClosed(ctx actor.Context, err error) {
	s.log.Warn("connection lost", slog.Any("err", err))
	s.state = idle
	conn := s.conn
	s.conn = nil
	go conn.Close(0)
	s.failIQs(ctx, fmt.Errorf("%w: %v", ErrLinkLost, err))
	for _, pid := range s.rooms {
		ctx.Send(pid, &LinkDown{Err: err})
	}
}

func (s *Session) failIQs(ctx actor.Context, err error) {
	for id, p := range s.iqs {
		p.timer.Stop()
		ctx.Send(p.replyTo, &IQResult{ID: id, Err: err})
		delete(s.iqs, id)
	}
}

func (s *Session) write(ctx actor.Context, b []byte) {
	if s.state != online {
		return
	}
	if err := s.conn.Send(b); err != nil {
		// The adapter tears the link down; its reader reports linkClosed.
		s.log.Warn("write failed", slog.Any("err", err))
	}
}

func (s *Session) sendIQ(ctx actor.Context, m *IQ) {
	if s.state != online {
		err := seam.ErrNotConnected
		if s.state >= closing {
			err = seam.ErrDisconnected
		}
		ctx.Respond(&IQResult{ID: m.ID, Err: err})
		return
	}
	if _, dup := s.iqs[m.ID]; dup {
		ctx.Respond(&IQResult{ID: m.ID, Err: fmt.Errorf("%w: %q", ErrDuplicateIQ, m.ID)})
		return
	}
	if m.Timeout <= 0 {
		m.Timeout = 30 * time.Second
	}
	p := &pendingIQ{req: *m, replyTo: ctx.Sender()}
	self, root, id := ctx.Self(), ctx.ActorSystem().Root, m.ID
	p.timer = time.AfterFunc(m.Timeout, func() { root.Send(self, &iqTimedOut{id: id}) })
	s.iqs[m.ID] = p
	s.write(ctx, m.Stanza)
}

func (s *Session) onStanza(ctx actor.Context, v any) {
	switch st := v.(type) {
	case stanza.Message:
		if st.MAM != nil {
			s.onMAMResult(st)
			return
		}
		s.route(ctx, st.From, st)
	case stanza.Presence:
		s.route(ctx, st.From, st)
	case stanza.IQ:
		s.onIQ(ctx, st)
	}
}

// onMAMResult files a result with the query it answers: same query id, and from
// the archive that was asked. Anything else is not ours and is dropped.
func (s *Session) onMAMResult(m stanza.Message) {
	for _, p := range s.iqs {
		if p.req.QueryID == "" || p.req.QueryID != m.MAM.QueryID || !stanza.SameBare(m.From, p.req.To) || stanza.Resource(m.From) != "" {
			continue
		}
		if len(p.mam) >= s.cfg.MaxMAMResults {
			p.tooMany = true
			return
		}
		r := *m.MAM
		if m.Error != nil {
			// An unreadable row: keep it marked so the archive fails the page.
			r.ID = ""
		}
		p.mam = append(p.mam, r)
		return
	}
	s.log.Debug("dropped a MAM result no query of ours asked for", slog.String("from", m.From), slog.String("queryid", m.MAM.QueryID))
}

func (s *Session) onIQ(ctx actor.Context, iq stanza.IQ) {
	switch iq.Type {
	case "result", "error":
		p, ok := s.iqs[iq.ID]
		if !ok || !s.answersTo(iq.From, p.req.To) {
			s.log.Debug("dropped an IQ answer nobody waits for", slog.String("id", iq.ID), slog.String("from", iq.From))
			return
		}
		p.timer.Stop()
		delete(s.iqs, iq.ID)
		res := &IQResult{ID: iq.ID, IQ: iq, MAM: p.mam}
		if p.tooMany {
			res.Err = fmt.Errorf("session: %s sent more than %d results for one query", p.req.To, s.cfg.MaxMAMResults)
		}
		ctx.Send(p.replyTo, res)
	case "get", "set":
		// A request from a room occupant is the room's business (its nick probe
		// among them); anything else the runtime doesn't serve.
		if pid, ok := s.rooms[strings.ToLower(stanza.Bare(iq.From))]; ok {
			ctx.Send(pid, iq)
			return
		}
		s.write(ctx, stanza.ErrorReplyIQ(iq.From, iq.ID, "service-unavailable"))
	}
}

// answersTo: an answer counts only from the entity asked. For IQs to the user's
// own server, RFC 6120 lets the answer come from the domain, the bare JID or none.
func (s *Session) answersTo(from, to string) bool {
	if to != "" {
		return strings.EqualFold(from, to)
	}
	own := stanza.Bare(s.conn.JID())
	return from == "" || stanza.SameBare(from, own) || strings.EqualFold(from, own[strings.IndexByte(own, '@')+1:])
}

func (s *Session) route(ctx actor.Context, from string, v any) {
	if pid, ok := s.rooms[strings.ToLower(stanza.Bare(from))]; ok {
		ctx.Send(pid, v)
	}
}

func (s *Session) toRoom(ctx actor.Context, m *ToRoom) {
	switch {
	case s.state >= closing:
		ctx.Respond(seam.ErrDisconnected)
		return
	case s.state != online:
		ctx.Respond(seam.ErrNotConnected)
		return
	}
	key := strings.ToLower(m.Room)
	pid, ok := s.rooms[key]
	if !ok {
		pid = ctx.Spawn(s.cfg.NewRoom(RoomSpec{JID: m.Room, Topic: m.Topic, Session: ctx.Self()}))
		s.rooms[key] = pid
	}
	ctx.RequestWithCustomSender(pid, m.Msg, ctx.Sender())
}

func (s *Session) disconnect(ctx actor.Context) {
	s.disconnectors = append(s.disconnectors, ctx.Sender())
	if s.state == closing || s.state == closed {
		s.maybeDone(ctx)
		return
	}
	prev := s.state
	s.state = closing
	if prev == dialing {
		s.cancelDial()
	}
	s.answerConnectors(ctx, seam.ErrDisconnected)
	s.failIQs(ctx, seam.ErrDisconnected)
	for _, pid := range s.rooms {
		ctx.Stop(pid)
	}
	if s.conn != nil {
		conn, grace, self, root := s.conn, s.cfg.CloseGrace, ctx.Self(), ctx.ActorSystem().Root
		go func() {
			conn.Close(grace)
			root.Send(self, &connFinished{})
		}()
	} else {
		s.connClosed = true
	}
	s.maybeDone(ctx)
}

// maybeDone answers Disconnect once every room has stopped and the connection's
// goroutines have ended.
func (s *Session) maybeDone(ctx actor.Context) {
	if s.state != closing && s.state != closed {
		return
	}
	if len(s.rooms) > 0 || !s.connClosed {
		return
	}
	s.state = closed
	for _, pid := range s.disconnectors {
		ctx.Send(pid, &Disconnected{})
	}
	s.disconnectors = nil
}

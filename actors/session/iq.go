package session

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/seam"
)

// IQ matching: every IQ the rooms and archives send goes out here, and its
// answer (or a timeout, or the lost link) goes back to whoever asked. MAM rows
// are not IQs: each goes straight to the archive that asked for its query id.

type pendingIQ struct {
	req     IQ
	replyTo *actor.PID
	timer   *time.Timer
	sent    time.Time
}

// iqDeadline is when an IQ times out. Its own Timeout, on a server that
// answers promptly; on a loaded one, whose answers take long (the smoothed
// round trip, srtt), four round trips, up to MaxIQStretch × Timeout: an answer
// that is only slow is waited for, while one a prompt server never sends still
// times out in Timeout. The keepalive ping keeps its own deadline (ping).
func (s *Session) iqDeadline(p *pendingIQ) time.Time {
	if p.req.ID == s.pingID {
		return p.sent.Add(p.req.Timeout)
	}
	return p.sent.Add(min(MaxIQStretch*p.req.Timeout, max(p.req.Timeout, 4*s.srtt)))
}

// MaxIQStretch bounds how far a loaded server stretches an IQ's timeout, in
// multiples of it: whoever guards a chain of IQs against a lost answer allows
// for it.
const MaxIQStretch = 3

// answered takes the round trip of an answered IQ into srtt (weight 1/8, as
// TCP smooths its own).
func (s *Session) answered(p *pendingIQ) {
	rtt := time.Since(p.sent)
	if s.srtt == 0 {
		s.srtt = rtt
		return
	}
	s.srtt += (rtt - s.srtt) / 8
}

// onIQTimer: an IQ's timer fired; it times out unless the server's load gave
// it more time.
func (s *Session) onIQTimer(ctx actor.Context, id string) {
	p, ok := s.iqs[id]
	if !ok {
		return
	}
	if left := time.Until(s.iqDeadline(p)); left > 0 {
		p.timer = s.after(ctx, left, &iqTimedOut{id: id})
		return
	}
	s.takeIQ(id)
	ctx.Send(p.replyTo, &IQResult{ID: id, Err: fmt.Errorf("%w: IQ to %q after %s", vocab.ErrIQTimeout, p.req.To, time.Since(p.sent).Round(time.Millisecond))})
}

// takeIQ removes the IQ in flight with id, and its query id.
func (s *Session) takeIQ(id string) (*pendingIQ, bool) {
	p, ok := s.iqs[id]
	if !ok {
		return nil, false
	}
	p.timer.Stop()
	delete(s.iqs, id)
	if p.req.QueryID != "" {
		delete(s.queries, p.req.QueryID)
	}
	return p, true
}

func (s *Session) failIQs(ctx actor.Context, err error) {
	for id := range s.iqs {
		p, _ := s.takeIQ(id)
		ctx.Send(p.replyTo, &IQResult{ID: id, Err: err})
	}
}

func (s *Session) sendIQ(ctx actor.Context, m *IQ) {
	if s.phase != online {
		err := fmt.Errorf("%w: %w", vocab.ErrLinkLost, seam.ErrNotConnected)
		if s.phase >= closing {
			err = seam.ErrDisconnected
		}
		ctx.Send(replyTo(ctx), &IQResult{ID: m.ID, Err: err})
		return
	}
	if _, dup := s.iqs[m.ID]; dup {
		ctx.Send(replyTo(ctx), &IQResult{ID: m.ID, Err: fmt.Errorf("%w: %q", ErrDuplicateIQ, m.ID)})
		return
	}
	if _, dup := s.queries[m.QueryID]; dup && m.QueryID != "" {
		ctx.Send(replyTo(ctx), &IQResult{ID: m.ID, Err: fmt.Errorf("%w: query id %q", ErrDuplicateIQ, m.QueryID)})
		return
	}
	if m.Timeout <= 0 {
		m.Timeout = defaults.IQTimeout
	}
	p := &pendingIQ{req: *m, replyTo: replyTo(ctx), sent: time.Now()}
	p.timer = s.after(ctx, m.Timeout, &iqTimedOut{id: m.ID})
	s.iqs[m.ID] = p
	if m.QueryID != "" {
		s.queries[m.QueryID] = m.ID
	}
	if err := s.write(m.Stanza); errors.Is(err, vocab.ErrSendQueueFull) || errors.Is(err, vocab.ErrStanzaTooLarge) {
		s.takeIQ(m.ID)
		ctx.Send(p.replyTo, &IQResult{ID: m.ID, Err: fmt.Errorf("session: IQ to %q not sent (the link is fine; retry later): %w", m.To, err)})
	}
}

// replyTo is who asked: the sender, or the session itself for its own pings.
func replyTo(ctx actor.Context) *actor.PID {
	if p := ctx.Sender(); p != nil {
		return p
	}
	return ctx.Self()
}

func (s *Session) onMAMResult(ctx actor.Context, m stanza.Message) {
	p, ok := s.iqs[s.queries[m.MAM.QueryID]]
	if !ok || !stanza.SameBare(m.From, p.req.To) || stanza.Resource(m.From) != "" {
		s.log.Debug("dropped a MAM result no query of ours asked for", slog.String("from", m.From), slog.String("queryid", m.MAM.QueryID))
		return
	}
	r := *m.MAM
	if r.Unreadable != "" {
		// An unreadable row: keep it marked so the archive fails the page.
		r.ID = ""
	}
	// Sent before the query's answer, by the same sender: the asker has every
	// row when the answer comes.
	ctx.Send(p.replyTo, &MAMRow{QueryID: m.MAM.QueryID, Row: r})
}

func (s *Session) onIQ(ctx actor.Context, iq stanza.IQ) {
	switch iq.Type {
	case "result", "error":
		p, ok := s.iqs[iq.ID]
		if !ok || !s.answersTo(iq.From, p.req.To) {
			s.log.Debug("dropped an IQ answer nobody waits for", slog.String("id", iq.ID), slog.String("from", iq.From))
			return
		}
		s.takeIQ(iq.ID)
		s.answered(p)
		ctx.Send(p.replyTo, &IQResult{ID: iq.ID, IQ: iq})
	case "get", "set":
		// A request from a room occupant is the room's business (its nick probe
		// among them); anything else the runtime doesn't serve.
		if pid, ok := s.rooms[strings.ToLower(stanza.Bare(iq.From))]; ok {
			ctx.Send(pid, iq)
			return
		}
		_ = s.write(stanza.ErrorReplyIQ(iq.From, iq.ID, "service-unavailable"))
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

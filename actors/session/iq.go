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

// iqTable is the IQs in flight: by id, the MAM queries among them by query
// id, and the smoothed round trip of those the server answered (srtt), which
// gives a loaded server's IQs more time. It knows nothing of actors: the
// session starts and stops the timers it holds.
type iqTable struct {
	byID    map[string]*pendingIQ
	byQuery map[string]string // query id → IQ id
	srtt    time.Duration
}

func newIQTable() iqTable {
	return iqTable{byID: map[string]*pendingIQ{}, byQuery: map[string]string{}}
}

// add records p, unless its id or its query id is in flight already (the
// error says which).
func (t *iqTable) add(p *pendingIQ) error {
	if _, dup := t.byID[p.req.ID]; dup {
		return fmt.Errorf("%w: %q", ErrDuplicateIQ, p.req.ID)
	}
	if _, dup := t.byQuery[p.req.QueryID]; dup && p.req.QueryID != "" {
		return fmt.Errorf("%w: query id %q", ErrDuplicateIQ, p.req.QueryID)
	}
	t.byID[p.req.ID] = p
	if p.req.QueryID != "" {
		t.byQuery[p.req.QueryID] = p.req.ID
	}
	return nil
}

func (t *iqTable) get(id string) (*pendingIQ, bool) {
	p, ok := t.byID[id]
	return p, ok
}

// forQuery is the IQ in flight whose MAM query id is qid.
func (t *iqTable) forQuery(qid string) (*pendingIQ, bool) { return t.get(t.byQuery[qid]) }

// take removes the IQ with id (and its query id), stopping its timer.
func (t *iqTable) take(id string) (*pendingIQ, bool) {
	p, ok := t.byID[id]
	if !ok {
		return nil, false
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	delete(t.byID, id)
	if p.req.QueryID != "" {
		delete(t.byQuery, p.req.QueryID)
	}
	return p, true
}

// takeAll removes every IQ in flight.
func (t *iqTable) takeAll() []*pendingIQ {
	all := make([]*pendingIQ, 0, len(t.byID))
	for id := range t.byID {
		p, _ := t.take(id)
		all = append(all, p)
	}
	return all
}

// deadline is when p times out. Its own Timeout, on a server that answers
// promptly; on a loaded one, whose answers take long (srtt), four round
// trips, up to MaxIQStretch × Timeout: an answer that is only slow is waited
// for, while one a prompt server never sends still times out in Timeout.
// fixed: p keeps its own deadline (the keepalive ping).
func (t *iqTable) deadline(p *pendingIQ, fixed bool) time.Time {
	if fixed {
		return p.sent.Add(p.req.Timeout)
	}
	return p.sent.Add(min(MaxIQStretch*p.req.Timeout, max(p.req.Timeout, 4*t.srtt)))
}

// MaxIQStretch bounds how far a loaded server stretches an IQ's timeout, in
// multiples of it: whoever guards a chain of IQs against a lost answer allows
// for it.
const MaxIQStretch = 3

// answered takes the round trip of an answered IQ (now - p.sent) into srtt
// (weight 1/8, as TCP smooths its own).
func (t *iqTable) answered(p *pendingIQ, now time.Time) {
	rtt := now.Sub(p.sent)
	if t.srtt == 0 {
		t.srtt = rtt
		return
	}
	t.srtt += (rtt - t.srtt) / 8
}

// newLink forgets the round trips of the link before (a new link, a new
// server load).
func (t *iqTable) newLink() { t.srtt = 0 }

// onIQTimer: an IQ's timer fired; it times out unless the server's load gave
// it more time.
func (s *Session) onIQTimer(ctx actor.Context, id string) {
	p, ok := s.iqs.get(id)
	if !ok {
		return
	}
	if left := time.Until(s.iqs.deadline(p, id == s.pingID)); left > 0 {
		p.timer = s.after(ctx, left, &iqTimedOut{id: id})
		return
	}
	s.iqs.take(id)
	ctx.Send(p.replyTo, &IQResult{ID: id, Err: fmt.Errorf("%w: IQ to %q after %s", vocab.ErrIQTimeout, p.req.To, time.Since(p.sent).Round(time.Millisecond))})
}

func (s *Session) failIQs(ctx actor.Context, err error) {
	for _, p := range s.iqs.takeAll() {
		ctx.Send(p.replyTo, &IQResult{ID: p.req.ID, Err: err})
	}
}

func (s *Session) sendIQ(ctx actor.Context, m *IQ) {
	if !s.linked() {
		err := fmt.Errorf("%w: %w", vocab.ErrLinkLost, seam.ErrNotConnected)
		if s.phase >= closing {
			err = seam.ErrDisconnected
		}
		ctx.Send(replyTo(ctx), &IQResult{ID: m.ID, Err: err})
		return
	}
	if m.Timeout <= 0 {
		m.Timeout = defaults.IQTimeout
	}
	p := &pendingIQ{req: *m, replyTo: replyTo(ctx), sent: time.Now()}
	if err := s.iqs.add(p); err != nil {
		ctx.Send(p.replyTo, &IQResult{ID: m.ID, Err: err})
		return
	}
	p.timer = s.after(ctx, m.Timeout, &iqTimedOut{id: m.ID})
	if err := s.write(m.Stanza); errors.Is(err, vocab.ErrSendQueueFull) || errors.Is(err, vocab.ErrStanzaTooLarge) {
		s.iqs.take(m.ID)
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
	p, ok := s.iqs.forQuery(m.MAM.QueryID)
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
		p, ok := s.iqs.get(iq.ID)
		if !ok || !s.answersTo(iq.From, p.req.To) {
			s.log.Debug("dropped an IQ answer nobody waits for", slog.String("id", iq.ID), slog.String("from", iq.From))
			return
		}
		s.iqs.take(iq.ID)
		s.iqs.answered(p, time.Now())
		ctx.Send(p.replyTo, &IQResult{ID: iq.ID, IQ: iq})
	case "get", "set":
		// A request from a room occupant is the room's business (its nick probe
		// among them); anything else the runtime doesn't serve.
		if pid, ok := s.rooms.of(iq.From); ok {
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

// Package archive is the archive actor: one per room, a child of the room actor.
// It answers the room's and the runtime's reads of the room's XEP-0313 message
// archive (MAM), paging with XEP-0059 result set management through the session,
// and turns archive rows into seam messages exactly as the room turns live
// reflections into them.
package archive

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/seam"
)

// ErrStalled: the archive answered a page that doesn't advance; paging stops
// rather than loop.
var ErrStalled = errors.New("archive: page did not advance")

// Config configures an archive actor.
type Config struct {
	Room      string // the room's bare JID, the archive's JID
	Topic     seam.Topic
	Session   *actor.PID
	IQTimeout time.Duration
	PageSize  int // rows asked per MAM page
	Logger    *slog.Logger
}

// Query reads the archive. Since nil: the newest Limit messages. Since non-nil:
// up to Limit messages strictly after *Since; "" is the start of the archive.
// Answer: *Result.
type Query struct {
	Since *seam.Cursor
	Limit int
}

// Entry is a message read from the archive with what the room needs to resolve
// its own posts.
type Entry struct {
	Message  seam.Message
	OriginID string
}

// Result answers Query.
type Result struct {
	Entries    []Entry
	NextCursor seam.Cursor
	// Missing: the room doesn't exist (never created, or destroyed); Entries is
	// empty and NextCursor is "" (the start).
	Missing bool
	Err     error
}

// Messages returns the entries' messages.
func (r *Result) Messages() []seam.Message {
	out := make([]seam.Message, len(r.Entries))
	for i, e := range r.Entries {
		out[i] = e.Message
	}
	return out
}

// Tail asks for the id of the archive's newest row ("" when empty). Answer:
// *TailResult.
type Tail struct{}

// TailResult answers Tail.
type TailResult struct {
	ID  string
	Err error
}

// Archive is the archive actor.
type Archive struct{ cfg Config }

// Props returns an archive actor's props.
func Props(cfg Config) *actor.Props {
	if cfg.PageSize <= 0 {
		cfg.PageSize = 50
	}
	if cfg.IQTimeout <= 0 {
		cfg.IQTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return actor.PropsFromProducer(func() actor.Actor { return &Archive{cfg: cfg} })
}

// Receive handles one message.
func (a *Archive) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Query:
		q := &query{a: a, replyTo: ctx.Sender(), limit: m.Limit}
		if m.Since == nil {
			q.backward = true
		} else {
			q.after = string(*m.Since)
			q.next = seam.Cursor(q.after)
		}
		q.page(ctx)
	case *Tail:
		sender := ctx.Sender()
		a.ask(ctx, stanza.Page{Max: 1, Last: true}, func(res *session.IQResult) {
			rows, fin, err := a.check(res, stanza.Page{Last: true})
			switch {
			case errors.Is(err, errMissing):
				ctx.Send(sender, &TailResult{})
			case err != nil:
				ctx.Send(sender, &TailResult{Err: err})
			case len(rows) > 0:
				ctx.Send(sender, &TailResult{ID: rows[len(rows)-1].ID})
			default:
				ctx.Send(sender, &TailResult{ID: fin.Last})
			}
		})
	}
}

// query is one Query in progress: a chain of pages.
type query struct {
	a        *Archive
	replyTo  *actor.PID
	limit    int
	backward bool
	after    string // forward: the next page starts strictly after this id
	before   string // backward: the next page ends strictly before this id
	entries  []Entry
	newest   string      // backward: the newest row seen
	next     seam.Cursor // forward: the cursor to answer with
}

func (q *query) page(ctx actor.Context) {
	p := stanza.Page{Max: min(q.limit-len(q.entries), q.a.cfg.PageSize)}
	switch {
	case q.backward && q.before == "":
		p.Last = true
	case q.backward:
		p.Before = q.before
	default:
		p.After = q.after
	}
	q.a.ask(ctx, p, func(res *session.IQResult) {
		rows, fin, err := q.a.check(res, p)
		if err != nil {
			q.fail(ctx, p, err)
			return
		}
		if q.backward {
			q.onBackward(ctx, p, rows, fin)
		} else {
			q.onForward(ctx, p, rows, fin)
		}
	})
}

func (q *query) fail(ctx actor.Context, p stanza.Page, err error) {
	switch {
	case errors.Is(err, errMissing) && p.After == "" && p.Before == "":
		// No room: a never-posted topic. Its page is empty and starts at the start.
		ctx.Send(q.replyTo, &Result{Missing: true})
	case errors.Is(err, errMissing) && p.After != "":
		ctx.Send(q.replyTo, &Result{Err: fmt.Errorf("%w: %q is not in the archive of %s (never issued, or expired)", seam.ErrUnknownCursor, p.After, q.a.cfg.Room)})
	default:
		ctx.Send(q.replyTo, &Result{Err: err})
	}
}

func (q *query) onForward(ctx actor.Context, p stanza.Page, rows []stanza.MAMResult, fin stanza.Fin) {
	for _, r := range rows {
		q.next = seam.Cursor(r.ID)
		if e, ok := q.a.entry(r); ok {
			q.entries = append(q.entries, e)
			if len(q.entries) == q.limit {
				q.done(ctx)
				return
			}
		}
	}
	if fin.Complete || len(rows) == 0 && fin.Last == "" {
		q.done(ctx)
		return
	}
	last := fin.Last
	if last == "" {
		last = rows[len(rows)-1].ID
	}
	if last == q.after {
		q.fail(ctx, p, fmt.Errorf("%w: %s answered the page after %q with the same position", ErrStalled, q.a.cfg.Room, q.after))
		return
	}
	q.after = last
	q.next = seam.Cursor(last)
	q.page(ctx)
}

func (q *query) onBackward(ctx actor.Context, p stanza.Page, rows []stanza.MAMResult, fin stanza.Fin) {
	if q.newest == "" && len(rows) > 0 {
		q.newest = rows[len(rows)-1].ID
	}
	var page []Entry
	for _, r := range rows {
		if e, ok := q.a.entry(r); ok {
			page = append(page, e)
		}
	}
	if room := q.limit - len(q.entries); len(page) > room {
		page = page[len(page)-room:]
	}
	q.entries = append(page, q.entries...)
	if len(q.entries) == q.limit || fin.Complete || len(rows) == 0 {
		q.next = seam.Cursor(q.newest)
		if n := len(q.entries); n > 0 {
			q.next = q.entries[n-1].Message.Cursor
		}
		q.done(ctx)
		return
	}
	first := fin.First
	if first == "" {
		first = rows[0].ID
	}
	if first == q.before {
		q.fail(ctx, p, fmt.Errorf("%w: %s answered the page before %q with the same position", ErrStalled, q.a.cfg.Room, q.before))
		return
	}
	q.before = first
	q.page(ctx)
}

func (q *query) done(ctx actor.Context) {
	ctx.Send(q.replyTo, &Result{Entries: q.entries, NextCursor: q.next})
}

// ask sends one MAM page query through the session and continues with its answer
// inside this actor, without blocking it.
func (a *Archive) ask(ctx actor.Context, p stanza.Page, then func(*session.IQResult)) {
	id, qid := rand.Text(), rand.Text()
	req := &session.IQ{ID: id, To: a.cfg.Room, QueryID: qid, Timeout: a.cfg.IQTimeout,
		Stanza: stanza.MAMQueryIQ(a.cfg.Room, id, qid, p)}
	f := ctx.RequestFuture(a.cfg.Session, req, a.cfg.IQTimeout+5*time.Second)
	ctx.ReenterAfter(f, func(res any, err error) {
		r, ok := res.(*session.IQResult)
		switch {
		case err != nil:
			then(&session.IQResult{Err: fmt.Errorf("archive: query of %s: %w", a.cfg.Room, err)})
		case !ok:
			then(&session.IQResult{Err: fmt.Errorf("archive: query of %s: unexpected answer %T", a.cfg.Room, res)})
		default:
			then(r)
		}
	})
}

var errMissing = errors.New("archive: item-not-found")

// check turns an IQ answer into the page's rows and <fin/>, or an error.
func (a *Archive) check(res *session.IQResult, p stanza.Page) ([]stanza.MAMResult, stanza.Fin, error) {
	if res.Err != nil {
		return nil, stanza.Fin{}, res.Err
	}
	if e := res.IQ.Error; e != nil || res.IQ.Type == "error" {
		if e == nil {
			e = &stanza.Error{}
		}
		switch e.Condition {
		case "item-not-found":
			return nil, stanza.Fin{}, errMissing
		case "service-unavailable", "feature-not-implemented":
			return nil, stanza.Fin{}, fmt.Errorf("%w: %s refused a MAM query (%v); enable MAM for the MUC service (Prosody: muc_mam; ejabberd: mod_mam)", seam.ErrNoArchive, a.cfg.Room, e)
		default:
			return nil, stanza.Fin{}, fmt.Errorf("archive: %s refused a MAM query: %v", a.cfg.Room, e)
		}
	}
	fin, err := stanza.ParseFin(res.IQ.Payload)
	if err != nil {
		return nil, stanza.Fin{}, fmt.Errorf("archive: answer of %s: %w", a.cfg.Room, err)
	}
	for _, r := range res.MAM {
		if r.ID == "" {
			return nil, stanza.Fin{}, fmt.Errorf("archive: %s sent an unreadable or id-less result", a.cfg.Room)
		}
	}
	return res.MAM, fin, nil
}

// entry turns an archive row into a message; rows without a body (chat states,
// subject changes) and rows not from the room's occupants are not messages.
func (a *Archive) entry(r stanza.MAMResult) (Entry, bool) {
	f := r.Message
	if !f.HasBody || f.Body == "" || !stanza.SameBare(f.From, a.cfg.Room) {
		return Entry{}, false
	}
	return Entry{Message: ToMessage(a.cfg.Topic, a.cfg.Room, f.From, f.Body, r.ID, f.Stamp), OriginID: f.OriginID}, true
}

// ToMessage builds a seam message from a room message, live or archived, so both
// paths agree on every field: the id and cursor are the room's stanza-id (which
// is the archive id), the sender is the occupant nick.
func ToMessage(topic seam.Topic, room, from, body, id string, stamp time.Time) seam.Message {
	sender := stanza.Resource(from)
	if sender == "" {
		sender = stanza.Bare(room) // the room itself speaking
	}
	if stamp.IsZero() {
		stamp = time.Now()
	}
	return seam.Message{
		Topic:        topic,
		SenderHandle: seam.Handle(sender),
		Content:      body,
		Timestamp:    stamp.UTC(),
		BackendMsgID: seam.BackendMsgID(id),
		Cursor:       seam.Cursor(id),
		Mentions:     seam.ParseMentions(body),
	}
}

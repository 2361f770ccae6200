// Package archive is the archive actor: one per room, a child of the room actor.
// It answers the room's reads of the room's XEP-0313 message archive (MAM):
// the room's own (replay, gap repair, lagging subscribers, PostOnce) and the
// ones it serves for the runtime's FetchRecent. It pages with XEP-0059 result
// set management, sending each query through the session, which hands it the
// query's rows by query id. It turns archive rows into seam messages exactly as
// the room turns live reflections into them (stanza.SeamMessage), and it alone
// decides a read's NextCursor (Result.Page).
//
// Servers differ, and the archive actor makes them agree at the seam:
//   - Before its first read it checks (disco#info) that the room, or for a room
//     that doesn't exist yet its MUC service, archives at all: a room without an
//     archive answers MAM queries with an empty history on some servers
//     (ejabberd), which must never pass for one.
//   - A cursor to read after is verified unless the archive itself showed it
//     recently: some servers (ejabberd) answer an unknown RSM <after> id with a
//     page from elsewhere instead of an error, and may reflect a message live a
//     moment before its archive has it. A cursor not found is looked for again
//     a few times over about a second before it is declared unknown.
//   - A row is taken once per read: one whose id the read already showed (in
//     this page or an earlier one) or that is the read's own cursor is dropped
//     and counted (observe.RowDropper). ejabberd, under concurrent writes,
//     sometimes answers the same row two to four times in one page. Ids are
//     opaque, so "after the cursor" can only be checked as "not the cursor and
//     not seen before in this read".
//   - A read is bounded (Config.MaxExtraPages, MaxIdlePages,
//     MaxNonMessageRows): a server whose paging never ends fails it with
//     vocab.ErrArchiveRunaway. And it stops as soon as nobody waits for it (Query.Done):
//     no page is asked for after.
package archive

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/internal/mailbox"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
)

// ErrAbandoned: nobody waits for the read any more (Query.Done was closed); no
// further page was asked for.
var ErrAbandoned = errors.New("archive: read abandoned: nobody waits for it")

// Config configures an archive actor.
type Config struct {
	Room      string // the room's bare JID, the archive's JID
	Topic     seam.Topic
	Session   *actor.PID
	IQTimeout time.Duration
	PageSize  int // rows asked per MAM page
	// MaxResults bounds the rows one MAM query may collect: a server sending
	// more fails the query instead of growing memory without bound.
	MaxResults int
	// MaxExtraPages bounds the MAM queries of one read beyond the
	// ceil(Limit/PageSize) its limit needs; MaxIdlePages the pages in a row
	// that bring no new row though the server says there is more;
	// MaxNonMessageRows the rows one read passes over that aren't messages.
	// Past any of them the read fails with vocab.ErrArchiveRunaway (the room passes the
	// internal/defaults MaxArchive* constants).
	MaxExtraPages     int
	MaxIdlePages      int
	MaxNonMessageRows int
	Logger            *slog.Logger // the room's, which names the room and topic: the archive adds neither
	// Metrics, when it implements observe.RowDropper, counts the rows a read
	// dropped as sent again (nil: not counted).
	Metrics observe.Room
}

// Forget tells the archive that the room it reads may have been destroyed
// and made anew (the room was left by removal): ids it saw before no longer
// count as known, so the next read after one verifies it. No answer.
type Forget struct{}

// Query reads the archive. Since nil: the newest Limit messages (Before
// non-nil: the newest Limit messages strictly before *Before). Since non-nil:
// up to Limit messages strictly after *Since; "" is the start of the archive.
// Answer: *Result.
type Query struct {
	Since *seam.Cursor
	// Before: with Since nil, where a read backwards starts (a room looking
	// for a relation's target older than what it has seen). Not verified: an
	// id the archive doesn't hold fails the read, or (ejabberd, whose ids are
	// stamps) reads before the moment it names.
	Before *seam.Cursor
	Limit  int
	// Trusted: Since is the room's own position (the id of a message it fanned
	// out, from the room's reflection or an earlier read), not a caller's
	// cursor. It is verified only when the first page is full: a server that
	// ignores an unknown cursor (ejabberd) answers the archive's newest page,
	// and a page that is not full then holds the whole archive, so nothing the
	// archive keeps is skipped unverified; a server that knows the cursor
	// answers the same page. This spares a rejoin's replay the extra request
	// (the archive's tail) in the common case of a short outage. An empty page
	// whose RSM count says the archive holds no rows at all is verified: the
	// cursor can't be in it (a room made anew).
	Trusted bool
	// Done, when closed, says nobody waits for the answer any more (the
	// caller's ctx.Done(), or a page its lagging subscribers left): no further
	// page is asked for, and the read ends with ErrAbandoned. It is only
	// looked at, never waited on (nil: never).
	Done <-chan struct{}
}

// Entry is a message read from the archive with what the room needs to resolve
// its own posts.
type Entry struct {
	Message  seam.Message
	OriginID string
	// From, ID, Body and Rel: the archived message's sender (its occupant
	// JID), its id attribute, its whole body and its relations, as
	// stanza.ParseMessage read them: the room applies the relations
	// (stanza.Apply) before the entry reaches anyone.
	From, ID, Body string
	Rel            stanza.Relations
	// RealJIDs: the sender's real JIDs as the archive shows them (see
	// stanza.Forwarded.RealJIDs); none in an anonymous room.
	RealJIDs []string
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

// Page is the read as seam.Backend.FetchRecent returns it, or its error. The
// NextCursor is the archive's, decided in one place: after the last message
// returned, or, when there is none, where the read started (Since), or the
// archive's newest row for a read of the newest messages of an empty page, or
// "" (the start) for a room that doesn't exist.
func (r *Result) Page() (seam.FetchRecentResult, error) {
	if r.Err != nil {
		return seam.FetchRecentResult{}, r.Err
	}
	return seam.FetchRecentResult{Messages: r.Messages(), NextCursor: r.NextCursor}, nil
}

// LiveResult is the answer to a read whose archive part ended at next (the
// archive's Result.NextCursor) with nothing, and which live messages (oldest
// first, already cut to the read's limit) completed: a long-poll. The same rule
// decides its NextCursor: after the last message, else where the archive read
// ended, else where the read started.
func LiveResult(since *seam.Cursor, next seam.Cursor, msgs []seam.Message) *Result {
	res := &Result{NextCursor: next}
	if since != nil && len(msgs) == 0 && res.NextCursor == "" {
		res.NextCursor = *since
	}
	for _, m := range msgs {
		res.Entries = append(res.Entries, Entry{Message: m})
		res.NextCursor = m.Cursor
	}
	return res
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
type Archive struct {
	cfg Config
	// archived: the room is known to keep an archive (checked once).
	archived bool
	checking bool
	waiting  []func(error) // reads waiting for the check
	known    map[string]time.Time
	// IQs in flight through the session, by IQ id and, for MAM queries, by
	// query id: the session sends each query's rows here (session.MAMRow),
	// then its answer.
	iqs     map[string]*pendingIQ
	queries map[string]*pendingIQ
}

type pendingIQ struct {
	to      string
	queryID string
	then    func(*session.IQResult)
	rows    []stanza.MAMResult
	tooMany bool
}

// knownFor is how long an id seen in the archive counts as known without being
// verified again (archives expire old messages).
const knownFor = 10 * time.Minute

// Props returns an archive actor's props.
func Props(cfg Config) *actor.Props {
	defaults.MustBeSet(cfg, "PageSize", "IQTimeout", "MaxResults", "MaxExtraPages", "MaxIdlePages", "MaxNonMessageRows")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return actor.PropsFromProducer(func() actor.Actor {
		return &Archive{cfg: cfg, known: map[string]time.Time{}, iqs: map[string]*pendingIQ{}, queries: map[string]*pendingIQ{}}
	}, actor.WithMailbox(mailbox.Unbounded()))
}

// Receive handles one message.
func (a *Archive) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Query:
		sender := ctx.Sender()
		a.whenChecked(ctx, func(err error) {
			switch {
			case errors.Is(err, errMissing):
				res := &Result{Missing: true}
				if m.Since != nil && *m.Since != "" {
					res = &Result{Err: fmt.Errorf("%w: %q: %s has no archive (it doesn't exist)", seam.ErrUnknownCursor, *m.Since, a.cfg.Room)}
				}
				ctx.Send(sender, res)
			case err != nil:
				ctx.Send(sender, &Result{Err: err})
			default:
				a.query(ctx, m, sender)
			}
		})
	case *retry:
		m.q.page(ctx)
	case *session.MAMRow:
		a.onRow(m)
	case *session.IQResult:
		a.onIQResult(m)
	case *Forget:
		// The room may be another by now: nothing seen in the old one
		// vouches for a cursor in it.
		clear(a.known)
	case *Tail:
		sender := ctx.Sender()
		a.whenChecked(ctx, func(err error) {
			switch {
			case errors.Is(err, errMissing):
				ctx.Send(sender, &TailResult{})
			case err != nil:
				ctx.Send(sender, &TailResult{Err: err})
			default:
				a.newest(ctx, func(id string, err error) { ctx.Send(sender, &TailResult{ID: id, Err: err}) })
			}
		})
	}
}

// ---- does the room keep an archive? ----

// whenChecked runs then once the room is known to keep an archive (err nil), to
// be missing (errMissing) or not to archive (seam.ErrNoArchive).
func (a *Archive) whenChecked(ctx actor.Context, then func(error)) {
	if a.archived {
		then(nil)
		return
	}
	a.waiting = append(a.waiting, then)
	if a.checking {
		return
	}
	a.checking = true
	a.disco(ctx, a.cfg.Room, func(features []string, err error) {
		switch {
		case errors.Is(err, errMissing):
			// No room yet: whether one would archive is the service's to say.
			service := a.cfg.Room[strings.IndexByte(a.cfg.Room, '@')+1:]
			a.disco(ctx, service, func(features []string, err error) {
				if err == nil && !has(features, stanza.NSMAM) {
					err = a.noArchive(service)
				} else if err == nil {
					err = errMissing
				}
				a.checked(err)
			})
			return
		case err == nil && !has(features, stanza.NSMAM):
			err = a.noArchive(a.cfg.Room)
		case err == nil:
			a.archived = true
		}
		a.checked(err)
	})
}

func (a *Archive) checked(err error) {
	a.checking = false
	waiting := a.waiting
	a.waiting = nil
	for _, then := range waiting {
		then(err)
	}
}

func (a *Archive) noArchive(jid string) error {
	return fmt.Errorf("%w: %s does not advertise %s; enable MAM for the MUC service (Prosody: muc_mam; ejabberd: mod_mam and the room option mam)", seam.ErrNoArchive, jid, stanza.NSMAM)
}

func (a *Archive) disco(ctx actor.Context, to string, then func([]string, error)) {
	id := rand.Text()
	req := &session.IQ{ID: id, To: to, Timeout: a.cfg.IQTimeout, Stanza: stanza.DiscoInfoIQ(to, id)}
	a.request(ctx, req, func(res *session.IQResult) {
		switch {
		case res.Err != nil:
			then(nil, res.Err)
		case res.IQ.Error != nil && res.IQ.Error.Condition == "item-not-found":
			then(nil, errMissing)
		case res.IQ.Error != nil || res.IQ.Type == "error":
			then(nil, fmt.Errorf("%w: disco#info of %s: %v", vocab.ErrArchiveRefused, to, res.IQ.Error))
		default:
			then(res.IQ.Features, nil)
		}
	})
}

func has(list []string, s string) bool { return slices.Contains(list, s) }

// ---- reading ----

func (a *Archive) query(ctx actor.Context, m *Query, replyTo *actor.PID) {
	q := &query{a: a, replyTo: replyTo, limit: m.Limit, done: m.Done}
	q.maxPages = (m.Limit+a.cfg.PageSize-1)/a.cfg.PageSize + a.cfg.MaxExtraPages
	if m.Since == nil {
		q.backward = true
		if m.Before != nil {
			q.before = string(*m.Before)
		}
	} else {
		q.after = string(*m.Since)
		q.next = seam.Cursor(q.after)
		q.verify = q.after != "" && !a.isKnown(q.after)
		q.since = q.after
		q.trusted = m.Trusted
	}
	q.page(ctx)
}

func (a *Archive) isKnown(id string) bool {
	t, ok := a.known[id]
	return ok && time.Since(t) < knownFor
}

// remember records ids the archive just showed; the map is pruned as it grows.
func (a *Archive) remember(rows []stanza.MAMResult) {
	now := time.Now()
	for _, r := range rows {
		a.known[r.ID] = now
	}
	if len(a.known) > 8192 {
		for id, t := range a.known {
			if now.Sub(t) >= knownFor || len(a.known) > 4096 {
				delete(a.known, id)
			}
		}
	}
}

// newest answers the id of the archive's newest row.
func (a *Archive) newest(ctx actor.Context, then func(string, error)) {
	p := stanza.Page{Max: 1, Last: true}
	a.ask(ctx, p, func(res *session.IQResult) {
		rows, fin, err := a.check(res)
		switch {
		case errors.Is(err, errMissing):
			then("", nil)
		case err != nil:
			then("", err)
		case len(rows) > 0:
			a.remember(rows)
			then(rows[len(rows)-1].ID, nil)
		default:
			then(fin.Last, nil)
		}
	})
}

// query is one Query in progress: a chain of pages.
type query struct {
	a        *Archive
	replyTo  *actor.PID
	limit    int
	backward bool
	after    string // forward: the next page starts strictly after this id
	before   string // backward: the next page ends strictly before this id
	since    string // forward: the cursor asked for
	verify   bool   // forward: since must be shown to exist before answering
	trusted  bool   // forward: since is the room's own position (Query.Trusted)
	tries    int    // verifications that didn't find since
	entries  []Entry
	newest   string      // backward: the newest row seen
	next     seam.Cursor // forward: the cursor to answer with
	// seen: the ids of the entries taken so far (bounded by limit); a row
	// with one of them is a repeat.
	seen map[string]struct{}
	// The read's bounds (Config.MaxExtraPages, MaxIdlePages,
	// MaxNonMessageRows) and whether anyone still waits for it (Query.Done).
	pages       int // page queries sent
	maxPages    int // the limit's pages and Config.MaxExtraPages
	idle        int // pages in a row without a new row, though not complete
	nonMessages int // rows passed over that aren't messages
	done        <-chan struct{}
}

// abandoned reports whether nobody waits for the read any more; then it
// answers ErrAbandoned, so the caller of every query method sends nothing more.
func (q *query) abandoned(ctx actor.Context) bool {
	select {
	case <-q.done:
	default:
		return false
	}
	q.a.cfg.Logger.Debug("archive: read abandoned by its caller; paging stops", "pages", q.pages) // the room's logger names the room
	ctx.Send(q.replyTo, &Result{Err: fmt.Errorf("%w (after %d pages of %s)", ErrAbandoned, q.pages, q.a.cfg.Room)})
	return true
}

// runaway fails the read for going past one of its bounds.
func (q *query) runaway(ctx actor.Context, p stanza.Page, why string) {
	err := fmt.Errorf("%w: %s: %s", vocab.ErrArchiveRunaway, q.a.cfg.Room, why)
	q.a.cfg.Logger.Warn("archive: a read went past its bounds; stopped", "err", err)
	q.fail(ctx, p, err)
}

func (q *query) page(ctx actor.Context) {
	if q.abandoned(ctx) {
		return
	}
	if q.pages >= q.maxPages {
		q.runaway(ctx, stanza.Page{}, fmt.Sprintf("%d pages and the archive still says there is more", q.pages))
		return
	}
	q.pages++
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
		rows, fin, err := q.a.check(res)
		if err != nil {
			q.fail(ctx, p, err)
			return
		}
		sent := len(rows)
		if rows = q.fresh(rows, p); sent > 0 && len(rows) == 0 && !fin.Complete {
			q.fail(ctx, p, fmt.Errorf("%w: %s answered a page with only rows it had already sent", vocab.ErrArchiveStalled, q.a.cfg.Room))
			return
		}
		if q.verify && q.trusted && sent < p.Max && (sent > 0 || fin.Count != 0) {
			// The room's own position, and a page that is not full: see
			// Query.Trusted. An empty page from an archive that counts no
			// rows at all can't hold the cursor: that one is verified.
			q.verify = false
		}
		if q.verify {
			q.verify = false
			q.verifySince(ctx, rows, func() { q.onPage(ctx, p, rows, fin) })
			return
		}
		q.a.remember(rows)
		q.onPage(ctx, p, rows, fin)
	})
}

// fresh drops the rows of a page the read has already shown: an id repeated
// in the page, an id of an entry already taken, or the page's own boundary
// (the cursor read after or before, or the read's Since). What it drops is
// counted; the rows kept are in the server's order.
func (q *query) fresh(rows []stanza.MAMResult, p stanza.Page) []stanza.MAMResult {
	out := rows[:0:0]
	page := make(map[string]struct{}, len(rows))
	for _, r := range rows {
		_, inPage := page[r.ID]
		_, inRead := q.seen[r.ID]
		if inPage || inRead || r.ID == q.since && q.since != "" || r.ID == p.After && p.After != "" || r.ID == p.Before && p.Before != "" {
			continue
		}
		page[r.ID] = struct{}{}
		out = append(out, r)
	}
	if n := len(rows) - len(out); n > 0 {
		q.a.cfg.Logger.Debug("archive: dropped rows sent again", "rows", n)
		if d, ok := q.a.cfg.Metrics.(observe.RowDropper); ok {
			d.ArchiveRowsDropped(n)
		}
	}
	return out
}

// take records an entry's id as seen by this read.
func (q *query) take(id seam.Cursor) {
	if q.seen == nil {
		q.seen = map[string]struct{}{}
	}
	q.seen[string(id)] = struct{}{}
}

func (q *query) onPage(ctx actor.Context, p stanza.Page, rows []stanza.MAMResult, fin stanza.Fin) {
	if q.backward {
		q.onBackward(ctx, p, rows, fin)
	} else {
		q.onForward(ctx, p, rows, fin)
	}
}

// verifySince shows that the cursor read after exists, from the first page's
// answer: the row just before that page's first row must be it (or, when the
// page is empty, the archive's newest row must be). A server that ignored an
// unknown cursor fails this.
func (q *query) verifySince(ctx actor.Context, rows []stanza.MAMResult, then func()) {
	if q.abandoned(ctx) {
		return
	}
	unknown := func() {
		if q.tries++; q.tries < len(verifyWaits) {
			// Perhaps reflected live but not archived yet: look again shortly.
			q.after, q.next, q.verify, q.entries, q.seen = q.since, seam.Cursor(q.since), true, nil, nil
			self, root := ctx.Self(), ctx.ActorSystem().Root
			time.AfterFunc(verifyWaits[q.tries], func() { root.Send(self, &retry{q}) })
			return
		}
		ctx.Send(q.replyTo, &Result{Err: fmt.Errorf("%w: %q is not in the archive of %s (never issued, or expired)", seam.ErrUnknownCursor, q.since, q.a.cfg.Room)})
	}
	check := func(id string, err error) {
		switch {
		case err != nil:
			ctx.Send(q.replyTo, &Result{Err: err})
		case id != q.since:
			unknown()
		default:
			q.a.remember(rows)
			q.a.known[q.since] = time.Now()
			then()
		}
	}
	if len(rows) == 0 {
		q.a.newest(ctx, check)
		return
	}
	p := stanza.Page{Max: 1, Before: rows[0].ID}
	q.a.ask(ctx, p, func(res *session.IQResult) {
		prev, _, err := q.a.check(res)
		switch {
		case err != nil && !errors.Is(err, errMissing):
			check("", err)
		case len(prev) == 0:
			check("", nil)
		default:
			check(prev[len(prev)-1].ID, nil)
		}
	})
}

// verifyWaits are the waits before looking for an unverified cursor again.
var verifyWaits = []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond}

// retry runs a query again (after a cursor wasn't found).
type retry struct{ q *query }

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
		e, ok := q.a.entry(r)
		if !ok {
			if q.passOver(ctx, p) {
				return
			}
			continue
		}
		q.entries = append(q.entries, e)
		q.take(e.Message.Cursor)
		if len(q.entries) == q.limit {
			q.finish(ctx)
			return
		}
	}
	if fin.Complete || len(rows) == 0 && fin.Last == "" {
		q.finish(ctx)
		return
	}
	if q.idleAgain(ctx, p, rows) {
		return
	}
	last := fin.Last
	if last == "" {
		last = rows[len(rows)-1].ID
	}
	if last == q.after {
		q.fail(ctx, p, fmt.Errorf("%w: %s answered the page after %q with the same position", vocab.ErrArchiveStalled, q.a.cfg.Room, q.after))
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
		} else if q.passOver(ctx, p) {
			return
		}
	}
	if space := q.limit - len(q.entries); len(page) > space {
		page = page[len(page)-space:]
	}
	for _, e := range page {
		q.take(e.Message.Cursor)
	}
	q.entries = append(page, q.entries...)
	if len(q.entries) == q.limit || fin.Complete || len(rows) == 0 {
		q.next = seam.Cursor(q.newest)
		if n := len(q.entries); n > 0 {
			q.next = q.entries[n-1].Message.Cursor
		}
		q.finish(ctx)
		return
	}
	first := fin.First
	if first == "" {
		first = rows[0].ID
	}
	if first == q.before {
		q.fail(ctx, p, fmt.Errorf("%w: %s answered the page before %q with the same position", vocab.ErrArchiveStalled, q.a.cfg.Room, q.before))
		return
	}
	q.before = first
	q.page(ctx)
}

// passOver counts a row that isn't a message; past Config.MaxNonMessageRows
// it fails the read (and reports true).
func (q *query) passOver(ctx actor.Context, p stanza.Page) bool {
	if q.nonMessages++; q.nonMessages <= q.a.cfg.MaxNonMessageRows {
		return false
	}
	q.runaway(ctx, p, fmt.Sprintf("more than %d rows that aren't messages", q.a.cfg.MaxNonMessageRows))
	return true
}

// idleAgain counts a page that brought no new row though the archive says
// there is more; past Config.MaxIdlePages in a row it fails the read (and
// reports true).
func (q *query) idleAgain(ctx actor.Context, p stanza.Page, rows []stanza.MAMResult) bool {
	if len(rows) > 0 {
		q.idle = 0
		return false
	}
	if q.idle++; q.idle < q.a.cfg.MaxIdlePages {
		return false
	}
	q.runaway(ctx, p, fmt.Sprintf("%d empty pages in a row, each saying there is more", q.idle))
	return true
}

func (q *query) finish(ctx actor.Context) {
	ctx.Send(q.replyTo, &Result{Entries: q.entries, NextCursor: q.next})
}

// ---- the session ----

// ask sends one MAM page query through the session and continues with its answer
// inside this actor, without blocking it.
func (a *Archive) ask(ctx actor.Context, p stanza.Page, then func(*session.IQResult)) {
	id, qid := rand.Text(), rand.Text()
	a.request(ctx, &session.IQ{ID: id, To: a.cfg.Room, QueryID: qid, Timeout: a.cfg.IQTimeout,
		Stanza: stanza.MAMQueryIQ(a.cfg.Room, id, qid, p)}, then)
}

// request sends req through the session; then runs with its answer (the
// session answers every IQ: with its result, a timeout, or the lost link). An
// ordinary request, not a future: the query's rows (session.MAMRow) and then its
// answer arrive in this actor's mailbox in the order the session sent them.
func (a *Archive) request(ctx actor.Context, req *session.IQ, then func(*session.IQResult)) {
	p := &pendingIQ{to: req.To, queryID: req.QueryID, then: then}
	a.iqs[req.ID] = p
	if req.QueryID != "" {
		a.queries[req.QueryID] = p
	}
	ctx.Request(a.cfg.Session, req)
}

// onRow files a MAM row with the query it answers.
func (a *Archive) onRow(m *session.MAMRow) {
	p, ok := a.queries[m.QueryID]
	switch {
	case !ok:
	case len(p.rows) >= a.cfg.MaxResults:
		p.tooMany = true
	default:
		p.rows = append(p.rows, m.Row)
	}
}

// onIQResult hands an answer, with the rows collected for it, to its request.
func (a *Archive) onIQResult(res *session.IQResult) {
	p, ok := a.iqs[res.ID]
	if !ok {
		return // asked before a restart of this actor
	}
	delete(a.iqs, res.ID)
	delete(a.queries, p.queryID)
	res.MAM = p.rows
	if p.tooMany && res.Err == nil {
		res.Err = fmt.Errorf("%w: %s sent more than %d results for one query", vocab.ErrArchiveRunaway, p.to, a.cfg.MaxResults)
	}
	p.then(res)
}

var errMissing = fmt.Errorf("%w: item-not-found", vocab.ErrArchiveRefused)

// check turns an IQ answer into the page's rows and <fin/>, or an error.
func (a *Archive) check(res *session.IQResult) ([]stanza.MAMResult, stanza.Fin, error) {
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
			return nil, stanza.Fin{}, fmt.Errorf("%w: %s refused a MAM query: %v", vocab.ErrArchiveRefused, a.cfg.Room, e)
		}
	}
	fin, err := stanza.ParseFin(res.IQ.Payload)
	if err != nil {
		return nil, stanza.Fin{}, fmt.Errorf("%w: answer of %s: %w", vocab.ErrArchiveGarbled, a.cfg.Room, err)
	}
	for _, r := range res.MAM {
		if r.ID == "" {
			return nil, stanza.Fin{}, fmt.Errorf("%w: %s sent an unreadable or id-less result", vocab.ErrArchiveGarbled, a.cfg.Room)
		}
		// The id becomes a message's id and cursor, which callers save and
		// give back: one that can't be given back is refused here.
		if err := stanza.CheckID(r.ID); err != nil {
			return nil, stanza.Fin{}, fmt.Errorf("%w: %s sent a result whose id can't be a cursor: %v", vocab.ErrArchiveGarbled, a.cfg.Room, err)
		}
	}
	for _, id := range []string{fin.First, fin.Last} {
		if err := stanza.CheckID(id); id != "" && err != nil {
			return nil, stanza.Fin{}, fmt.Errorf("%w: %s ended a page with an id that can't be a cursor: %v", vocab.ErrArchiveGarbled, a.cfg.Room, err)
		}
	}
	return res.MAM, fin, nil
}

// entry turns an archive row into a message; rows without a body or a
// relation (chat states, subject changes) and rows not from the room's
// occupants are not messages.
func (a *Archive) entry(r stanza.MAMResult) (Entry, bool) {
	f := r.Message
	if (!f.HasBody || f.Body == "") && f.Rel.IsZero() || !stanza.SameBare(f.From, a.cfg.Room) {
		return Entry{}, false
	}
	return Entry{Message: r.Seam(a.cfg.Topic, a.cfg.Room), OriginID: f.OriginID, RealJIDs: f.RealJIDs,
		From: f.From, ID: f.ID, Body: f.Body, Rel: f.Rel}, true
}

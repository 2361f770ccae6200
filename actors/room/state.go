package room

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cenkalti/backoff/v4"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/internal/ask"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/seam"
)

// life is where the room actor is in its own life.
type life int

const (
	unstarted life = iota // no incarnation ran yet
	running               // an incarnation ran: the next Started is a restart
	closing               // the runtime is disconnecting (a stop is not a failure)
)

// state is everything a room keeps; it outlives an incarnation of the actor.
// It holds what the machines share (configuration, the link, the timers, the
// staleness epoch) and the four machines, each of which owns its own state.
type state struct {
	cfg     Config
	log     *slog.Logger
	life    life
	self    *actor.PID
	archive *actor.PID
	replies *ask.Asker // where the answers to the room's requests come back

	// epoch bumps whenever work in flight becomes stale (a lost link, a new
	// join, a restart); answers carry the epoch they were asked in.
	epoch  int
	wire   wire
	timers map[timerKind]*time.Timer

	occ    occupancy
	ledger ledger
	fan    fanout
	stamps stamps // how a live message's server stamp is known (stamps.go)
	// seen: the room's recent messages, for mapping a relation's target
	// (relations.go).
	seen  *stanza.Seen
	reads reads
}

func newState(cfg Config) *state {
	s := &state{
		cfg:    cfg,
		log:    cfg.Logger.With(slog.String("topic", string(cfg.Topic)), slog.String("room", cfg.JID)),
		wire:   wire{link: cfg.Link},
		timers: map[timerKind]*time.Timer{},
	}
	s.replies = cfg.Replies
	if cfg.Online {
		s.wire.state = linkUp
	}
	s.occ = occupancy{s: s, nick: cfg.Nick, rejoinWait: backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(cfg.RejoinMin),
		backoff.WithMaxInterval(cfg.RejoinMax),
		backoff.WithMaxElapsedTime(0),
	)}
	s.ledger = ledger{s: s, posts: map[string]*pendingPost{}, settled: newOriginRing(256)}
	s.fan = fanout{s: s, recent: newIDRing(cfg.DedupWindow), allow: newAllowSet(cfg.Allow),
		ring: newLagRing(cfg.RingMessages, cfg.RingBytes), pages: map[string]*lagPage{}}
	s.reads = reads{s: s, waiters: map[int]*waiter{}}
	s.seen = stanza.NewSeen(cfg.DedupWindow)
	return s
}

type queuedReq struct {
	msg    any
	sender *actor.PID
}

// ---- the link ----

type linkState int

const (
	linkDown linkState = iota
	linkUp
)

// wire is the room's side of the session's link.
type wire struct {
	state linkState
	link  session.Link // the link's writer (nil: through the session)
	// outbox holds the stanzas the link's full queue refused, in order.
	outbox []outStanza
}

// outStanza is a stanza waiting in the outbox, with its fence (nil: none).
type outStanza struct {
	b     []byte
	fence func() error
}

func (s *state) online() bool { return s.wire.state == linkUp }

// send writes a stanza. The only error it returns is xmppconn.ErrStanzaTooLarge
// (nothing was sent). A stanza the link's full queue refuses waits in the
// outbox, with every stanza after it, and is written again shortly: the link is
// never dropped for it.
func (s *state) send(ctx actor.Context, b []byte) error { return s.sendFenced(ctx, b, nil) }

// sendFenced is send for a stanza the link's writer writes only while fence
// answers nil (see session.Link.SendFenced); nil: always.
func (s *state) sendFenced(ctx actor.Context, b []byte, fence func() error) error {
	w := &s.wire
	if w.link == nil {
		if fence == nil || fence() == nil {
			ctx.Send(s.cfg.Session, &session.Send{Stanza: b})
		}
		return nil
	}
	if len(w.outbox) > 0 {
		if len(b) > w.link.MaxStanza() {
			return fmt.Errorf("%w: %d bytes, over the link's %d-byte limit", vocab.ErrStanzaTooLarge, len(b), w.link.MaxStanza())
		}
		w.outbox = append(w.outbox, outStanza{b: b, fence: fence})
		return nil
	}
	switch err := w.link.SendFenced(b, fence); {
	case errors.Is(err, vocab.ErrSendQueueFull):
		w.outbox = append(w.outbox, outStanza{b: b, fence: fence})
		s.arm(ctx, 20*time.Millisecond, sendRetry)
	case errors.Is(err, vocab.ErrStanzaTooLarge):
		return err
	}
	// Any other error means the link is gone: so is the stanza, and LinkDown
	// follows.
	return nil
}

func (s *state) flushOutbox(ctx actor.Context) {
	w := &s.wire
	for len(w.outbox) > 0 && w.link != nil {
		err := w.link.SendFenced(w.outbox[0].b, w.outbox[0].fence)
		if errors.Is(err, vocab.ErrSendQueueFull) {
			s.arm(ctx, 20*time.Millisecond, sendRetry)
			return
		}
		w.outbox[0] = outStanza{}
		w.outbox = w.outbox[1:]
	}
	w.outbox = nil
}

// ---- asking: every answer comes back as a message ----

// iq sends an IQ through the session; the answer comes back to the room as a
// *session.IQResult carrying the IQ's id (an ordinary message, so it keeps its
// place behind the stanzas the session routed here before it).
func (s *state) iq(ctx actor.Context, to string, build func(id string) []byte) string {
	id := rand.Text()
	ctx.Request(s.cfg.Session, &session.IQ{ID: id, To: to, Stanza: build(id), Timeout: s.cfg.IQTimeout})
	return id
}

// readPurpose says which machine asked the archive, and why.
type readPurpose int

const (
	readGap     readPurpose = iota // fanout: everything after the last message fanned out
	readLagging                    // fanout: an archive page for lagging subscribers
	readLookup                     // ledger: is an idempotent post already in the archive?
	readWaiter                     // reads: a long-poll's read
	readFetch                      // reads: a plain read
	readTargets                    // relations: the rows before a relation, for its target
)

// read is a request to the archive, and the token its answer carries back.
type read struct {
	purpose readPurpose
	epoch   int
	post    *pendingPost // readLookup
	page    *lagPage     // readLagging
	waiter  *waiter      // readWaiter
	fetch   *Fetch       // readFetch, with sender
	sender  *actor.PID
	held    *archiveAnswer // readTargets: the answer that waits for it
}

// archiveAnswer is the archive's answer to a read, delivered as a message.
type archiveAnswer struct {
	read *read
	res  *archive.Result
	// lookedBack: the rows before its relations were read for their targets
	// (readTargets): its relations are applied as they stand.
	lookedBack bool
}

// tailAnswer is the archive's answer to a Tail, delivered as a message.
type tailAnswer struct {
	epoch int
	res   *archive.TailResult
}

// spawned is the session's answer to spawning a subscriber, as a message.
type spawned struct {
	sender *actor.PID
	gate   *subscriber.Gate
	pid    *actor.PID
	err    error
}

// ask sends m to pid and delivers the answer to the room as the message wrap
// makes of it (see the package doc: one reply style). The request's sender is
// a token of the runtime's reply address (internal/ask): the answer, a dead
// letter or the timeout comes back to the room once, a late or second answer
// is dropped there, and the actor system's registry is not touched; no
// goroutine waits for the answer.
func (s *state) ask(ctx actor.Context, pid *actor.PID, m any, timeout time.Duration, wrap func(res any, err error) any) {
	root, room := ctx.ActorSystem().Root, ctx.Self()
	if s.replies == nil { // a room made without the runtime's (tests): one of its own
		replies, err := ask.New(ctx.ActorSystem(), s.log)
		if err != nil {
			ctx.Send(room, wrap(nil, err))
			return
		}
		s.replies = replies
	}
	s.replies.Request(ctx, pid, m, timeout, func(res any, err error) { root.Send(room, wrap(res, err)) })
}

// readArchive asks the archive actor q for r; the answer comes back as an
// *archiveAnswer carrying r.
func (s *state) readArchive(ctx actor.Context, q *archive.Query, r *read) {
	// The archive answers every query, each page within the IQ timeout, in at
	// most limit/page pages and its cursor's verification (a long read on a slow
	// archive takes minutes: Prosody's file storage reads the whole archive for
	// every page). The future's timeout only guards against an archive actor
	// gone wrong.
	r.epoch = s.epoch
	pages := q.Limit/max(1, s.cfg.PageSize) + 8
	s.ask(ctx, s.archive, q, time.Duration(pages)*session.MaxIQStretch*s.cfg.IQTimeout, func(res any, err error) any {
		a, ok := res.(*archive.Result)
		if !ok {
			a = &archive.Result{Err: fmt.Errorf("%w: room: reading the archive of %s: no answer from the archive actor (%v)", vocab.ErrActorFailed, s.cfg.JID, err)}
		}
		return &archiveAnswer{read: r, res: a}
	})
}

// ---- timers ----

type timerKind int

const (
	joinTimeout timerKind = iota
	retryJoin
	rejoinNow
	selfPing
	gapRetry
	feedRetry
	postTimeout
	waiterExpired
	sendRetry
)

// timer is the message a timer delivers to the room.
type timer struct {
	kind   timerKind
	epoch  int
	origin string // postTimeout
	id     int    // waiterExpired
}

// after delivers t to the room after d.
func (s *state) after(ctx actor.Context, d time.Duration, t *timer) *time.Timer {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	return time.AfterFunc(d, func() { root.Send(self, t) })
}

// arm sets the room-wide timer of t's kind, replacing one already set.
func (s *state) arm(ctx actor.Context, d time.Duration, kind timerKind) {
	if old := s.timers[kind]; old != nil {
		old.Stop()
	}
	s.timers[kind] = s.after(ctx, d, &timer{kind: kind, epoch: s.epoch})
}

func (s *state) disarm(kind timerKind) {
	if t := s.timers[kind]; t != nil {
		t.Stop()
		delete(s.timers, kind)
	}
}

func (s *state) stopTimers() {
	for k := range s.timers {
		s.disarm(k)
	}
	s.ledger.stopTimers()
	s.reads.stopTimers()
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// onTimer routes a timer to the machine that set it.
func (s *state) onTimer(ctx actor.Context, t *timer) {
	switch t.kind {
	case postTimeout:
		s.ledger.onTimeout(ctx, t.origin)
		return
	case waiterExpired:
		s.reads.onExpired(ctx, t.id)
		return
	case sendRetry:
		// Whatever the epoch: the outbox belongs to the link, and leave empties it.
		s.flushOutbox(ctx)
		return
	}
	if t.epoch != s.epoch {
		return
	}
	switch t.kind {
	case joinTimeout:
		s.occ.onTimeout(ctx)
	case retryJoin:
		if s.occ.phase == joining {
			s.occ.sendJoin(ctx)
		}
	case rejoinNow:
		if s.occ.phase == idle && s.online() && s.needsRoom() {
			s.occ.startRejoin(ctx)
		}
	case selfPing:
		s.occ.sendSelfPing(ctx)
	case gapRetry:
		if s.fan.stream == catchingUp && (s.occ.phase == joined || s.occ.phase == replaying) {
			s.fan.readGap(ctx)
		}
	case feedRetry:
		if s.occ.phase == joined {
			s.fan.feedAllLagging(ctx)
		}
	}
}

// originRing remembers the ids of the last n settled posts, for a caller that
// gave up on its post and asks what became of it (CancelPost). It keeps a
// seeded 64-bit hash of each origin-id, not the origin-id, and the post's id,
// in two fixed arrays allocated on the first post: 24 bytes a post plus the id
// itself (about 14 KiB at n = 256 with 24-character ids), nothing for a room
// that never posts, and add allocates nothing. find scans the n hashes: a
// cancel is rare. An origin-id is a runtime's own random text or a PostOnce
// key (the same key settles as the same archived post), so a hash names one
// post: two origin-ids share one with a chance of n/2^64.
type originRing struct {
	n      int
	seed   maphash.Seed
	hashes []uint64
	ids    []seam.BackendMsgID
	next   int // where the next post goes once the ring is full
}

func newOriginRing(n int) *originRing { return &originRing{n: max(n, 1), seed: maphash.MakeSeed()} }

func (r *originRing) add(origin string, id seam.BackendMsgID) {
	h := maphash.String(r.seed, origin)
	if r.hashes == nil {
		r.hashes, r.ids = make([]uint64, 0, r.n), make([]seam.BackendMsgID, 0, r.n)
	}
	if len(r.hashes) < r.n {
		r.hashes, r.ids = append(r.hashes, h), append(r.ids, id)
		return
	}
	r.hashes[r.next], r.ids[r.next] = h, id
	r.next = (r.next + 1) % r.n
}

// find returns the id of the settled post with origin.
func (r *originRing) find(origin string) (seam.BackendMsgID, bool) {
	h := maphash.String(r.seed, origin)
	for i, x := range r.hashes {
		if x == h {
			return r.ids[i], true
		}
	}
	return "", false
}

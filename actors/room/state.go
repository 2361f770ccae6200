package room

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cenkalti/backoff/v4"

	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/internal/xmppconn"
	"github.com/parley-go/parley-xmpp/seam"
)

type phase int

const (
	idle      phase = iota // not in the room
	checking               // pinned nick: asking the room who is in before joining
	joining                // join presence sent, waiting for our own presence
	verifying              // pinned nick: checking that no other session shares it
	settling               // in the room: unlocking it and reading the archive
	joined
)

// state is everything a room keeps; it outlives an incarnation of the actor.
type state struct {
	cfg     Config
	log     *slog.Logger
	started bool // an incarnation ran: the next Started is a restart
	closing bool // the runtime is disconnecting (not a failure)
	self    *actor.PID
	archive *actor.PID

	// epoch bumps whenever work in flight becomes stale (a lost link, a new
	// join, a restart); answers carry the epoch they were asked in.
	epoch int

	// occupancy
	online    bool
	link      session.Link // the link's writer, while it is up
	phase     phase
	rejoining bool   // this join regains a lost occupancy (not a request's first)
	nick      string // the nick we join as
	joinID    string
	joinStart time.Time
	retry     *backoff.ExponentialBackOff // cold-creation retries of one join
	rejoin    *backoff.ExponentialBackOff // waits before rejoining after removals
	probeID   string                      // the pinned-nick probe (see startVerifying)
	probeTok  string
	probeSeen bool
	itemsID   string // the pinned-nick check before joining (see checkNick)
	existsID  string // does the room exist yet? (PersistentRooms)
	creating  bool   // it didn't: this join creates it
	formID    string // the room configuration form asked for (PersistentRooms)
	configID  string // the persistent configuration submitted
	banned    error  // the room banned us; a later join refused without a readable reason is that
	// nickHeld: the pinned nick was verified as ours on a first join; rejoins
	// reclaim it without checking (a ghost of our own lost link may hold it).
	nickHeld bool
	pingID   string // the self-ping in flight
	timers   map[timerKind]*time.Timer

	// the archive position: the cursor of the last message fanned out, and
	// whether it is known yet (it is from the first join on)
	last       string
	haveLast   bool
	replaying  bool // this settle replays from last (a rejoin with someone to replay to)
	recent     *idRing
	catchingUp bool
	buffered   []live
	overflowed bool // live messages were dropped from buffered: read the archive again

	queued       []queuedReq // need the room joined
	awaitingLink []queuedReq // plain reads waiting for the link

	posts    map[string]*pendingPost // by origin-id
	ready    []string                // posts waiting for the window, in order (entries may be settled)
	inflight int                     // posts on the wire: sent, not resolved
	outbox   [][]byte                // stanzas the link's full queue refused, in order
	// serverEnded: the server ended the last link's stream; the replay after
	// the rejoin strikes the first post that didn't land (see resendInDoubt).
	serverEnded bool
	order       []string    // origin-ids in sending order (entries may be settled)
	settled     *originRing // recently settled posts, for CancelPost

	// allow: the senders whose messages are delivered (nil: all); occupants:
	// the real JIDs occupants' presences show, by nick (see trackOccupant).
	allow     *allowSet
	occupants map[string]string

	subs    []*sub
	unacked int // messages waiting in all the subscribers' queues
	waiters map[int]*waiter
	nextW   int
}

type queuedReq struct {
	msg    any
	sender *actor.PID
}

type pendingPost struct {
	post    *Post
	replyTo *actor.PID
	timer   *time.Timer
	// inDoubt: sent on a link that then died (or before a removal): the replay
	// decides whether it landed.
	inDoubt bool
	// cancelled: its caller gave up; it is resolved if seen, never resent.
	cancelled bool
	// answered: the room reflected it without an id of its own; the catch-up in
	// progress must find it in the archive.
	answered bool
	// looking: an idempotent post (OnceAfter) whose archive check is under way;
	// it is sent only if the check doesn't find it.
	looking bool
	// waiting: in ready, for the window; sent: on the wire in this occupancy;
	// everSent: it went out at least once (it may land: failing it now leaves
	// it in doubt).
	waiting, sent, everSent bool
	// strikes: links the server ended while this post was first in line;
	// onDeadLink: it was on the wire when the last occupancy ended.
	strikes    int
	onDeadLink bool
}

type sub struct {
	pid     *actor.PID
	gate    *subscriber.Gate
	unacked int
	// lagging: its queue filled; live messages wait in the archive for it and it
	// is fed from there, after cursor.
	lagging bool
	cursor  string // the last message sent to it
	reading bool   // a read of the archive for it is in flight
	empty   int    // reads in a row that found nothing after cursor
}

type waiter struct {
	id          int
	replyTo     *actor.PID
	since       *seam.Cursor
	limit       int
	timer       *time.Timer
	reading     bool
	archiveDone bool // the archive had nothing: waiting for a live message
	expired     bool
	next        seam.Cursor
	captured    []seam.Message
}

type live struct {
	msg    seam.Message
	origin string // the message's origin-id
	jid    string // the sender's real JID, when the room shows it
	// ours: the message may be this runtime's account's (see fromAccount): only
	// then can its origin-id resolve a post.
	ours bool
}

func newState(cfg Config) *state {
	return &state{
		cfg:     cfg,
		log:     cfg.Logger.With(slog.String("topic", string(cfg.Topic)), slog.String("room", cfg.JID)),
		online:  cfg.Online,
		link:    cfg.Link,
		nick:    cfg.Nick,
		timers:  map[timerKind]*time.Timer{},
		recent:  newIDRing(cfg.DedupWindow),
		posts:   map[string]*pendingPost{},
		settled: newOriginRing(256),
		waiters: map[int]*waiter{},
		rejoin: backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(cfg.RejoinMin),
			backoff.WithMaxInterval(cfg.RejoinMax),
			backoff.WithMaxElapsedTime(0),
		),
	}
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
	for _, p := range s.posts {
		stopTimer(p.timer)
	}
	for _, w := range s.waiters {
		stopTimer(w.timer)
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

func (s *state) onTimer(ctx actor.Context, t *timer) {
	switch t.kind {
	case postTimeout:
		s.onPostTimeout(ctx, t.origin)
		return
	case waiterExpired:
		s.onWaiterExpired(ctx, t.id)
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
		s.onJoinTimeout(ctx)
	case retryJoin:
		if s.phase == joining {
			s.sendJoin(ctx)
		}
	case rejoinNow:
		if s.phase == idle && s.online && s.needsRoom() {
			s.startRejoin(ctx)
		}
	case selfPing:
		s.sendSelfPing(ctx)
	case gapRetry:
		if s.catchingUp && (s.phase == joined || s.phase == settling) {
			s.readGap(ctx)
		}
	case feedRetry:
		if s.phase == joined {
			for _, sub := range s.subs {
				if sub.lagging && !sub.reading {
					s.feedLagging(ctx, sub)
				}
			}
		}
	}
}

// ---- plumbing ----

// send writes a stanza. The only error it returns is xmppconn.ErrStanzaTooLarge
// (nothing was sent). A stanza the link's full queue refuses waits in the
// outbox, with every stanza after it, and is written again shortly: the link is
// never dropped for it.
func (s *state) send(ctx actor.Context, b []byte) error {
	if s.link == nil {
		ctx.Send(s.cfg.Session, &session.Send{Stanza: b})
		return nil
	}
	if len(s.outbox) > 0 {
		if len(b) > s.link.MaxStanza() {
			return fmt.Errorf("%w: %d bytes, over the link's %d-byte limit", xmppconn.ErrStanzaTooLarge, len(b), s.link.MaxStanza())
		}
		s.outbox = append(s.outbox, b)
		return nil
	}
	switch err := s.link.Send(b); {
	case errors.Is(err, xmppconn.ErrSendQueueFull):
		s.outbox = append(s.outbox, b)
		s.arm(ctx, 20*time.Millisecond, sendRetry)
	case errors.Is(err, xmppconn.ErrStanzaTooLarge):
		return err
	}
	// Any other error means the link is gone: so is the stanza, and LinkDown
	// follows.
	return nil
}

func (s *state) flushOutbox(ctx actor.Context) {
	for len(s.outbox) > 0 && s.link != nil {
		err := s.link.Send(s.outbox[0])
		if errors.Is(err, xmppconn.ErrSendQueueFull) {
			s.arm(ctx, 20*time.Millisecond, sendRetry)
			return
		}
		s.outbox[0] = nil
		s.outbox = s.outbox[1:]
	}
	s.outbox = nil
}

// iq sends an IQ through the session; the answer comes back to the room as a
// *session.IQResult (an ordinary message, so it keeps its place behind the
// stanzas the session routed here before it).
func (s *state) iq(ctx actor.Context, to string, build func(id string) []byte) string {
	id := rand.Text()
	ctx.Request(s.cfg.Session, &session.IQ{ID: id, To: to, Stanza: build(id), Timeout: s.cfg.IQTimeout})
	return id
}

// originRing remembers the ids of the last n settled posts.
type originRing struct {
	n     int
	order []string
	ids   map[string]seam.BackendMsgID
}

func newOriginRing(n int) *originRing { return &originRing{n: n, ids: map[string]seam.BackendMsgID{}} }

func (r *originRing) add(origin string, id seam.BackendMsgID) {
	if _, ok := r.ids[origin]; ok {
		return
	}
	if len(r.order) == r.n {
		delete(r.ids, r.order[0])
		r.order = r.order[1:]
	}
	r.order = append(r.order, origin)
	r.ids[origin] = id
}

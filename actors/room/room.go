// Package room is the room actor: one per MUC room, a child of the session. It
// owns the room's join state (including the cold-creation race and the pinned
// nick check), the posts waiting for their reflection, the room's subscribers and
// the ordered fan-out to them, and the long-poll waiters of FetchRecent. Reads of
// the archive go to its child, the archive actor.
package room

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cenkalti/backoff/v4"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/seam"
)

// Errors a room answers with (besides seam's sentinels).
var (
	// ErrJoin: the room refused the join.
	ErrJoin = errors.New("room: join refused")
	// ErrJoinTimeout: the join didn't complete in time.
	ErrJoinTimeout = errors.New("room: join timed out")
	// ErrPostTimeout: no reflection came in time; the message may still land.
	ErrPostTimeout = errors.New("room: no reflection in time (the message may still have landed)")
	// ErrPostRefused: the room bounced the post with an error.
	ErrPostRefused = errors.New("room: post refused")
	// ErrNoStanzaID: the room reflected the post without an XEP-0359 stanza-id of
	// its own and the archive doesn't hold it either.
	ErrNoStanzaID = errors.New("room: reflection without the room's stanza-id")
	// ErrLeft: the room removed this connection (kick, ban, destruction, or a
	// lost link) while the request was in flight.
	ErrLeft = errors.New("room: no longer in the room")
)

// NickConflictError: the pinned nick is in use by another connection. It
// satisfies errors.Is(err, seam.ErrNickConflict).
type NickConflictError struct{ Nick, Room string }

func (e *NickConflictError) Error() string {
	return fmt.Sprintf("nick %q is already in use in %s by another connection: give each concurrent session its own nick, or leave nick unset for a random one", e.Nick, e.Room)
}

// Is makes the error match seam.ErrNickConflict.
func (e *NickConflictError) Is(target error) bool { return target == seam.ErrNickConflict }

// Config configures a room actor.
type Config struct {
	JID     string // bare JID of the room
	Topic   seam.Topic
	Nick    string
	Pinned  bool // Nick was chosen by the user: another connection must not share it
	Session *actor.PID
	Logger  *slog.Logger

	IQTimeout    time.Duration
	JoinTimeout  time.Duration // the whole join, cold-creation retries included
	PostTimeout  time.Duration
	DefaultLimit int
	MaxLimit     int
	PageSize     int
	// DedupWindow is how many recent ids the room remembers to drop a duplicate.
	DedupWindow int
}

type joinState int

const (
	notJoined joinState = iota
	joining             // join presence sent, waiting for our own presence
	verifying           // pinned nick: checking that no other session shares it
	settling            // in the room: unlocking it and reading the archive's tail
	joined
)

// Room is the room actor.
type Room struct {
	cfg     Config
	log     *slog.Logger
	archive *actor.PID

	state     joinState
	epoch     int // bumps on each join attempt: stale timers and answers are ignored
	joinNick  string
	joinStart time.Time
	retry     *backoff.ExponentialBackOff
	// the pinned-nick probe (see startVerifying)
	probeID    string
	probeToken string
	probeSeen  bool
	settle     int    // settling steps outstanding
	tail       string // archive tail at join time
	seen       string // newest live id seen while settling
	queued     []queuedReq

	posts   map[string]*pendingPost // by origin-id
	sent    []string                // origin-ids in the order posted (entries may be resolved already)
	subs    []*actor.PID
	gates   map[string]*subscriber.Gate // by subscriber PID id
	waiters map[int]*waiter
	nextW   int

	last       string // cursor of the last message fanned out
	recent     *idRing
	catchingUp bool
	buffered   []live
}

type queuedReq struct {
	msg    any
	sender *actor.PID
}

type pendingPost struct {
	replyTo *actor.PID
	timer   *time.Timer
	// awaitingArchive: the reflection came without the room's stanza-id; the
	// catch-up in progress must find the post in the archive.
	awaitingArchive bool
	answered        bool // the room reflected it (an id may still be coming)
}

type waiter struct {
	replyTo     *actor.PID
	limit       int
	timer       *time.Timer
	archiveDone bool
	expired     bool
	next        seam.Cursor
	captured    []seam.Message
}

type live struct {
	msg    seam.Message
	origin string // origin-id when the message is one of ours
}

// Messages the room sends itself.
type (
	joinTimedOut  struct{ epoch int }
	retryJoin     struct{ epoch int }
	postTimedOut  struct{ origin string }
	waiterExpired struct{ id int }
)

// Props returns a room actor's props.
func Props(cfg Config) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = 4096
	}
	return actor.PropsFromProducer(func() actor.Actor {
		return &Room{
			cfg:     cfg,
			log:     cfg.Logger.With(slog.String("room", cfg.JID)),
			posts:   map[string]*pendingPost{},
			gates:   map[string]*subscriber.Gate{},
			waiters: map[int]*waiter{},
			recent:  newIDRing(cfg.DedupWindow),
		}
	})
}

// Receive handles one message.
func (r *Room) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		r.archive = ctx.Spawn(archive.Props(archive.Config{
			Room: r.cfg.JID, Topic: r.cfg.Topic, Session: r.cfg.Session,
			IQTimeout: r.cfg.IQTimeout, PageSize: r.cfg.PageSize, Logger: r.log,
		}))
	case *Post, *Subscribe:
		r.whenJoined(ctx, m)
	case *Fetch:
		r.fetch(ctx, m)
	case stanza.Presence:
		r.onPresence(ctx, m)
	case stanza.Message:
		r.onMessage(ctx, m)
	case stanza.IQ:
		r.onIQ(ctx, m)
	case *session.IQResult:
		r.onProbeAnswer(ctx, m)
	case *joinTimedOut:
		if m.epoch == r.epoch && (r.state == joining || r.state == verifying || r.state == settling) {
			r.failJoin(ctx, fmt.Errorf("%w: %s did not let %q in within %s", ErrJoinTimeout, r.cfg.JID, r.cfg.Nick, r.cfg.JoinTimeout))
		}
	case *retryJoin:
		if m.epoch == r.epoch && r.state == joining {
			r.sendJoin(ctx)
		}
	case *postTimedOut:
		if p, ok := r.posts[m.origin]; ok {
			r.forget(m.origin)
			ctx.Send(p.replyTo, &Posted{Err: fmt.Errorf("%w: waited %s in %s", ErrPostTimeout, r.cfg.PostTimeout, r.cfg.JID)})
		}
	case *waiterExpired:
		r.onWaiterExpired(ctx, m.id)
	case *session.LinkDown:
		r.leftRoom(ctx, fmt.Errorf("%w: connection lost: %v", ErrLeft, m.Err))
	case *actor.Terminated:
		r.dropSubscriber(m.Who)
	case *actor.Stopping:
		r.stopAll(ctx)
	}
}

// whenJoined runs m now if the room is joined, or queues it and starts the join.
func (r *Room) whenJoined(ctx actor.Context, m any) {
	if r.state != joined {
		r.queued = append(r.queued, queuedReq{msg: m, sender: ctx.Sender()})
		if r.state == notJoined {
			r.startJoin(ctx)
		}
		return
	}
	r.serve(ctx, m, ctx.Sender())
}

func (r *Room) serve(ctx actor.Context, m any, sender *actor.PID) {
	switch m := m.(type) {
	case *Post:
		r.post(ctx, m, sender)
	case *Subscribe:
		gate := &subscriber.Gate{}
		pid := ctx.Spawn(subscriber.Props(m.Handler, gate, r.log))
		r.subs = append(r.subs, pid)
		r.gates[pid.Id] = gate
		ctx.Send(sender, &Subscribed{PID: pid, Gate: gate})
	case *Fetch:
		r.startWaiter(ctx, m, sender)
	}
}

func (r *Room) dropSubscriber(pid *actor.PID) {
	for i, s := range r.subs {
		if s.Equal(pid) {
			r.subs = append(r.subs[:i], r.subs[i+1:]...)
			delete(r.gates, pid.Id)
			return
		}
	}
}

// ---- joining ----

func (r *Room) startJoin(ctx actor.Context) {
	r.state = joining
	r.epoch++
	r.joinStart = time.Now()
	r.retry = backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(20*time.Millisecond),
		backoff.WithMaxInterval(time.Second),
		backoff.WithMaxElapsedTime(0), // the join timeout bounds the retries
	)
	epoch := r.epoch
	r.after(ctx, r.cfg.JoinTimeout, &joinTimedOut{epoch: epoch})
	r.sendJoin(ctx)
}

func (r *Room) sendJoin(ctx actor.Context) {
	r.joinNick = r.cfg.Nick
	r.send(ctx, stanza.JoinPresence(r.cfg.JID, r.joinNick, rand.Text()))
}

func (r *Room) onPresence(ctx actor.Context, p stanza.Presence) {
	nick := stanza.Resource(p.From)
	switch r.state {
	case joining:
		switch {
		case p.Type == "error":
			r.onJoinError(ctx, p)
		case nick == r.joinNick && p.Type == "":
			if r.cfg.Pinned {
				r.startVerifying(ctx)
			} else {
				r.startSettling(ctx)
			}
		}
	case verifying, settling, joined:
		if nick == r.joinNick && p.Type == "unavailable" {
			r.leftRoom(ctx, fmt.Errorf("%w: %s removed %q (kicked, banned, or the room was destroyed)", ErrLeft, r.cfg.JID, r.joinNick))
		}
	}
}

// startVerifying checks a pinned nick after joining. A server that folds two
// sessions of one account into one occupant (Prosody's multi-session nicks)
// answers the second join like any other, so the runtime asks the room itself:
// an IQ addressed to our own occupant JID is routed to the occupant's primary
// session. If it comes back to this connection we hold the nick alone (or
// first); if another session answers it, the nick was already taken.
func (r *Room) startVerifying(ctx actor.Context) {
	r.state = verifying
	r.probeToken = rand.Text()
	r.probeSeen = false
	r.probeID = rand.Text()
	ctx.Request(r.cfg.Session, &session.IQ{
		ID: r.probeID, To: stanza.Occupant(r.cfg.JID, r.joinNick), Timeout: r.cfg.IQTimeout,
		Stanza: stanza.NickProbeIQ(stanza.Occupant(r.cfg.JID, r.joinNick), r.probeID, r.probeToken),
	})
}

// onIQ handles IQs the session routed here: the answer to the nick probe, and
// requests addressed to this occupant (our own probe among them).
func (r *Room) onIQ(ctx actor.Context, iq stanza.IQ) {
	if iq.Type != "get" && iq.Type != "set" {
		return
	}
	if r.state == verifying && stanza.Resource(iq.From) == r.joinNick && stanza.IsNickProbe(iq.Payload, r.probeToken) {
		r.probeSeen = true
	}
	r.send(ctx, stanza.ErrorReplyIQ(iq.From, iq.ID, "service-unavailable"))
}

func (r *Room) onProbeAnswer(ctx actor.Context, res *session.IQResult) {
	if r.state != verifying || res.ID != r.probeID {
		return
	}
	if r.probeSeen {
		r.startSettling(ctx)
		return
	}
	r.send(ctx, stanza.LeavePresence(r.cfg.JID, r.joinNick))
	r.failJoin(ctx, &NickConflictError{Nick: r.cfg.Nick, Room: r.cfg.JID})
}

func (r *Room) onJoinError(ctx actor.Context, p stanza.Presence) {
	cond := ""
	if p.Error != nil {
		cond = p.Error.Condition
	}
	switch cond {
	case "item-not-found":
		// A room another connection is creating stays locked until its creator
		// submits the configuration (Prosody); retry until the join timeout.
		epoch := r.epoch
		r.after(ctx, r.retry.NextBackOff(), &retryJoin{epoch: epoch})
	case "conflict":
		if r.cfg.Pinned {
			r.failJoin(ctx, &NickConflictError{Nick: r.cfg.Nick, Room: r.cfg.JID})
			return
		}
		// A random nick collided (or a ghost of an earlier connection holds it):
		// draw another.
		r.cfg.Nick = "parley-" + rand.Text()[:10]
		r.sendJoin(ctx)
	default:
		r.failJoin(ctx, fmt.Errorf("%w: %s answered the join with %v", ErrJoin, r.cfg.JID, p.Error))
	}
}

// startSettling: we are in the room. Unlock it in case we created it, and read
// the archive's tail, which both proves the room has an archive and fixes where
// this occupancy starts in it.
func (r *Room) startSettling(ctx actor.Context) {
	r.state = settling
	r.settle = 2
	r.tail, r.seen = "", ""
	epoch := r.epoch
	id := rand.Text()
	f := ctx.RequestFuture(r.cfg.Session, &session.IQ{ID: id, To: r.cfg.JID, Stanza: stanza.InstantRoomIQ(r.cfg.JID, id), Timeout: r.cfg.IQTimeout}, r.cfg.IQTimeout+5*time.Second)
	// Refusal is normal (the room existed and we don't own it): only completion matters.
	ctx.ReenterAfter(f, func(any, error) { r.onSettleStep(ctx, epoch, nil) })
	tf := ctx.RequestFuture(r.archive, &archive.Tail{}, r.cfg.IQTimeout+5*time.Second)
	ctx.ReenterAfter(tf, func(res any, err error) {
		t, ok := res.(*archive.TailResult)
		if !ok {
			t = &archive.TailResult{Err: fmt.Errorf("room: archive tail of %s: %v", r.cfg.JID, err)}
		}
		r.onSettleStep(ctx, epoch, t)
	})
}

// onSettleStep counts one settling step done: the unlock (tail nil) or the
// archive's tail.
func (r *Room) onSettleStep(ctx actor.Context, epoch int, tail *archive.TailResult) {
	if epoch != r.epoch || r.state != settling {
		return
	}
	if tail != nil {
		if tail.Err != nil {
			r.send(ctx, stanza.LeavePresence(r.cfg.JID, r.joinNick))
			r.failJoin(ctx, tail.Err)
			return
		}
		r.tail = tail.ID
	}
	if r.settle--; r.settle > 0 {
		return
	}
	r.state = joined
	// Where this occupancy starts in the archive: the newest live message seen
	// while settling, else the tail. Gaps are filled from here.
	r.last = r.tail
	if r.seen != "" {
		r.last = r.seen
	}
	r.log.Debug("joined", slog.String("nick", r.joinNick), slog.Duration("took", time.Since(r.joinStart)))
	queued := r.queued
	r.queued = nil
	for _, q := range queued {
		r.serve(ctx, q.msg, q.sender)
	}
}

// failJoin answers every queued request with err and returns to notJoined; the
// next request tries again.
func (r *Room) failJoin(ctx actor.Context, err error) {
	r.log.Debug("join failed", slog.Any("err", err))
	r.state = notJoined
	r.epoch++
	for _, q := range r.queued {
		r.answerErr(ctx, q.msg, q.sender, err)
	}
	r.queued = nil
}

func (r *Room) answerErr(ctx actor.Context, m any, to *actor.PID, err error) {
	switch m.(type) {
	case *Post:
		ctx.Send(to, &Posted{Err: err})
	case *Subscribe:
		ctx.Send(to, &Subscribed{Err: err})
	case *Fetch:
		ctx.Send(to, &archive.Result{Err: err})
	}
}

// leftRoom: the room or the link dropped us. Everything waiting on this
// occupancy fails; subscribers stay, and the next request rejoins.
func (r *Room) leftRoom(ctx actor.Context, err error) {
	r.log.Warn("left the room", slog.Any("err", err))
	if r.state == joining || r.state == verifying || r.state == settling {
		r.failJoin(ctx, err)
	}
	r.state = notJoined
	r.epoch++
	r.failPending(ctx, err)
	r.catchingUp, r.buffered = false, nil
}

// failPending answers every pending post and long-poll waiter with err.
func (r *Room) failPending(ctx actor.Context, err error) {
	for _, p := range r.posts {
		p.timer.Stop()
		ctx.Send(p.replyTo, &Posted{Err: err})
	}
	clear(r.posts)
	r.sent = nil
	for _, w := range r.waiters {
		w.timer.Stop()
		ctx.Send(w.replyTo, &archive.Result{Err: err})
	}
	clear(r.waiters)
}

func (r *Room) stopAll(ctx actor.Context) {
	for _, g := range r.gates {
		g.Close()
	}
	for _, q := range r.queued {
		r.answerErr(ctx, q.msg, q.sender, seam.ErrDisconnected)
	}
	r.queued = nil
	r.failPending(ctx, fmt.Errorf("%w (a post in flight may still have landed)", seam.ErrDisconnected))
}

// ---- posting ----

func (r *Room) post(ctx actor.Context, m *Post, sender *actor.PID) {
	origin := rand.Text()
	p := &pendingPost{replyTo: sender}
	p.timer = r.afterTimer(ctx, r.cfg.PostTimeout, &postTimedOut{origin: origin})
	r.posts[origin] = p
	r.sent = append(r.sent, origin)
	r.send(ctx, stanza.GroupchatMessage(r.cfg.JID, origin, m.Content, string(m.InReplyTo)))
}

// oldestUnanswered returns the first post, in sending order, that the room
// hasn't answered.
func (r *Room) oldestUnanswered() (string, bool) {
	for _, o := range r.sent {
		if p, ok := r.posts[o]; ok && !p.answered {
			return o, true
		}
	}
	return "", false
}

// forget removes a settled post and trims settled posts off the front of the
// sending order, which stays as short as the posts in flight.
func (r *Room) forget(origin string) {
	delete(r.posts, origin)
	for len(r.sent) > 0 {
		if _, pending := r.posts[r.sent[0]]; pending {
			return
		}
		r.sent = r.sent[1:]
	}
}

func (r *Room) resolve(ctx actor.Context, origin string, id seam.BackendMsgID) {
	if p, ok := r.posts[origin]; ok {
		p.timer.Stop()
		r.forget(origin)
		ctx.Send(p.replyTo, &Posted{ID: id})
	}
}

// ---- the live path ----

func (r *Room) onMessage(ctx actor.Context, m stanza.Message) {
	if m.Type == "error" {
		// go-xmpp drops a message's id, so a bounce can't be matched by it. The
		// room answers our posts in the order they were sent, each with either a
		// reflection or an error, so a bounce belongs to the oldest post not yet
		// answered.
		if origin, ok := r.oldestUnanswered(); ok {
			p := r.posts[origin]
			p.timer.Stop()
			r.forget(origin)
			ctx.Send(p.replyTo, &Posted{Err: fmt.Errorf("%w: %s answered %v", ErrPostRefused, r.cfg.JID, m.Error)})
		}
		return
	}
	if m.Type != "groupchat" || m.Body == "" || !stanza.SameBare(m.From, r.cfg.JID) {
		return // subjects, chat states, and anything not from the room
	}
	valid := m.StanzaID.ID != "" && stanza.SameBare(m.StanzaID.By, r.cfg.JID) && stanza.Resource(m.StanzaID.By) == ""
	switch r.state {
	case settling:
		if valid {
			r.seen = m.StanzaID.ID
		}
		return
	case joined:
	default:
		return
	}
	if !valid {
		// No id of the room's own on it (absent, or hidden by go-xmpp keeping only
		// the last <stanza-id/>): the archive has the message with its id; fetch
		// everything after the last message fanned out, in order.
		if p, ok := r.posts[m.OriginID]; ok && stanza.Resource(m.From) == r.joinNick {
			p.awaitingArchive = true
			p.answered = true
		}
		r.startCatchUp(ctx)
		return
	}
	l := live{msg: archive.ToMessage(r.cfg.Topic, r.cfg.JID, m.From, m.Body, m.StanzaID.ID, m.Stamp)}
	if stanza.Resource(m.From) == r.joinNick {
		l.origin = m.OriginID
	}
	if r.catchingUp {
		r.buffered = append(r.buffered, l)
		return
	}
	r.fanOut(ctx, l)
}

// fanOut hands a message, in archive order, to the post waiting for it, every
// subscriber, and every long-poll waiter. A message already fanned out is
// dropped.
func (r *Room) fanOut(ctx actor.Context, l live) {
	id := l.msg.BackendMsgID
	if l.origin != "" {
		r.resolve(ctx, l.origin, id)
	}
	if !r.recent.add(string(id)) {
		return
	}
	r.last = string(l.msg.Cursor)
	if len(r.subs) > 0 {
		d := &subscriber.Deliver{Msg: l.msg}
		for _, s := range r.subs {
			ctx.Send(s, d)
		}
	}
	for wid, w := range r.waiters {
		if len(w.captured) < w.limit {
			w.captured = append(w.captured, l.msg)
		}
		if w.archiveDone {
			r.answerWaiter(ctx, wid, w, w.captured)
		}
	}
}

func (r *Room) startCatchUp(ctx actor.Context) {
	if r.catchingUp {
		return
	}
	r.catchingUp = true
	r.readGap(ctx)
}

func (r *Room) readGap(ctx actor.Context) {
	since, epoch := seam.Cursor(r.last), r.epoch
	r.readArchive(ctx, &archive.Query{Since: &since, Limit: r.cfg.MaxLimit}, func(res *archive.Result) {
		r.onCatchUp(ctx, epoch, res)
	})
}

// readArchive asks the archive actor q and continues with its answer inside this
// actor, without blocking it.
func (r *Room) readArchive(ctx actor.Context, q *archive.Query, then func(*archive.Result)) {
	f := ctx.RequestFuture(r.archive, q, 2*time.Minute)
	ctx.ReenterAfter(f, func(res any, err error) {
		a, ok := res.(*archive.Result)
		if !ok {
			a = &archive.Result{Err: fmt.Errorf("room: reading the archive of %s: %v", r.cfg.JID, err)}
		}
		then(a)
	})
}

func (r *Room) onCatchUp(ctx actor.Context, epoch int, res *archive.Result) {
	if epoch != r.epoch || !r.catchingUp {
		return
	}
	if res.Err != nil {
		r.log.Error("catching up from the archive failed; live messages continue", slog.Any("err", res.Err))
	}
	for _, e := range res.Entries {
		l := live{msg: e.Message}
		if e.Message.SenderHandle == seam.Handle(r.joinNick) {
			l.origin = e.OriginID
		}
		r.fanOut(ctx, l)
	}
	if res.Err == nil && len(res.Entries) == r.cfg.MaxLimit {
		r.readGap(ctx) // more behind this page; the live ones wait in the buffer
		return
	}
	r.catchingUp = false
	buffered := r.buffered
	r.buffered = nil
	for _, l := range buffered {
		r.fanOut(ctx, l)
	}
	// A post whose reflection carried no usable id and that the archive didn't
	// have either can't be resolved with an id: say so rather than time out.
	if res.Err == nil {
		for origin, p := range r.posts {
			if p.awaitingArchive {
				p.timer.Stop()
				r.forget(origin)
				ctx.Send(p.replyTo, &Posted{Err: fmt.Errorf("%w: %s", ErrNoStanzaID, r.cfg.JID)})
			}
		}
	}
}

// ---- reading ----

func (r *Room) fetch(ctx actor.Context, m *Fetch) {
	if m.Limit <= 0 {
		m.Limit = r.cfg.DefaultLimit
	}
	m.Limit = min(m.Limit, r.cfg.MaxLimit)
	m.until = time.Now().Add(m.Block)
	if m.Block <= 0 {
		// A plain read needs no occupancy: reading a never-posted topic must not
		// create its room.
		ctx.RequestWithCustomSender(r.archive, &archive.Query{Since: m.Since, Limit: m.Limit}, ctx.Sender())
		return
	}
	r.whenJoined(ctx, m)
}

// startWaiter serves a blocking fetch: the waiter is registered before the
// archive is read, so a message landing while the read is in flight is caught
// either by the read or by the waiter.
func (r *Room) startWaiter(ctx actor.Context, m *Fetch, sender *actor.PID) {
	id := r.nextW
	r.nextW++
	w := &waiter{replyTo: sender, limit: m.Limit}
	w.timer = r.afterTimer(ctx, max(time.Until(m.until), 0), &waiterExpired{id: id})
	r.waiters[id] = w
	r.readArchive(ctx, &archive.Query{Since: m.Since, Limit: m.Limit}, func(a *archive.Result) {
		w, ok := r.waiters[id]
		if !ok {
			return
		}
		switch {
		case a.Err != nil || len(a.Entries) > 0:
			w.timer.Stop()
			delete(r.waiters, id)
			ctx.Send(w.replyTo, a)
		case len(w.captured) > 0:
			r.answerWaiter(ctx, id, w, w.captured)
		case w.expired:
			w.next = a.NextCursor
			r.answerWaiter(ctx, id, w, nil)
		default:
			w.archiveDone, w.next = true, a.NextCursor
		}
	})
}

func (r *Room) onWaiterExpired(ctx actor.Context, id int) {
	w, ok := r.waiters[id]
	if !ok {
		return
	}
	if !w.archiveDone {
		w.expired = true // answer when the read does
		return
	}
	r.answerWaiter(ctx, id, w, nil)
}

func (r *Room) answerWaiter(ctx actor.Context, id int, w *waiter, msgs []seam.Message) {
	w.timer.Stop()
	delete(r.waiters, id)
	res := &archive.Result{NextCursor: w.next}
	for _, m := range msgs {
		res.Entries = append(res.Entries, archive.Entry{Message: m})
		res.NextCursor = m.Cursor
	}
	ctx.Send(w.replyTo, res)
}

// ---- plumbing ----

func (r *Room) send(ctx actor.Context, b []byte) { ctx.Send(r.cfg.Session, &session.Send{Stanza: b}) }

// after delivers msg to this actor after d.
func (r *Room) after(ctx actor.Context, d time.Duration, msg any) { r.afterTimer(ctx, d, msg) }

func (r *Room) afterTimer(ctx actor.Context, d time.Duration, msg any) *time.Timer {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	return time.AfterFunc(d, func() { root.Send(self, msg) })
}

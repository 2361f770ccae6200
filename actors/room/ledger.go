package room

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/seam"
)

// The post ledger. A post is sent once the room is joined and resolves exactly
// once: with the stanza-id of its reflection; or, when the link was lost after
// sending it, with the id the replay finds for its origin-id, and if the replay
// doesn't find it, it is sent again (the archive can't hold it twice: it isn't
// there); or with an error.
//
// Posts are sent through a window: at most Config.PostWindow of them are on the
// wire (sent, not yet resolved) at a time, and the rest wait in the room, in
// order, each caller within its ctx. So a burst of posts, or the backlog of an
// outage, goes out at the pace the room answers, and never floods the link's
// send queue.

// postPhase is where one post is.
type postPhase int

const (
	postNew     postPhase = iota // registered, not yet looked up or queued
	postLooking                  // an idempotent post (OnceAfter) whose archive check is under way; sent only if the check doesn't find it
	postWaiting                  // in ready, for the window
	postSent                     // on the wire in this occupancy
	postInDoubt                  // sent on a link that then died (or before a removal): the replay decides whether it landed
)

type pendingPost struct {
	post    *Post
	replyTo *actor.PID
	timer   *time.Timer
	phase   postPhase
	// everSent: it went out at least once (it may land: failing it now leaves
	// it in doubt).
	everSent bool
	// cancelled: its caller gave up; it is resolved if seen, never resent.
	cancelled bool
	// answered: the room reflected it without an id of its own; the catch-up in
	// progress must find it in the archive.
	answered bool
	// strikes: links the server ended while this post was first in line;
	// onDeadLink: it was on the wire when the last occupancy ended.
	strikes    int
	onDeadLink bool
}

type ledger struct {
	s        *state
	posts    map[string]*pendingPost // by origin-id
	order    []string                // origin-ids in sending order (entries may be settled)
	ready    []string                // posts waiting for the window, in order (entries may be settled)
	inflight int                     // posts on the wire: sent, not resolved
	// serverEnded: the server ended the last link's stream; the replay after
	// the rejoin strikes the first post that didn't land (see resendInDoubt).
	serverEnded bool
	settled     *originRing // recently settled posts, for CancelPost
}

func (l *ledger) onPost(ctx actor.Context, m *Post, sender *actor.PID) {
	if _, dup := l.posts[m.Origin]; dup {
		ctx.Send(sender, &Posted{Err: fmt.Errorf("%w: room: origin-id %q already in flight", seam.ErrInvalidArgument, m.Origin)})
		return
	}
	l.s.occ.whenJoined(ctx, m, sender)
}

// add takes a post once the room is joined.
func (l *ledger) add(ctx actor.Context, m *Post, sender *actor.PID) {
	if m.Replaces != "" || m.Retracts != "" || m.ReactsTo != "" {
		act, err := l.s.act(m)
		if err != nil {
			ctx.Send(sender, &Posted{Err: err})
			return
		}
		m.act = act
	}
	p := &pendingPost{post: m, replyTo: sender}
	l.posts[m.Origin] = p
	l.order = append(l.order, m.Origin)
	l.s.cfg.Metrics.PendingPosts(len(l.posts))
	if m.OnceAfter != nil {
		l.lookFor(ctx, p, *m.OnceAfter)
		return
	}
	l.transmit(ctx, p)
}

// fromAccount says whether an archived message whose sender's real JIDs are
// realJIDs may be this runtime's account's: where the room shows real JIDs,
// only if they all name the account (a sender can add a forged one of its own,
// which Prosody keeps beside the true one); where it shows none, it may.
func (s *state) fromAccount(realJIDs []string) bool {
	if len(realJIDs) == 0 {
		// The room hides real JIDs (an anonymous room): the origin-id alone
		// decides, which is why PostOnce's keys must be derived with a secret.
		return true
	}
	who := stanza.SenderJID(realJIDs)
	return who != "" && s.cfg.Account != "" && strings.EqualFold(who, s.cfg.Account)
}

// lookFor reads the archive after since for an idempotent post's origin-id
// (onLookup takes the answer): found, the post resolves with that message's id;
// not found, it is sent.
func (l *ledger) lookFor(ctx actor.Context, p *pendingPost, since seam.Cursor) {
	p.phase = postLooking
	l.s.readArchive(ctx, &archive.Query{Since: &since, Limit: l.s.cfg.MaxLimit}, &read{purpose: readLookup, post: p})
}

func (l *ledger) onLookup(ctx actor.Context, r *read, res *archive.Result) {
	s, p := l.s, r.post
	origin := p.post.Origin
	if q, ok := l.posts[origin]; !ok || q != p || r.epoch != s.epoch {
		return // settled meanwhile, or the link went (the rejoin looks again)
	}
	if res.Err != nil {
		l.fail(ctx, origin, fmt.Errorf("room: checking whether the post is already in %s: %w", s.cfg.JID, res.Err))
		return
	}
	for _, e := range res.Entries {
		if e.OriginID == origin && s.fromAccount(e.RealJIDs) {
			l.resolve(ctx, origin, e.Message.BackendMsgID)
			return
		}
	}
	if len(res.Entries) == s.cfg.MaxLimit {
		l.lookFor(ctx, p, res.NextCursor)
		return
	}
	p.phase = postNew
	l.transmit(ctx, p)
}

// transmit queues a post for the window; pump sends it when its turn comes.
func (l *ledger) transmit(ctx actor.Context, p *pendingPost) {
	p.answered = false
	stopTimer(p.timer)
	p.timer = nil
	if p.phase != postWaiting {
		p.phase = postWaiting
		l.ready = append(l.ready, p.post.Origin)
	}
	l.pump(ctx)
}

// pump sends waiting posts, in order, while the window has room.
func (l *ledger) pump(ctx actor.Context) {
	s := l.s
	for len(l.ready) > 0 && l.inflight < s.cfg.PostWindow && s.occ.phase == joined && s.online() {
		origin := l.ready[0]
		l.ready = l.ready[1:]
		if p, ok := l.posts[origin]; ok && p.phase == postWaiting {
			l.sendPost(ctx, p)
		}
	}
	if len(l.ready) == 0 {
		l.ready = nil
	}
}

func (l *ledger) sendPost(ctx actor.Context, p *pendingPost) {
	s := l.s
	p.phase = postNew
	if f := p.post.Fence; f != nil {
		if err := f(); err != nil {
			l.fail(ctx, p.post.Origin, fmt.Errorf("%w: %w", vocab.ErrPostFenced, err))
			return
		}
	}
	reply := s.reply(p.post.InReplyTo)
	var err error
	if p.post.act != nil {
		err = s.sendFenced(ctx, stanza.ActMessage(s.cfg.JID, p.post.Origin, p.post.Content, *p.post.act), p.post.Fence)
	} else {
		err = s.sendFenced(ctx, stanza.GroupchatMessage(s.cfg.JID, p.post.Origin, p.post.Content, reply), p.post.Fence)
	}
	if errors.Is(err, vocab.ErrStanzaTooLarge) && reply.Quote != "" && p.post.act == nil {
		// The quote made it too large (the runtime measured the post without
		// one): the reply goes without its quote.
		reply.Quote = ""
		err = s.sendFenced(ctx, stanza.GroupchatMessage(s.cfg.JID, p.post.Origin, p.post.Content, reply), p.post.Fence)
	}
	if errors.Is(err, vocab.ErrStanzaTooLarge) {
		// Nothing was sent, and nothing sent later will be smaller.
		l.fail(ctx, p.post.Origin, fmt.Errorf("%w: %w: %v", seam.ErrContentTooLarge, seam.ErrInvalidContent, err))
		return
	}
	p.phase, p.everSent = postSent, true
	l.inflight++
	p.timer = s.after(ctx, s.cfg.PostTimeout, &timer{kind: postTimeout, origin: p.post.Origin})
}

// settle takes a post off the wire and lets the next one go.
func (l *ledger) settle(ctx actor.Context, p *pendingPost) {
	if p.phase == postSent {
		l.inflight--
	}
	p.phase = postNew
	stopTimer(p.timer)
	l.forget(p.post.Origin)
	l.pump(ctx)
}

// resendInDoubt runs after a replay: a post sent on a lost link that the replay
// didn't find never landed, and is sent again, in the original order. One whose
// caller gave up is dropped instead (its caller was told it may land).
//
// The posts go back into the window in their original order, with those that
// were waiting for it: the backlog goes out at the window's pace. A post that was
// first in line when the server ended the stream, twice, fails with
// seam.ErrPoisonMessage instead of killing the link forever.
func (l *ledger) resendInDoubt(ctx actor.Context) {
	s := l.s
	defer func() { l.serverEnded = false }()
	l.ready = nil
	for _, origin := range slices.Clone(l.order) {
		p, ok := l.posts[origin]
		if ok && p.phase == postLooking {
			// Its check was cut short: look again from the start of its range.
			l.lookFor(ctx, p, *p.post.OnceAfter)
			continue
		}
		if ok && p.phase == postWaiting {
			l.ready = append(l.ready, origin)
			continue
		}
		if !ok || p.phase != postInDoubt {
			continue
		}
		if p.cancelled {
			l.forget(origin)
			continue
		}
		if l.serverEnded {
			// The server ended the stream, and this is the first post it hadn't
			// taken: if it was on that link, it was the one the server was
			// reading, which may be why.
			l.serverEnded = false
			if p.onDeadLink {
				p.strikes++
			}
		}
		if p.strikes >= 2 {
			l.fail(ctx, origin, fmt.Errorf("%w (%d times, with it first in line; it is not in %s's archive and is not sent again): the server refuses something in it, its size say", seam.ErrPoisonMessage, p.strikes, s.cfg.JID))
			continue
		}
		s.log.Debug("resending a post the replay didn't find", "origin", origin)
		l.transmit(ctx, p)
	}
	l.pump(ctx)
}

func (l *ledger) resolve(ctx actor.Context, origin string, id seam.BackendMsgID) {
	p, ok := l.posts[origin]
	if !ok {
		return
	}
	l.settle(ctx, p)
	l.settled.add(origin, id)
	l.s.cfg.Metrics.MessageOut()
	if !p.cancelled {
		ctx.Send(p.replyTo, &Posted{ID: id})
	}
}

func (l *ledger) fail(ctx actor.Context, origin string, err error) {
	p, ok := l.posts[origin]
	if !ok {
		return
	}
	l.settle(ctx, p)
	if !p.cancelled {
		ctx.Send(p.replyTo, &Posted{Err: err})
	}
}

func (l *ledger) onTimeout(ctx actor.Context, origin string) {
	s := l.s
	if p, ok := l.posts[origin]; ok && p.phase != postInDoubt && s.occ.phase == joined {
		l.fail(ctx, origin, fmt.Errorf("%w: waited %s in %s (%w)", vocab.ErrPostTimeout, s.cfg.PostTimeout, s.cfg.JID, seam.ErrPostInDoubt))
	}
}

// onBounce: an error message reached our occupant. It fails a post only when it
// is the room's own answer to that post: from the room's bare JID (any occupant
// can send us an error from room/nick, and another room or entity from
// elsewhere) and carrying the post's id, which is its origin-id
// (stanza.GroupchatMessage). Anything else is ignored: a post settles only on
// evidence from the room, and without it stays in doubt (ErrPostTimeout).
func (l *ledger) onBounce(ctx actor.Context, m stanza.Message) {
	s := l.s
	// No resource at all: "room/" is no occupant's, and no room's, JID either.
	if !stanza.SameBare(m.From, s.cfg.JID) || stanza.Bare(m.From) != m.From {
		s.log.Debug("ignoring an error message that is not the room's own", "from", m.From, "id", m.ID)
		return
	}
	p, ok := l.posts[m.ID]
	if m.ID == "" || !ok || p.phase != postSent || p.answered {
		// Not a post on the wire: unknown, settled, in doubt after a lost link
		// (the replay decides), or already reflected.
		s.log.Debug("ignoring the room's error message: no post on the wire has its id", "id", m.ID)
		return
	}
	l.fail(ctx, m.ID, fmt.Errorf("%w: %s answered %v", vocab.ErrPostRefused, s.cfg.JID, m.Error))
}

// answeredWithoutID: the room reflected our post origin without an id of its
// own; the catch-up must find it in the archive (see failUnanswered).
func (l *ledger) answeredWithoutID(origin string) {
	if p, ok := l.posts[origin]; ok {
		p.answered = true
	}
}

// failUnanswered runs when a catch-up ends: a post whose reflection carried no
// usable id and that the archive didn't have either can't be resolved with an
// id: say so rather than time out.
func (l *ledger) failUnanswered(ctx actor.Context) {
	for origin, p := range l.posts {
		if p.answered {
			l.fail(ctx, origin, fmt.Errorf("%w: %s", vocab.ErrNoStanzaID, l.s.cfg.JID))
		}
	}
}

// cancel withdraws a post whose caller gave up (one still queued for the join
// is the occupancy's: see occupancy.withdraw).
func (l *ledger) cancel(origin string) *PostFate {
	if p, ok := l.posts[origin]; ok {
		if !p.everSent && p.phase != postLooking {
			// Still waiting for the window: it never will be sent.
			p.phase = postNew
			l.forget(origin)
			return &PostFate{}
		}
		p.cancelled = true
		return &PostFate{Sent: true}
	}
	if id, ok := l.settled.find(origin); ok {
		return &PostFate{Sent: true, ID: id}
	}
	return &PostFate{}
}

// forget removes a settled post and trims settled posts off the front of the
// sending order, which stays as short as the posts in flight.
func (l *ledger) forget(origin string) {
	delete(l.posts, origin)
	l.s.cfg.Metrics.PendingPosts(len(l.posts))
	for len(l.order) > 0 {
		if _, pending := l.posts[l.order[0]]; pending {
			return
		}
		l.order = l.order[1:]
	}
}

// linkLost: the occupancy ended. Posts on the wire become in doubt (the next
// join's replay decides); posts waiting for the window wait on.
func (l *ledger) linkLost() {
	for _, p := range l.posts {
		stopTimer(p.timer)
		p.timer = nil
		p.onDeadLink = p.phase == postSent
		if p.phase == postSent {
			p.phase = postInDoubt
		}
	}
	l.inflight, l.ready = 0, nil
}

// inDoubt: some post waits for a replay to decide its fate.
func (l *ledger) inDoubt() bool {
	for _, p := range l.posts {
		if p.phase == postInDoubt {
			return true
		}
	}
	return false
}

// failAll answers every pending post with err; a post already sent also with
// seam.ErrPostInDoubt.
func (l *ledger) failAll(ctx actor.Context, err error) {
	l.ready = nil
	for origin, p := range l.posts {
		if p.everSent {
			l.fail(ctx, origin, fmt.Errorf("%w (%w)", err, seam.ErrPostInDoubt))
			continue
		}
		l.fail(ctx, origin, err)
	}
	l.order = nil
}

func (l *ledger) stopTimers() {
	for _, p := range l.posts {
		stopTimer(p.timer)
	}
}

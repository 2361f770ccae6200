package room

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/xmppconn"
	"github.com/parley-go/parley-xmpp/seam"
)

// Posts. A post is sent once the room is joined and resolves exactly once: with
// the stanza-id of its reflection; or, when the link was lost after sending it,
// with the id the replay finds for its origin-id, and if the replay doesn't find
// it, it is sent again (the archive can't hold it twice: it isn't there); or with
// an error.
//
// Posts are sent through a window: at most Config.PostWindow of them are on the
// wire (sent, not yet resolved) at a time, and the rest wait in the room, in
// order, each caller within its ctx. So a burst of posts, or the backlog of an
// outage, goes out at the pace the room answers, and never floods the link's
// send queue.

func (s *state) onPost(ctx actor.Context, m *Post, sender *actor.PID) {
	if _, dup := s.posts[m.Origin]; dup {
		ctx.Send(sender, &Posted{Err: fmt.Errorf("room: origin-id %q already in flight", m.Origin)})
		return
	}
	s.whenJoined(ctx, m, sender)
}

func (s *state) post(ctx actor.Context, m *Post, sender *actor.PID) {
	p := &pendingPost{post: m, replyTo: sender}
	s.posts[m.Origin] = p
	s.order = append(s.order, m.Origin)
	s.cfg.Metrics.PendingPosts(len(s.posts))
	if m.OnceAfter != nil {
		s.lookFor(ctx, p, *m.OnceAfter)
		return
	}
	s.transmit(ctx, p)
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

// lookFor reads the archive after since for an idempotent post's origin-id: found,
// the post resolves with that message's id; not found, it is sent.
func (s *state) lookFor(ctx actor.Context, p *pendingPost, since seam.Cursor) {
	p.looking = true
	epoch, origin := s.epoch, p.post.Origin
	s.readArchive(ctx, &archive.Query{Since: &since, Limit: s.cfg.MaxLimit}, func(res *archive.Result) {
		if q, ok := s.posts[origin]; !ok || q != p || epoch != s.epoch {
			return // settled meanwhile, or the link went (the rejoin looks again)
		}
		if res.Err != nil {
			s.fail(ctx, origin, fmt.Errorf("room: checking whether the post is already in %s: %w", s.cfg.JID, res.Err))
			return
		}
		for _, e := range res.Entries {
			if e.OriginID == origin && s.fromAccount(e.RealJIDs) {
				s.resolve(ctx, origin, e.Message.BackendMsgID)
				return
			}
		}
		if len(res.Entries) == s.cfg.MaxLimit {
			s.lookFor(ctx, p, res.NextCursor)
			return
		}
		p.looking = false
		s.transmit(ctx, p)
	})
}

// transmit queues a post for the window; pump sends it when its turn comes.
func (s *state) transmit(ctx actor.Context, p *pendingPost) {
	p.inDoubt, p.answered = false, false
	stopTimer(p.timer)
	p.timer = nil
	if !p.waiting {
		p.waiting = true
		s.ready = append(s.ready, p.post.Origin)
	}
	s.pump(ctx)
}

// pump sends waiting posts, in order, while the window has room.
func (s *state) pump(ctx actor.Context) {
	for len(s.ready) > 0 && s.inflight < s.cfg.PostWindow && s.phase == joined && s.online {
		origin := s.ready[0]
		s.ready = s.ready[1:]
		if p, ok := s.posts[origin]; ok && p.waiting {
			s.sendPost(ctx, p)
		}
	}
	if len(s.ready) == 0 {
		s.ready = nil
	}
}

func (s *state) sendPost(ctx actor.Context, p *pendingPost) {
	p.waiting = false
	err := s.send(ctx, stanza.GroupchatMessage(s.cfg.JID, p.post.Origin, p.post.Content, string(p.post.InReplyTo)))
	if errors.Is(err, xmppconn.ErrStanzaTooLarge) {
		// Nothing was sent, and nothing sent later will be smaller.
		s.fail(ctx, p.post.Origin, fmt.Errorf("%w: %w: %v", seam.ErrContentTooLarge, seam.ErrInvalidContent, err))
		return
	}
	p.sent, p.everSent = true, true
	s.inflight++
	p.timer = s.after(ctx, s.cfg.PostTimeout, &timer{kind: postTimeout, origin: p.post.Origin})
}

// settle takes a post off the wire and lets the next one go.
func (s *state) settle(ctx actor.Context, p *pendingPost) {
	if p.sent {
		p.sent = false
		s.inflight--
	}
	p.waiting = false
	stopTimer(p.timer)
	s.forget(p.post.Origin)
	s.pump(ctx)
}

// resendInDoubt runs after a replay: a post sent on a lost link that the replay
// didn't find never landed, and is sent again, in the original order. One whose
// caller gave up is dropped instead (its caller was told it may land).
//
// The posts go back into the window in their original order, with those that
// were waiting for it: the backlog goes out at the window's pace. A post that was
// first in line when the server ended the stream, twice, fails with
// seam.ErrPoisonMessage instead of killing the link forever.
func (s *state) resendInDoubt(ctx actor.Context) {
	defer func() { s.serverEnded = false }()
	s.ready = nil
	for _, origin := range slices.Clone(s.order) {
		p, ok := s.posts[origin]
		if ok && p.looking {
			// Its check was cut short: look again from the start of its range.
			s.lookFor(ctx, p, *p.post.OnceAfter)
			continue
		}
		if ok && p.waiting {
			s.ready = append(s.ready, origin)
			continue
		}
		if !ok || !p.inDoubt {
			continue
		}
		if p.cancelled {
			s.forget(origin)
			continue
		}
		if s.serverEnded {
			// The server ended the stream, and this is the first post it hadn't
			// taken: if it was on that link, it was the one the server was
			// reading, which may be why.
			s.serverEnded = false
			if p.onDeadLink {
				p.strikes++
			}
		}
		if p.strikes >= 2 {
			s.fail(ctx, origin, fmt.Errorf("%w (%d times, with it first in line; it is not in %s's archive and is not sent again): the server refuses something in it, its size say", seam.ErrPoisonMessage, p.strikes, s.cfg.JID))
			continue
		}
		s.log.Debug("resending a post the replay didn't find", "origin", origin)
		s.transmit(ctx, p)
	}
	s.pump(ctx)
}

func (s *state) resolve(ctx actor.Context, origin string, id seam.BackendMsgID) {
	p, ok := s.posts[origin]
	if !ok {
		return
	}
	s.settle(ctx, p)
	s.settled.add(origin, id)
	s.cfg.Metrics.MessageOut()
	if !p.cancelled {
		ctx.Send(p.replyTo, &Posted{ID: id})
	}
}

func (s *state) fail(ctx actor.Context, origin string, err error) {
	p, ok := s.posts[origin]
	if !ok {
		return
	}
	s.settle(ctx, p)
	if !p.cancelled {
		ctx.Send(p.replyTo, &Posted{Err: err})
	}
}

func (s *state) onPostTimeout(ctx actor.Context, origin string) {
	if p, ok := s.posts[origin]; ok && !p.inDoubt && s.phase == joined {
		s.fail(ctx, origin, fmt.Errorf("%w: waited %s in %s (%w)", ErrPostTimeout, s.cfg.PostTimeout, s.cfg.JID, seam.ErrPostInDoubt))
	}
}

// cancelPost withdraws a post whose caller gave up.
func (s *state) cancelPost(origin string) *PostFate {
	for i, q := range s.queued {
		if p, ok := q.msg.(*Post); ok && p.Origin == origin {
			s.queued = slices.Delete(s.queued, i, i+1)
			return &PostFate{}
		}
	}
	if p, ok := s.posts[origin]; ok {
		if !p.everSent && !p.looking {
			// Still waiting for the window: it never will be sent.
			p.waiting = false
			s.forget(origin)
			return &PostFate{}
		}
		p.cancelled = true
		return &PostFate{Sent: true}
	}
	if id, ok := s.settled.ids[origin]; ok {
		return &PostFate{Sent: true, ID: id}
	}
	return &PostFate{}
}

// oldestUnanswered returns the first post, in sending order, that the room
// hasn't answered.
func (s *state) oldestUnanswered() (string, bool) {
	for _, o := range s.order {
		if p, ok := s.posts[o]; ok && p.sent && !p.answered && !p.inDoubt {
			return o, true
		}
	}
	return "", false
}

// forget removes a settled post and trims settled posts off the front of the
// sending order, which stays as short as the posts in flight.
func (s *state) forget(origin string) {
	delete(s.posts, origin)
	s.cfg.Metrics.PendingPosts(len(s.posts))
	for len(s.order) > 0 {
		if _, pending := s.posts[s.order[0]]; pending {
			return
		}
		s.order = s.order[1:]
	}
}

// failPending answers every pending post and long-poll waiter with err; a post
// already sent also with seam.ErrPostInDoubt.
func (s *state) failPending(ctx actor.Context, err error) {
	s.ready = nil
	for origin, p := range s.posts {
		if p.everSent {
			s.fail(ctx, origin, fmt.Errorf("%w (%w)", err, seam.ErrPostInDoubt))
			continue
		}
		s.fail(ctx, origin, err)
	}
	s.order = nil
	for id, w := range s.waiters {
		stopTimer(w.timer)
		ctx.Send(w.replyTo, &archive.Result{Err: err})
		delete(s.waiters, id)
	}
}

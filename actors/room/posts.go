package room

import (
	"fmt"
	"slices"
	"strings"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/seam"
)

// Posts. A post is sent once the room is joined and resolves exactly once: with
// the stanza-id of its reflection; or, when the link was lost after sending it,
// with the id the replay finds for its origin-id, and if the replay doesn't find
// it, it is sent again (the archive can't hold it twice: it isn't there); or with
// an error.

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

func (s *state) transmit(ctx actor.Context, p *pendingPost) {
	p.inDoubt, p.answered, p.sent = false, false, true
	stopTimer(p.timer)
	p.timer = s.after(ctx, s.cfg.PostTimeout, &timer{kind: postTimeout, origin: p.post.Origin})
	s.send(ctx, stanza.GroupchatMessage(s.cfg.JID, p.post.Origin, p.post.Content, string(p.post.InReplyTo)))
}

// resendInDoubt runs after a replay: a post sent on a lost link that the replay
// didn't find never landed, and is sent again, in the original order. One whose
// caller gave up is dropped instead (its caller was told it may land).
func (s *state) resendInDoubt(ctx actor.Context) {
	for _, origin := range slices.Clone(s.order) {
		p, ok := s.posts[origin]
		if ok && p.looking {
			// Its check was cut short: look again from the start of its range.
			s.lookFor(ctx, p, *p.post.OnceAfter)
			continue
		}
		if !ok || !p.inDoubt {
			continue
		}
		if p.cancelled {
			s.forget(origin)
			continue
		}
		s.log.Debug("resending a post the replay didn't find", "origin", origin)
		s.transmit(ctx, p)
	}
}

func (s *state) resolve(ctx actor.Context, origin string, id seam.BackendMsgID) {
	p, ok := s.posts[origin]
	if !ok {
		return
	}
	stopTimer(p.timer)
	s.forget(origin)
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
	stopTimer(p.timer)
	s.forget(origin)
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
		if p, ok := s.posts[o]; ok && !p.answered && !p.inDoubt {
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
	for origin, p := range s.posts {
		if p.sent {
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

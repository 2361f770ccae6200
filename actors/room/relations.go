package room

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
)

// Relations (issue 23): a message that corrects, retracts, reacts to or
// answers another names it by the sender's word (an origin-id or message id
// for a correction or a retraction, the room's stanza-id for a reply, a
// reaction or a moderation). The room maps that to the target's
// BackendMsgID through s.seen, the bounded record of the messages it has seen
// on both paths (live, and every archive page it reads), with stanza.Apply,
// the one function both paths use. A relation it can't honour (its target
// not seen, or a correction or retraction by someone else than the target's
// sender, or a moderation not from the room) leaves the message plain, with
// its whole body, and is counted (observe.RelationRecorder), once per
// message while the room remembers it.

// relate applies a message's relations and remembers it. An unmatched
// relation is counted once while the room remembers the message (the live
// path and the archive reads of the same message count it once).
func (s *state) relate(m seam.Message, id, body string, rel stanza.Relations, from stanza.Sender) seam.Message {
	_, _, known := s.seen.Sent(m.BackendMsgID)
	out, unmatched := stanza.Apply(m, body, rel, from, s.seen)
	if unmatched != stanza.RelNone && !known {
		if r, ok := s.cfg.Metrics.(observe.RelationRecorder); ok {
			r.UnmatchedRelation(unmatched)
		}
		s.log.Debug("relation not honoured; delivered as a plain message", "kind", unmatched, "id", string(m.BackendMsgID))
	}
	s.seen.Remember(m.BackendMsgID, from, id, m.OriginID)
	if !out.IsRelation() {
		s.seen.Note(m.BackendMsgID, out.Content)
	}
	return out
}

// relateEntries applies the relations of an archive page's rows, oldest
// first, into a copy of the page's entries (the archive's own slice is left
// alone).
func (s *state) relateEntries(res *archive.Result) {
	if len(res.Entries) == 0 {
		return
	}
	out := make([]archive.Entry, len(res.Entries))
	for i, e := range res.Entries {
		from := stanza.Sender{Nick: stanza.Resource(e.From), OccupantID: e.Rel.OccupantID, JID: stanza.SenderJID(e.RealJIDs)}
		e.Message = s.relate(e.Message, e.ID, e.Body, e.Rel, from)
		out[i] = e
	}
	res.Entries = out
}

// reply is what a post answering parent says of it: the quote and to where
// the room has seen the parent (a nick: an occupant's message), else the id
// alone.
func (s *state) reply(parent seam.BackendMsgID) stanza.Reply {
	if parent == "" {
		return stanza.Reply{}
	}
	r := stanza.Reply{ID: string(parent)}
	if from, text, ok := s.seen.Describe(parent); ok && from.Nick != "" {
		r.To = stanza.Occupant(s.cfg.JID, from.Nick)
		r.Quote = stanza.ReplyQuote(from.Nick, text)
	}
	return r
}

// ownID finds this account's message with origin-id origin among the
// messages the room has seen (the newest, should there be several).
func (s *state) ownID(origin string) *OwnIDResult {
	for _, id := range slices.Backward(s.seen.BySenderID(origin)) {
		if from, _, ok := s.seen.Sent(id); ok && s.ours(from) {
			return &OwnIDResult{ID: id}
		}
	}
	return &OwnIDResult{Err: fmt.Errorf("%w: no message of this account with that origin-id", ErrUnknownTarget)}
}

// ours says whether a message's sender is this account: the nick the room
// holds now, or the account's real JID where the room showed it.
func (s *state) ours(from stanza.Sender) bool {
	return (from.Nick != "" && from.Nick == s.occ.nick) || (from.JID != "" && strings.EqualFold(from.JID, s.cfg.Account))
}

// act resolves what a relation post names: the origin-id of one of this
// account's own messages (a correction, a retraction), or the stanza-id of
// any message (reactions), among the messages the room has seen.
func (s *state) act(m *Post) (*stanza.Act, error) {
	target := m.Replaces
	if target == "" {
		target = m.Retracts
	}
	if target == "" {
		if _, _, ok := s.seen.Sent(m.ReactsTo); !ok {
			return nil, fmt.Errorf("%w: %s", ErrUnknownTarget, m.ReactsTo)
		}
		return &stanza.Act{React: string(m.ReactsTo), Reactions: slices.Clone(m.Reactions)}, nil
	}
	from, ids, ok := s.seen.Sent(target)
	if !ok || len(ids) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTarget, target)
	}
	if !s.ours(from) {
		return nil, fmt.Errorf("%w: %s", ErrNotOwnMessage, target)
	}
	origin := ids[len(ids)-1] // the origin-id (remembered after the id attribute)
	if m.Replaces != "" {
		return &stanza.Act{Replace: origin}, nil
	}
	return &stanza.Act{Retract: origin, RetractSID: string(target)}, nil
}

// onSubject reports a subject change made while the runtime is in the room.
func (s *state) onSubject(ctx actor.Context, m stanza.Message) {
	if s.occ.phase != joined {
		return // the subject a join shows
	}
	s.sendEvent(ctx, &Event{Topic: s.cfg.Topic, Room: s.cfg.JID, Kind: SubjectChanged, Subject: m.Subject, By: stanza.Resource(m.From), At: time.Now()})
}

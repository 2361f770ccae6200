package room

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
)

// Relations (issue 23): a message that corrects, retracts, reacts to or
// answers another names it by the sender's word (an origin-id or message id
// for a correction or a retraction, the room's stanza-id for a reply, a
// reaction or a moderation). The room maps that to the target's
// BackendMsgID through s.seen, the bounded record of the messages it has seen
// on both paths (live, and every archive page it reads), with stanza.Apply,
// the one function both paths use.
//
// A target older than that record (a message from before the runtime joined,
// or one the record forgot) is looked for in the archive, on both paths the
// same way: before the relations of an archive answer are applied, the
// TargetLookback rows before the first of its rows whose relation names an
// id the room doesn't know are read (readTargets) and learned, while the
// answer waits; a live relation whose target the room doesn't know is held
// and goes out from the archive, like a message whose stamp only the archive
// knows (fanout.fromArchive), so that lookup serves it too, in archive order,
// the fan-out holding what comes after it meanwhile. So a target within
// TargetLookback rows before its relation is always found, live and in
// FetchRecent; one further back may be found on one path (a page that holds
// it) and not the other. A relation's rows are looked back for once, the
// first time the room meets it.
//
// A relation it can't honour (its target not found, or a correction or
// retraction by someone else than the target's sender, or a moderation not
// from the room) leaves the message plain, with its whole body, and is
// counted (observe.RelationRecorder), once per message while the room
// remembers it.

// relation is what a live message's relations are applied from, when that
// waits for the archive (live.rel).
type relation struct {
	id, body string
	rel      stanza.Relations
	from     stanza.Sender
}

// relate applies a message's relations and remembers it. An unmatched
// relation is counted once while the room remembers the message (the live
// path and the archive reads of the same message count it once).
func (s *state) relate(m seam.Message, id, body string, rel stanza.Relations, from stanza.Sender) seam.Message {
	known := s.seen.Applied(m.BackendMsgID)
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
		e.Message = s.relate(e.Message, e.ID, e.Body, e.Rel, entrySender(e))
		out[i] = e
	}
	res.Entries = out
}

// targetUnseen reports whether a message met for the first time names, in
// its relations, an id the room doesn't know: the archive is read back for it.
func (s *state) targetUnseen(id seam.BackendMsgID, rel stanza.Relations) bool {
	if s.seen.Applied(id) {
		return false
	}
	return slices.ContainsFunc(rel.TargetIDs(), func(t string) bool { return !s.seen.Knows(t) })
}

// unknownTarget returns the cursor of the first of entries (oldest first)
// whose relations name an id neither the room nor an earlier entry knows.
func (s *state) unknownTarget(entries []archive.Entry) (seam.Cursor, bool) {
	earlier := map[string]bool{}
	unknown := func(t string) bool { return !earlier[t] && !s.seen.Knows(t) }
	for _, e := range entries {
		if !s.seen.Applied(e.Message.BackendMsgID) && slices.ContainsFunc(e.Rel.TargetIDs(), unknown) {
			return e.Message.Cursor, true
		}
		earlier[string(e.Message.BackendMsgID)], earlier[e.ID], earlier[e.OriginID] = true, true, true
	}
	return "", false
}

// lookBack reads the TargetLookback rows before the cursor before for the
// targets of held's relations; held waits for that answer (onTargets).
func (s *state) lookBack(ctx actor.Context, before seam.Cursor, held *archiveAnswer) {
	s.log.Debug("a relation names a message the room has not seen; reading the archive before it", "before", string(before), "rows", s.cfg.TargetLookback)
	s.readArchive(ctx, &archive.Query{Before: &before, Limit: s.cfg.TargetLookback}, &read{purpose: readTargets, held: held})
}

// onTargets learns the rows read back for the targets of the answer that
// waited for them, then serves that answer; should the read fail, its
// relations are applied with what the room knows.
func (s *state) onTargets(ctx actor.Context, a *archiveAnswer) {
	held := a.read.held
	if a.res.Err != nil {
		s.log.Debug("reading the archive for a relation's target failed", "err", a.res.Err)
	} else {
		s.learnTargets(a.res.Entries, held.res.Entries)
	}
	held.lookedBack = true
	s.onArchive(ctx, held)
}

// learnTargets records, oldest first, the rows read back that the relations
// of entries name (only those: the room's record is bounded, and the rest
// would push what it has seen out of it), with the content a reply to one of
// them quotes.
func (s *state) learnTargets(rows, entries []archive.Entry) {
	named := map[string]bool{}
	for _, e := range entries {
		for _, t := range e.Rel.TargetIDs() {
			named[t] = true
		}
	}
	for _, e := range rows {
		id := e.Message.BackendMsgID
		if !named[string(id)] && !named[e.ID] && !named[e.OriginID] {
			continue
		}
		if _, _, ok := s.seen.Sent(id); ok {
			continue
		}
		from := entrySender(e)
		out, _ := stanza.Apply(e.Message, e.Body, e.Rel, from, s.seen)
		s.seen.Learn(id, from, e.ID, e.OriginID)
		if !out.IsRelation() {
			s.seen.Note(id, out.Content)
		}
	}
}

func entrySender(e archive.Entry) stanza.Sender {
	return stanza.Sender{Nick: stanza.Resource(e.From), OccupantID: e.Rel.OccupantID, JID: stanza.SenderJID(e.RealJIDs)}
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
	return &OwnIDResult{Err: fmt.Errorf("%w: no message of this account with that origin-id", vocab.ErrUnknownTarget)}
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
			return nil, fmt.Errorf("%w: %s", vocab.ErrUnknownTarget, m.ReactsTo)
		}
		return &stanza.Act{React: string(m.ReactsTo), Reactions: slices.Clone(m.Reactions)}, nil
	}
	from, ids, ok := s.seen.Sent(target)
	if !ok || len(ids) == 0 {
		return nil, fmt.Errorf("%w: %s", vocab.ErrUnknownTarget, target)
	}
	if !s.ours(from) {
		return nil, fmt.Errorf("%w: %s", vocab.ErrNotOwnMessage, target)
	}
	origin := ids[len(ids)-1] // the origin-id (remembered after the id attribute)
	if m.Replaces != "" {
		return &stanza.Act{Replace: origin}, nil
	}
	return &stanza.Act{Retract: origin, RetractSID: string(target)}, nil
}

// onSubject reports the room's subject when it differs from the one last
// reported: a change made while the runtime is in the room, and the subject a
// join shows (the first join: any subject set; a rejoin: one changed while
// the runtime was away). An empty subject at the first join is no subject
// set, not a change.
func (s *state) onSubject(ctx actor.Context, m stanza.Message) {
	if m.Subject == s.occ.subject {
		return
	}
	s.occ.subject = m.Subject
	s.sendEvent(ctx, &vocab.RoomEvent{Topic: s.cfg.Topic, Room: s.cfg.JID, Kind: vocab.RoomSubjectChanged, Subject: m.Subject, By: stanza.Resource(m.From), At: time.Now()})
}

package stanza

import (
	"slices"

	"github.com/parley-go/parley-xmpp/seam"
)

// Seen is a bounded record of a room's recent messages, for Apply to map a
// relation's target: each message's BackendMsgID, the ids its sender gave it
// (its id attribute and origin-id) and its sender, and whether its own
// relations were applied (Remember) or it was only read as a possible target
// (Learn). The oldest is forgotten first. Not safe for concurrent use (the
// room actor owns one).
type Seen struct {
	max      int
	order    []seam.BackendMsgID // a ring, next is the oldest once full
	next     int
	byID     map[seam.BackendMsgID]seenMsg
	bySender map[string][]seam.BackendMsgID // sender's id -> messages
}

type seenMsg struct {
	ids     []string
	from    Sender
	text    string // the start of its content, for a reply's quote
	applied bool   // its own relations were applied (Remember, not Learn)
}

// NewSeen returns a Seen that remembers max messages (at least 1).
func NewSeen(max int) *Seen {
	max = maxInt(max, 1)
	return &Seen{max: max, byID: map[seam.BackendMsgID]seenMsg{}, bySender: map[string][]seam.BackendMsgID{}}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// Len is how many messages s remembers.
func (s *Seen) Len() int { return len(s.byID) }

// Remember records a message whose relations were applied (again: a second
// time changes nothing but that).
func (s *Seen) Remember(id seam.BackendMsgID, from Sender, senderIDs ...string) {
	s.record(id, from, true, senderIDs)
}

// Learn records a message read only as a possible target (older than what
// the room has seen): its own relations are still to be applied.
func (s *Seen) Learn(id seam.BackendMsgID, from Sender, senderIDs ...string) {
	s.record(id, from, false, senderIDs)
}

// Applied reports whether the relations of the message id were applied
// (Remember) while s remembers it.
func (s *Seen) Applied(id seam.BackendMsgID) bool { return s.byID[id].applied }

// Knows reports whether id names a remembered message: its BackendMsgID or
// an id its sender gave it.
func (s *Seen) Knows(id string) bool {
	_, ok := s.byID[seam.BackendMsgID(id)]
	return ok || len(s.bySender[id]) > 0
}

func (s *Seen) record(id seam.BackendMsgID, from Sender, applied bool, senderIDs []string) {
	if id == "" {
		return
	}
	if m, ok := s.byID[id]; ok {
		m.applied = m.applied || applied
		s.byID[id] = m
		return
	}
	if len(s.order) < s.max {
		s.order = append(s.order, id)
	} else {
		s.forget(s.order[s.next])
		s.order[s.next] = id
		s.next = (s.next + 1) % s.max
	}
	var ids []string
	for _, x := range senderIDs {
		if x != "" && !contains(ids, x) {
			ids = append(ids, x)
			s.bySender[x] = append(s.bySender[x], id)
		}
	}
	s.byID[id] = seenMsg{ids: ids, from: from, applied: applied}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Seen) forget(id seam.BackendMsgID) {
	m, ok := s.byID[id]
	if !ok {
		return
	}
	delete(s.byID, id)
	for _, x := range m.ids {
		l := s.bySender[x]
		for i, y := range l {
			if y == id {
				l = append(l[:i:i], l[i+1:]...)
				break
			}
		}
		if len(l) == 0 {
			delete(s.bySender, x)
		} else {
			s.bySender[x] = l
		}
	}
}

// Note keeps the start of a remembered message's content (what a reply to it
// quotes: ReplyQuote).
func (s *Seen) Note(id seam.BackendMsgID, content string) {
	m, ok := s.byID[id]
	if !ok {
		return
	}
	if r := []rune(content); len(r) > MaxQuoteRunes+1 {
		content = string(r[:MaxQuoteRunes+1])
	}
	m.text = content
	s.byID[id] = m
}

// Describe returns a remembered message's sender and the start of its content.
func (s *Seen) Describe(id seam.BackendMsgID) (from Sender, content string, ok bool) {
	m, ok := s.byID[id]
	return m.from, m.text, ok
}

// Sent returns a remembered message's sender and the ids its sender gave it
// (its id attribute and origin-id, first given first).
func (s *Seen) Sent(id seam.BackendMsgID) (from Sender, senderIDs []string, ok bool) {
	m, ok := s.byID[id]
	return m.from, m.ids, ok
}

// BySenderID returns the remembered messages whose sender gave them id,
// oldest first.
func (s *Seen) BySenderID(id string) []seam.BackendMsgID {
	return slices.Clone(s.bySender[id])
}

// Find implements Targets.
func (s *Seen) Find(id string, by *Sender) (seam.BackendMsgID, bool) {
	if id == "" {
		return "", false
	}
	if m, ok := s.byID[seam.BackendMsgID(id)]; ok && (by == nil || by.Same(m.from)) {
		return seam.BackendMsgID(id), true
	}
	var found []seam.BackendMsgID
	for _, b := range s.bySender[id] {
		if by == nil || by.Same(s.byID[b].from) {
			found = append(found, b)
		}
	}
	if len(found) == 0 {
		return "", false
	}
	if by == nil && len(found) > 1 {
		return "", false // two senders chose the same id: neither is meant
	}
	return found[len(found)-1], true // the same sender's newest
}

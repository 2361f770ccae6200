package room

import (
	"errors"
	"fmt"
	"strings"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/seam"
)

// Allowlist admits the messages of the senders it names: occupant nicks, or
// bare real JIDs where the room shows them (a non-anonymous room, or to a
// moderator). A room with one delivers the other senders' messages to nobody
// (subscribers, reads, long-polls), counts them (observe.Room.Filtered), and
// moves every position past them, so no reader is held up. A nick is only as
// good as the room's nick policy (in an open room anyone may take a nick that
// is free); a JID is the server's word.
type Allowlist struct {
	Nicks []string // exact
	JIDs  []string // bare, compared case-insensitively
}

// Check says what is wrong with the allowlist, if anything.
func (a Allowlist) Check() error {
	if len(a.Nicks) == 0 && len(a.JIDs) == 0 {
		return errors.New("an allowlist without nicks or JIDs would withhold every message")
	}
	for _, n := range a.Nicks {
		if n == "" || strings.TrimSpace(n) != n || strings.ContainsAny(n, "/\t\n") {
			return fmt.Errorf("nick %q can't be a nick (empty, surrounding spaces, or a '/')", n)
		}
	}
	for _, j := range a.JIDs {
		local, domain, ok := strings.Cut(j, "@")
		if !ok || local == "" || domain == "" || strings.ContainsAny(j, "/ \t\n") {
			return fmt.Errorf("JID %q is not a bare JID (user@domain)", j)
		}
	}
	return nil
}

// allowSet is an Allowlist ready for lookups.
type allowSet struct {
	nicks map[string]bool
	jids  map[string]bool // lower case
}

func newAllowSet(a *Allowlist) *allowSet {
	if a == nil {
		return nil
	}
	s := &allowSet{nicks: map[string]bool{}, jids: map[string]bool{}}
	for _, n := range a.Nicks {
		s.nicks[n] = true
	}
	for _, j := range a.JIDs {
		s.jids[strings.ToLower(j)] = true
	}
	return s
}

// admits says whether the room delivers a message from nick, whose real JID
// is jid ("" when the room doesn't show it).
func (f *fanout) admits(nick seam.Handle, jid string) bool {
	a := f.allow
	return a == nil || a.nicks[string(nick)] || jid != "" && a.jids[strings.ToLower(jid)]
}

// filter drops from an archive read the messages the allowlist doesn't admit,
// and counts them; NextCursor stays past them.
func (f *fanout) filter(res *archive.Result) {
	if f.allow == nil || res.Err != nil {
		return
	}
	kept := make([]archive.Entry, 0, len(res.Entries)) // the archive's slice is left alone
	for _, e := range res.Entries {
		if f.admits(e.Message.SenderHandle, stanza.SenderJID(e.RealJIDs)) {
			kept = append(kept, e)
		}
	}
	if n := len(res.Entries) - len(kept); n > 0 {
		f.s.cfg.Metrics.Filtered(n)
	}
	res.Entries = kept
}

// withhold passes over a live (or replayed) message the allowlist doesn't
// admit: the subscribers' positions move past it (the long-polls' too: see
// reads.withhold). It returns how many subscribers passed over it.
func (f *fanout) withhold() int {
	f.ring.push(f.last, nil)
	for _, sub := range f.subs {
		if sub.phase == subLive {
			sub.cursor = f.last
		}
	}
	return len(f.subs)
}

// trackOccupant keeps the real JIDs that occupants' presences show, for the
// allowlist to judge live messages (a reflection carries no real JID). Only
// kept when the allowlist names JIDs.
func (f *fanout) trackOccupant(p stanza.Presence) {
	if f.allow == nil || len(f.allow.jids) == 0 {
		return
	}
	nick := stanza.Resource(p.From)
	switch {
	case nick == "" || p.Type == "error":
	case p.Type == "unavailable" || p.JID == "":
		delete(f.occupants, nick)
	default:
		if f.occupants == nil {
			f.occupants = map[string]string{}
		}
		f.occupants[nick] = stanza.Bare(p.JID)
	}
}

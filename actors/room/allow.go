package room

import (
	"strings"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/seam"
)

// allowSet is an Allowlist ready for lookups.
type allowSet struct {
	nicks map[string]bool
	jids  map[string]bool // lower case
}

func newAllowSet(a *vocab.Allowlist) *allowSet {
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

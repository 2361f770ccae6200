package room

import (
	"strconv"
	"time"

	"github.com/parley-go/parley-xmpp/actors/archive"
)

// stampRule says how the server's timestamp of a live message, the one its
// archive row carries, follows from what the reflection carries (which is no
// stamp at all: a room adds none to a live message, and a <delay/> in one is
// the sender's). The room learns it from its archive rows, so a message
// carries one timestamp, live or read back (issue 19).
type stampRule int

const (
	// stampsUnknown: no archive row seen yet.
	stampsUnknown stampRule = iota
	// stampsFromID: the archive id is the stamp in microseconds since the
	// epoch (ejabberd).
	stampsFromID
	// stampsSeconds: stamps are whole seconds, taken when the message was
	// archived, just before the reflection was sent (Prosody).
	stampsSeconds
	// stampsOther: neither: only the archive knows a message's stamp.
	stampsOther
)

// Under stampsSeconds a receipt (read off the socket: stanza.Message.Received)
// near a second's boundary leaves the archived second in doubt: the message
// was archived before the reflection arrived, so just after a boundary
// (transitLag: the reflection's transit, a loaded server's or our own delay)
// it may have been archived in the second before; and just before one
// (clockSkew: a server clock a little ahead of ours) in the second after.
// Each message in doubt costs an archive read, about 1 in 9.
const (
	transitLag = 100 * time.Millisecond
	clockSkew  = 10 * time.Millisecond
)

// stamps is the room's stamp rule and what it was learned from.
type stamps struct {
	rule stampRule
	// fromID, whole: every row seen so far fits that rule.
	fromID, whole bool
}

// learn takes an archive read's rows.
func (st *stamps) learn(entries []archive.Entry) {
	if len(entries) == 0 || st.rule == stampsOther {
		return
	}
	if st.rule == stampsUnknown {
		st.fromID, st.whole = true, true
	}
	for _, e := range entries {
		t := e.Message.Timestamp
		n, err := strconv.ParseInt(string(e.Message.BackendMsgID), 10, 64)
		st.fromID = st.fromID && err == nil && time.UnixMicro(n).Equal(t)
		st.whole = st.whole && t.Nanosecond() == 0
	}
	switch {
	case st.fromID:
		st.rule = stampsFromID
	case st.whole:
		st.rule = stampsSeconds
	default:
		st.rule = stampsOther
	}
}

// live returns the server's stamp of the live message id received at
// received, and whether it is exact; when it isn't, the message is read back
// from the archive, which knows, and the stamp returned is the best guess,
// for a message the archive never supplies. readAfter is how long to put
// that read off so that it serves every message in the same doubt (the rest
// of this boundary's transit window).
func (st *stamps) live(id string, received time.Time) (stamp time.Time, exact bool, readAfter time.Duration) {
	switch st.rule {
	case stampsFromID:
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			return time.UnixMicro(n).UTC(), true, 0
		}
	case stampsSeconds:
		sec := received.Truncate(time.Second)
		into := received.Sub(sec)
		switch {
		case into < transitLag:
			return sec.UTC(), false, transitLag - into
		case into > time.Second-clockSkew:
			return sec.UTC(), false, time.Second - into + transitLag
		}
		return sec.UTC(), true, 0
	}
	return received.UTC(), false, 0
}

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

// secondsGuard is how close to a second's boundary a receipt (read off the
// socket: stanza.Message.Received) leaves the archived second in doubt under
// stampsSeconds: the archive's clock may have been in the second before (the
// reflection's transit) or, by clock skew, the one after. It assumes the
// server's clock within about this of ours and a reflection sent within this
// of its archiving; each message in doubt costs an archive read, so it is
// kept small (1 in 50 messages).
const secondsGuard = 10 * time.Millisecond

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
// for a message the archive never supplies.
func (st *stamps) live(id string, received time.Time) (time.Time, bool) {
	switch st.rule {
	case stampsFromID:
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			return time.UnixMicro(n).UTC(), true
		}
	case stampsSeconds:
		sec := received.Truncate(time.Second)
		into := received.Sub(sec)
		return sec.UTC(), into >= secondsGuard && into <= time.Second-secondsGuard
	}
	return received.UTC(), false
}

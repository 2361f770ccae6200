package room

import (
	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/seam"
)

// lagRing is the room's one ring of the messages it fanned out lately, shared
// by every subscriber that falls behind: each message is held once (the same
// *subscriber.Deliver the live path sent), whoever reads it. A lagging
// subscriber whose cursor lies in the ring is fed from it, in order, without
// reading the archive.
//
// It holds messages only while a subscriber lags: it starts at the cursor of
// the first subscriber to fall behind (every message after it is pushed) and
// is emptied when every subscriber is live again, so a room whose subscribers
// keep up costs nothing here.
//
// Two bounds: maxN entries, and maxBytes of message content. An entry over the
// count leaves the ring (its id becomes the base); content over the bytes is
// dropped from the oldest entries first, which keep their ids: a subscriber at
// such an entry reads its message from the archive, and if the archive never
// supplies it, the room can name it in the HistoryGap it reports.
type lagRing struct {
	maxN, maxBytes int
	active         bool
	ring           []lagEntry // circular once it holds maxN
	head           int        // where the oldest entry is in ring
	n              int
	first          int    // the oldest entry's number (numbers start at 1 and never repeat)
	base           string // the cursor just before the oldest entry
	bytes          int    // content held
	nextDrop       int    // the number of the oldest entry whose content may still be held
}

type entryState uint8

const (
	entryHeld     entryState = iota // its message is in memory
	entryWithheld                   // the allowlist withholds it from everyone: nothing to deliver
	entryDropped                    // its content went for the byte bound: the archive has it
)

type lagEntry struct {
	id    string
	d     *subscriber.Deliver // entryHeld only
	size  int
	state entryState
}

func newLagRing(maxN, maxBytes int) *lagRing {
	return &lagRing{maxN: max(maxN, 1), maxBytes: max(maxBytes, 1), first: 1, nextDrop: 1}
}

// start begins holding the messages after base (a subscriber fell behind).
func (r *lagRing) start(base string) {
	if r.active {
		return
	}
	r.active, r.base = true, base
}

// stop empties the ring (no subscriber lags). Numbers go on from where they
// were: a number a subscriber still holds never names another entry.
func (r *lagRing) stop() {
	end := r.end()
	*r = lagRing{maxN: r.maxN, maxBytes: r.maxBytes, first: end, nextDrop: end}
}

// end is the number the next entry will get.
func (r *lagRing) end() int { return r.first + r.n }

func (r *lagRing) at(num int) *lagEntry { return &r.ring[(r.head+num-r.first)%len(r.ring)] }

// newest is the id of the last entry pushed ("" when none).
func (r *lagRing) newest() string {
	if r.n == 0 {
		return r.base
	}
	return r.at(r.end() - 1).id
}

// push records the message fanned out after the newest entry: d nil means the
// allowlist withheld it.
func (r *lagRing) push(id string, d *subscriber.Deliver) {
	if !r.active {
		return
	}
	e := lagEntry{id: id, d: d, state: entryWithheld}
	if d != nil {
		e.state, e.size = entryHeld, messageSize(d.Msg)
	}
	if r.n == r.maxN {
		old := r.at(r.first)
		if old.state == entryHeld {
			r.bytes -= old.size
		}
		r.base = old.id
		*old = lagEntry{}
		r.head = (r.head + 1) % len(r.ring)
		r.first++
		r.n--
		r.nextDrop = max(r.nextDrop, r.first)
	}
	if len(r.ring) < r.maxN && r.head == 0 {
		r.ring = append(r.ring, e)
	} else {
		r.ring[(r.head+r.n)%len(r.ring)] = e
	}
	r.n++
	r.bytes += e.size
	// Over the byte bound: drop the oldest contents, never the newest entry's.
	for r.bytes > r.maxBytes && r.nextDrop < r.end()-1 {
		old := r.at(r.nextDrop)
		if old.state == entryHeld {
			r.bytes -= old.size
			old.d, old.size, old.state = nil, 0, entryDropped
		}
		r.nextDrop++
	}
}

// pos finds cursor in the ring: the number of its entry, first-1 for the base;
// hint is where it was last time (checked first).
func (r *lagRing) pos(cursor string, hint int) (int, bool) {
	if !r.active {
		return 0, false
	}
	if cursor == r.base {
		return r.first - 1, true
	}
	if hint >= r.first && hint < r.end() && r.at(hint).id == cursor {
		return hint, true
	}
	for num := r.end() - 1; num >= r.first; num-- {
		if r.at(num).id == cursor {
			return num, true
		}
	}
	return 0, false
}

// messageSize is what a message costs the ring, roughly: its strings plus the
// fixed parts of the message and the entry.
func messageSize(m seam.Message) int {
	n := 160 + len(m.Content) + len(m.BackendMsgID) + len(m.Cursor) + len(m.SenderHandle) + len(m.Topic)
	for _, h := range m.Mentions {
		n += 16 + len(h)
	}
	return n
}

package room

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/seam"
)

// Lagging subscribers. A subscriber whose queue is full leaves the live path
// and is fed, as its acknowledgements free its queue, from what the room holds
// in memory first: the room's one ring of recent messages (lagring.go), shared
// by every subscriber, one copy of each message. A subscriber whose cursor lies
// before the ring is fed from archive pages: full MAM pages, each read once per
// room and cursor and kept while a subscriber reads through it, so the room's
// lagging subscribers share their reads. Where the pages reach the ring, the
// subscriber goes on from the ring.
//
// Never a silent skip: the room knows which messages it fanned out after a
// subscriber's cursor (the ring's entries, with their ids even where their
// content went for the byte bound). When the archive has nothing after the
// cursor though the room is past it (ejabberd reflects a message before it
// archives it; a server may fail to store), the subscriber waits and reads
// again, up to Config.ArchiveWait; then the room reports a HistoryGap naming
// the ids skipped (Event.Skipped), counts it, and goes on from the ring.

// subPhase is where one subscriber is.
type subPhase int

const (
	subLive    subPhase = iota // fed from the live path
	subLagging                 // its queue filled: fed from the ring or archive pages, after cursor
	subFeeding                 // lagging, waiting for an archive page it needs
	subStalled                 // lagging; the archive had nothing after cursor though the room is past it: reading again shortly
)

type sub struct {
	pid     *actor.PID
	gate    *subscriber.Gate
	unacked int
	phase   subPhase
	cursor  string // the last message sent to it (or passed over)
	// after: where its next archive read starts, when a page ended past cursor
	// on rows that aren't messages ("": after cursor).
	after  string
	ringAt int // where cursor was last found in the ring (a hint)
	// skipTo: ring entries up to this number whose content is gone are passed
	// over (already reported: the archive skipped them).
	skipTo int
	page   *lagPage // the archive page it reads through, if any
	pageAt int      // the next entry of page for it
	// stallSince: when the archive first had nothing after cursor (zero: not stalled).
	stallSince time.Time
	stalls     int
}

type pagePhase int

const (
	pageReading pagePhase = iota // its archive read is in flight
	pageReady
)

// lagPage is one archive read for lagging subscribers, after since: one full
// MAM page, held while a subscriber reads through it (refs).
type lagPage struct {
	since   string
	phase   pagePhase
	entries []archive.Entry
	next    string // the archive's NextCursor
	refs    int
	// abandoned is closed when the page is forgotten while its read is in
	// flight (its subscribers left): the archive stops paging for it
	// (archive.Query.Done).
	abandoned chan struct{}
}

// forget closes abandoned if the page's read is still in flight.
func (p *lagPage) forget() {
	if p.phase == pageReading && p.abandoned != nil {
		close(p.abandoned)
		p.abandoned = nil
	}
}

// stallWaits are the waits before reading again when the archive has nothing
// after a lagging subscriber's cursor though the room is past it; the last
// repeats until Config.ArchiveWait has passed.
var stallWaits = []time.Duration{50 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond, time.Second}

// lag moves a live subscriber whose queue is full off the live path; the ring
// holds every message from its cursor on.
func (f *fanout) lag(ctx actor.Context, sub *sub) {
	sub.phase = subLagging
	f.ring.start(sub.cursor)
	f.s.notify(ctx, vocab.RoomSubscriberLagging, nil)
}

// lagEnded empties the ring once no subscriber lags.
func (f *fanout) lagEnded() {
	for _, sub := range f.subs {
		if sub.phase != subLive {
			return
		}
	}
	f.ring.stop()
	f.forgetPages()
}

// forgetPages forgets every page, stopping the reads still in flight.
func (f *fanout) forgetPages() {
	for _, p := range f.pages {
		p.forget()
	}
	clear(f.pages)
	f.kept = nil
}

// feedAllLagging feeds every lagging subscriber that isn't waiting for a page.
func (f *fanout) feedAllLagging(ctx actor.Context) {
	for _, sub := range f.subs {
		if sub.phase == subLagging || sub.phase == subStalled {
			f.feedLagging(ctx, sub)
		}
	}
	f.s.cfg.Metrics.SubscriberQueue(f.unacked)
}

// linkLost: archive reads in flight are stale; the next feed reads again.
func (f *fanout) linkLost() {
	for _, sub := range f.subs {
		sub.page = nil
		if sub.phase == subFeeding || sub.phase == subStalled {
			sub.phase = subLagging
		}
	}
	f.forgetPages()
}

// feedLagging sends a lagging subscriber the messages after its cursor while
// its queue has room: from the ring, or from an archive page (read if no page
// holds its cursor). Caught up with the room, it is back on the live path.
func (f *fanout) feedLagging(ctx actor.Context, sub *sub) {
	for sub.unacked < f.s.cfg.SubscriberBuffer {
		if p := sub.page; p != nil {
			switch {
			case p.phase == pageReading:
				sub.phase = subFeeding
				return
			case sub.pageAt < len(p.entries):
				f.fromPage(ctx, sub)
				continue
			}
			empty := len(p.entries) == 0 && p.next == p.since
			f.detach(sub)
			if !empty {
				sub.after = p.next
				continue
			}
			if sub.cursor != f.last && f.stall(ctx, sub) {
				return
			}
			continue
		}
		if sub.cursor == f.last {
			sub.phase, sub.stallSince = subLive, time.Time{}
			f.lagEnded()
			return
		}
		if num, ok := f.ring.pos(sub.cursor, sub.ringAt); ok && num+1 < f.ring.end() {
			sub.ringAt = num
			if e := f.ring.at(num + 1); e.state != entryDropped || num+1 <= sub.skipTo {
				if e.state == entryHeld {
					f.send(ctx, sub, e.d)
				}
				sub.cursor, sub.after, sub.ringAt, sub.stallSince = e.id, "", num+1, time.Time{}
				continue
			}
		}
		if !f.attach(ctx, sub) {
			sub.phase = subFeeding
			return
		}
	}
	sub.phase = subLagging
}

func (f *fanout) send(ctx actor.Context, sub *sub, d *subscriber.Deliver) {
	ctx.Send(sub.pid, d)
	sub.unacked++
	f.unacked++
}

// attach gives sub the archive page that holds what comes after its cursor: a
// page read after it, or one holding it, else a new read of a full page. It
// reports whether the page is there already.
func (f *fanout) attach(ctx actor.Context, sub *sub) bool {
	key := sub.cursor
	if sub.after != "" {
		key = sub.after
	}
	p, at := f.pages[key], 0
	if p == nil {
		p, at = f.pageHolding(key)
	}
	if p == nil {
		s := f.s
		p = &lagPage{since: key, abandoned: make(chan struct{})}
		f.pages[key] = p
		since := seam.Cursor(key)
		// One full MAM page: what a page holds stays a page, whatever the
		// subscribers' buffers.
		s.readArchive(ctx, &archive.Query{Since: &since, Limit: s.cfg.PageSize, Done: p.abandoned}, &read{purpose: readLagging, page: p})
	}
	p.refs++
	sub.page, sub.pageAt = p, at
	return p.phase == pageReady
}

// pageHolding finds a page that holds the message at cursor and more after
// it; at is the entry after it. (A page whose last entry is at cursor has
// nothing more to give: what follows is read after its next.)
func (f *fanout) pageHolding(cursor string) (*lagPage, int) {
	for _, p := range f.pages {
		for i, e := range p.entries[:max(len(p.entries)-1, 0)] {
			if string(e.Message.Cursor) == cursor {
				return p, i + 1
			}
		}
	}
	return nil, 0
}

// detach takes sub off its page. A page nobody reads through any more is
// kept a while (keptPages), for a subscriber behind the one that read it.
func (f *fanout) detach(sub *sub) {
	p := sub.page
	sub.page = nil
	if p.refs--; p.refs > 0 || f.pages[p.since] != p {
		return
	}
	if p.phase != pageReady || len(p.entries) == 0 {
		// A read nobody waits for stops; an empty page is read again.
		p.forget()
		delete(f.pages, p.since)
		return
	}
	f.kept = append(f.kept, p)
	if len(f.kept) > keptPages {
		old := f.kept[0]
		f.kept = f.kept[1:]
		if old.refs <= 0 && f.pages[old.since] == old {
			delete(f.pages, old.since)
		}
	}
}

// keptPages is how many archive pages nobody reads through are kept, for the
// lagging subscribers behind: a few pages of memory per room at most.
const keptPages = 4

// fromPage sends sub the next entry of its page; where the page reaches the
// ring, sub goes on from the ring.
func (f *fanout) fromPage(ctx actor.Context, sub *sub) {
	e := sub.page.entries[sub.pageAt]
	id, cursor := string(e.Message.Cursor), sub.cursor
	if num, ok := f.ring.pos(id, -1); ok && num >= f.ring.first {
		from, inRing := f.ring.pos(sub.cursor, sub.ringAt)
		if !inRing {
			from = f.ring.first - 1
		}
		if from+1 != num || f.ring.at(num).state != entryDropped {
			// The ring holds what the live path saw, in order: go on from there.
			// Whatever it knows of between the cursor and this message that the
			// archive skipped and the ring no longer holds is lost: reported.
			var skipped []seam.BackendMsgID
			if !inRing && f.ring.base != "" && f.ring.base != sub.cursor {
				skipped = append(skipped, seam.BackendMsgID(f.ring.base))
			}
			for k := from + 1; k < num; k++ {
				if f.ring.at(k).state == entryDropped {
					skipped = append(skipped, seam.BackendMsgID(f.ring.at(k).id))
				}
			}
			f.detach(sub)
			if !inRing {
				sub.cursor = f.ring.base
			}
			sub.after = ""
			sub.ringAt, sub.skipTo = from, max(sub.skipTo, num-1)
			if len(skipped) > 0 {
				f.reportSkipped(ctx, sub, skipped, fmt.Errorf("%w: the archive went from %q to %q without %d message(s) the room fanned out in between", vocab.ErrArchiveGap, cursor, id, len(skipped)))
			}
			return
		}
		sub.ringAt = num
	}
	sub.pageAt++
	if f.admits(e.Message.SenderHandle, stanza.SenderJID(e.RealJIDs)) {
		f.send(ctx, sub, &subscriber.Deliver{Msg: e.Message})
	}
	sub.cursor, sub.after, sub.stallSince = id, "", time.Time{}
}

// stall: the archive had nothing after sub's cursor though the room is past
// it. It reports true while sub waits to read again; after ArchiveWait the gap
// is reported and sub goes on from the ring (false).
func (f *fanout) stall(ctx actor.Context, sub *sub) bool {
	s := f.s
	now := time.Now()
	if sub.stallSince.IsZero() {
		sub.stallSince, sub.stalls = now, 0
	}
	if now.Sub(sub.stallSince) < s.cfg.ArchiveWait {
		s.log.Debug("lagging: the archive has nothing after the subscriber's cursor yet; reading again", slog.String("cursor", sub.cursor), slog.Int("tries", sub.stalls+1))
		sub.phase = subStalled
		s.arm(ctx, stallWaits[min(sub.stalls, len(stallWaits)-1)], feedRetry)
		sub.stalls++
		return true
	}
	f.skipGap(ctx, sub)
	return false
}

// skipGap moves sub past what the archive never supplied, to the next message
// the ring holds (or the room's last), and reports the ids skipped.
func (f *fanout) skipGap(ctx actor.Context, sub *sub) {
	r := f.ring
	from := sub.cursor
	num, inRing := r.pos(sub.cursor, sub.ringAt)
	var skipped []seam.BackendMsgID
	unknown := ""
	if !inRing {
		num = r.first - 1
		if r.active && r.base != "" && r.base != sub.cursor {
			skipped = append(skipped, seam.BackendMsgID(r.base))
		}
		unknown = ", and any before them that the room no longer remembers"
	}
	k := num + 1
	for ; k < r.end() && r.at(k).state != entryHeld; k++ {
		if r.at(k).state == entryDropped {
			skipped = append(skipped, seam.BackendMsgID(r.at(k).id))
		}
	}
	switch {
	case !r.active || r.n == 0 || k == r.end():
		sub.cursor = f.last
	case k == r.first:
		sub.cursor, sub.ringAt = r.base, k-1
	default:
		sub.cursor, sub.ringAt = r.at(k-1).id, k-1
	}
	sub.after, sub.stallSince = "", time.Time{}
	f.reportSkipped(ctx, sub, skipped, fmt.Errorf("%w: nothing after %q in the archive for %s though the room fanned out %d message(s) after it%s", vocab.ErrArchiveGap, from, f.s.cfg.ArchiveWait, len(skipped), unknown))
}

func (f *fanout) reportSkipped(ctx actor.Context, _ *sub, ids []seam.BackendMsgID, err error) {
	f.s.log.Error("a lagging subscriber skipped messages the archive never supplied", slog.Any("err", err), slog.Any("ids", ids))
	f.s.event(ctx, vocab.RoomHistoryGap, err, ids)
}

// onPage takes an archive page read for lagging subscribers and feeds every
// subscriber waiting for it.
func (f *fanout) onPage(ctx actor.Context, r *read, res *archive.Result) {
	s, p := f.s, r.page
	if r.epoch != s.epoch || f.pages[p.since] != p || p.phase != pageReading {
		return
	}
	switch {
	case res.Err != nil && errors.Is(res.Err, vocab.ErrLinkLost):
		f.dropPage(p) // the rejoin feeds again
		return
	case res.Err != nil && errors.Is(res.Err, seam.ErrUnknownCursor):
		// Not in the archive (yet): as if it had nothing after the cursor.
		p.entries, p.next = nil, p.since
	case res.Err != nil:
		s.log.Error("feeding a lagging subscriber from the archive failed; retrying", slog.Any("err", res.Err))
		f.dropPage(p)
		s.arm(ctx, time.Second, feedRetry)
		return
	default:
		p.entries, p.next = res.Entries, string(res.NextCursor)
	}
	p.phase = pageReady
	for _, sub := range f.subs {
		if sub.page == p {
			f.feedLagging(ctx, sub)
		}
	}
	s.cfg.Metrics.SubscriberQueue(f.unacked)
}

// dropPage forgets a page; its subscribers read again at their next feed.
func (f *fanout) dropPage(p *lagPage) {
	for _, sub := range f.subs {
		if sub.page == p {
			sub.page, sub.phase = nil, subLagging
		}
	}
	p.forget()
	delete(f.pages, p.since)
}

package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley-go/parley-xmpp/internal/rawclient"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// The verifier: an observer connection (around the proxies, in no room) reads
// each room's archive incrementally, a MAM page at a time from the last id it
// read, while the scenario runs; each subscriber's deliveries are checked
// against what it has read so far, in order, and dropped once checked. So at
// the end only the last seconds of the archives remain to read, and memory
// holds the archives' ids (not every delivery).

// roomLog is what the observer has read of one room's archive, in archive
// order.
type roomLog struct {
	jid    string
	ids    []seam.BackendMsgID
	bodies []string
	index  map[seam.BackendMsgID]int
	byBody map[string][]int
	last   string // the RSM cursor: the last result read, with or without a body
	// repeats: rows the server answered again (same id) after the observer had
	// them; left out (ejabberd was seen repeating rows within one page).
	repeats int
}

func newRoomLog(jid string) *roomLog {
	return &roomLog{jid: jid, index: map[seam.BackendMsgID]int{}, byBody: map[string][]int{}}
}

func (l *roomLog) add(r rawclient.Row) {
	id := seam.BackendMsgID(r.ID)
	if _, ok := l.index[id]; ok {
		l.repeats++
		return
	}
	l.index[id] = len(l.ids)
	l.byBody[r.Body] = append(l.byBody[r.Body], len(l.ids))
	l.ids = append(l.ids, id)
	l.bodies = append(l.bodies, r.Body)
}

// observer reads the rooms' archives on a connection of its own, and dials
// again when it breaks (a server restart).
type observer struct {
	srv  Server
	logs []*roomLog
	cl   *rawclient.Client
	// reads counts MAM pages read.
	reads int
}

// page is the MAM page size the observer asks for (Prosody's dev server caps
// a page at 50).
const page = 50

// poll reads every room's archive from where it stopped to its end.
func (o *observer) poll(ctx context.Context) error {
	for _, l := range o.logs {
		if err := o.pollRoom(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

func (o *observer) pollRoom(ctx context.Context, l *roomLog) error {
	for ctx.Err() == nil {
		if err := o.connect(); err != nil {
			return err
		}
		rows, last, complete, err := o.cl.ArchivePage(l.jid, l.last, page)
		if err != nil {
			select {
			case <-o.cl.Done():
				o.cl.Close()
				o.cl = nil // dial again on the next page
			default:
			}
			return fmt.Errorf("chaos: observer reads %s: %w", l.jid, err)
		}
		o.reads++
		for _, r := range rows {
			l.add(r)
		}
		if complete || last == "" || last == l.last {
			if last != "" {
				l.last = last
			}
			return nil
		}
		l.last = last
	}
	return ctx.Err()
}

func (o *observer) connect() error {
	if o.cl != nil {
		return nil
	}
	cl, err := rawclient.Dial(o.srv.Addr, o.srv.Domain, o.srv.WriterUser, o.srv.WriterPassword)
	if err != nil {
		return fmt.Errorf("chaos: observer connects: %w", err)
	}
	o.cl = cl
	return nil
}

func (o *observer) close() {
	if o.cl != nil {
		o.cl.Close()
		o.cl = nil
	}
}

// fullRead reads each room's archive whole again and reports where it differs
// from what the observer read page by page.
func (o *observer) fullRead(rep *Report) error {
	if err := o.connect(); err != nil {
		return err
	}
	for k, l := range o.logs {
		rows, err := o.cl.Archive(l.jid, page)
		if err != nil {
			return fmt.Errorf("chaos: read the archive of %s whole: %w", l.jid, err)
		}
		whole := newRoomLog(l.jid)
		for _, r := range rows {
			whole.add(r)
		}
		if !slices.Equal(whole.ids, l.ids) {
			rep.ObserverMismatch++
			rep.sample("room %d: read whole, the archive holds %d messages; read page by page during the run, %d (first difference at #%d)",
				k, len(whole.ids), len(l.ids), firstDiff(whole.ids, l.ids))
		}
	}
	return nil
}

func firstDiff(a, b []seam.BackendMsgID) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// recorder is one subscriber's deliveries and the check of them.
type recorder struct {
	runtime, room int
	kind          int  // which of subscriberKind's handlers: 0 plain, 1 slow, 2 panicking
	plain         bool // neither slow nor panicking: its queue is empty between messages
	rec           *recovery

	mu    sync.Mutex
	queue []seam.BackendMsgID // delivered, not yet checked
	n     int                 // deliveries in all

	// The check, touched by the verifier only: next is the archive position
	// expected next; missing holds positions skipped over (lost unless they
	// come later, out of order).
	next                                 int
	missing                              map[int]bool
	lost, duplicated, reordered, phantom int
}

func (r *recorder) add(m seam.Message) {
	now := time.Now()
	r.mu.Lock()
	r.queue = append(r.queue, m.BackendMsgID)
	r.n++
	r.mu.Unlock()
	if r.plain && r.rec != nil {
		r.rec.delivered(r.runtime, r.room, now)
	}
}

func (r *recorder) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// check checks the deliveries made since the last check against l. A delivery
// the observer hasn't read yet waits for the next check (and those after it,
// to keep their order); with final set it is a phantom: the archive doesn't
// hold it.
func (r *recorder) check(l *roomLog, rep *Report, final bool) {
	r.mu.Lock()
	q := r.queue
	r.queue = nil
	r.mu.Unlock()
	for i, id := range q {
		pos, ok := l.index[id]
		switch {
		case !ok && final:
			r.phantom++
			rep.sample("room %d: delivered %s to runtime %d's subscriber of kind %d, which the archive doesn't hold", r.room, id, r.runtime, r.kind)
		case !ok:
			rest := slices.Clone(q[i:])
			r.mu.Lock()
			r.queue = append(rest, r.queue...)
			r.mu.Unlock()
			return
		case pos == r.next:
			r.next++
		case pos > r.next:
			if r.missing == nil {
				r.missing = map[int]bool{}
			}
			for j := r.next; j < pos; j++ {
				r.missing[j] = true
			}
			r.next = pos + 1
		case r.missing[pos]:
			delete(r.missing, pos)
			r.reordered++
			rep.sample("room %d: delivered %s (archive #%d) to runtime %d's subscriber of kind %d after archive #%d", r.room, id, pos, r.runtime, r.kind, r.next-1)
		default:
			r.duplicated++
			rep.sample("room %d: delivered %s (archive #%d) twice to runtime %d's subscriber of kind %d", r.room, id, pos, r.runtime, r.kind)
		}
	}
}

// caughtUp reports whether every message the observer has read reached it.
func (r *recorder) caughtUp(l *roomLog) bool {
	r.mu.Lock()
	pending := len(r.queue)
	r.mu.Unlock()
	return pending == 0 && r.next >= len(l.ids) && len(r.missing) == 0
}

// finish counts what never came: the positions skipped over and the archive's
// tail.
func (r *recorder) finish(l *roomLog, rep *Report) {
	lost := slices.Sorted(func(yield func(int) bool) {
		for p := range r.missing {
			if !yield(p) {
				return
			}
		}
	})
	for p := r.next; p < len(l.ids); p++ {
		lost = append(lost, p)
	}
	r.lost = len(lost)
	for _, p := range lost {
		if len(rep.Samples) >= maxSamples {
			break
		}
		rep.sample("room %d: %s (archive #%d, %q) never delivered to runtime %d's subscriber of kind %d", r.room, l.ids[p], p, l.bodies[p], r.runtime, r.kind)
	}
}

// recovery measures, for every link a runtime loses, the time from the loss
// (the runtime reports Reconnecting) until every one of its rooms has
// delivered a message to its plain subscriber again after the runtime is back
// online: the end of the rejoin and replay. A link lost again before that is
// counted as interrupted and not measured.
type recovery struct {
	mu          sync.Mutex
	rooms       int
	restarting  func() bool
	open        map[int]*outage
	durations   []time.Duration
	restarts    []time.Duration // the subset measured after a server restart
	losses      int
	keepalive   int
	interrupted int
	resumed     int // rooms' RoomResumed events
	rejoined    int // rooms' RoomRejoined events
	// Resumptions that failed (the runtime then recovered in full), by why:
	// refused by the server (its session gone: restarted, or timed out),
	// of which refusedRestart around a server restart; or no resumption
	// within the window (the server's timeout, at most 30 s).
	refused, refusedRestart, windowPassed int
}

// failedResumption classifies a Reconnecting → Reconnecting change: a link
// whose resumption failed reports the loss's error with "(resumption: why)"
// (internal/xmppconn); refused: the server answered <failed/>.
func failedResumption(err error) (failed, refused bool) {
	if err == nil {
		return false, false
	}
	msg := err.Error()
	i := strings.Index(msg, "(resumption: ")
	if i < 0 {
		return false, false
	}
	return true, strings.Contains(msg[i:], "refused to resume the session")
}

func (r *recovery) roomEvent(k runtime.RoomEventKind) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch k {
	case runtime.RoomResumed:
		r.resumed++
	case runtime.RoomRejoined:
		r.rejoined++
	}
}

type outage struct {
	lost, back time.Time
	waiting    map[int]bool
	restart    bool
}

func newRecovery(rooms int, restarting func() bool) *recovery {
	return &recovery{rooms: rooms, restarting: restarting, open: map[int]*outage{}}
}

func (r *recovery) state(rt int, c runtime.StateChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case c.To == runtime.Reconnecting && c.From == runtime.Reconnecting:
		if failed, refused := failedResumption(c.Err); failed {
			switch {
			case !refused:
				r.windowPassed++
			case r.restarting() || r.open[rt] != nil && r.open[rt].restart:
				r.refused++
				r.refusedRestart++
			default:
				r.refused++
			}
		}
	case c.To == runtime.Reconnecting && c.From != runtime.Reconnecting:
		r.losses++
		if errors.Is(c.Err, runtime.ErrKeepAlive) {
			r.keepalive++
		}
		if r.open[rt] != nil {
			r.interrupted++
		}
		o := &outage{lost: c.At, waiting: map[int]bool{}, restart: r.restarting()}
		for k := range r.rooms {
			o.waiting[k] = true
		}
		r.open[rt] = o
	case c.To == runtime.Online:
		if o := r.open[rt]; o != nil && o.back.IsZero() {
			o.back = c.At
		}
	}
}

func (r *recovery) delivered(rt, room int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.open[rt]
	if o == nil || o.back.IsZero() || !at.After(o.back) {
		return
	}
	delete(o.waiting, room)
	if len(o.waiting) > 0 {
		return
	}
	d := at.Sub(o.lost)
	r.durations = append(r.durations, d)
	if o.restart {
		r.restarts = append(r.restarts, d)
	}
	delete(r.open, rt)
}

// percentile returns the p-th percentile (0 < p ≤ 100, nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

package chaos

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parley-go/parley-xmpp/internal/rawclient"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Server is the real server a scenario runs against.
type Server struct {
	Addr     string // host:port
	Domain   string
	MUC      string
	User     string // the account the runtimes share
	Password string
	// The independent writer's account (bare go-xmpp, not through the proxy).
	WriterUser, WriterPassword string
}

// Fault is a kind of fault.
type Fault string

// The faults a scenario injects.
const (
	Kill      Fault = "kill"      // every connection through the proxy dropped at once
	Cut       Fault = "cut"       // links cut mid-stanza
	Blackhole Fault = "blackhole" // half-open links, until the runtimes notice
	Latency   Fault = "latency"   // data delayed for a while
	Bandwidth Fault = "bandwidth" // data throttled for a while
	Slice     Fault = "slice"     // stanzas arriving in small fragments for a while
	Restart   Fault = "restart"   // the server stopped and started again
)

// Options configure a scenario. Zero values pick the defaults in brackets.
type Options struct {
	Server Server
	// Rooms [3], Runtimes behind the proxy [2], subscribers per runtime per room
	// [3: a plain one, a slow one, one whose handler panics now and then].
	Rooms, Runtimes, SubscribersPerRoom int
	// Duration of the writing phase [15s]; each writer (every runtime in every
	// room, and the independent writer in every room) posts every PostEvery [25ms].
	Duration  time.Duration
	PostEvery time.Duration
	// NoIndependentWriter leaves out the writer that bypasses the proxy.
	NoIndependentWriter bool
	// Faults to draw from [all but Restart; Restart too when RestartServer is
	// set], one about every FaultEvery [2s].
	Faults     []Fault
	FaultEvery time.Duration
	// RestartServer stops and starts the server (its rooms persistent).
	RestartServer func(context.Context) error
	// Seed makes the faults and their timing repeatable [0: from the clock].
	Seed uint64
	// Log receives progress lines [none].
	Log func(string)
	// Tune adjusts each runtime's configuration.
	Tune func(*runtime.Config)
	// TopicPrefix names the scenario's fresh topics [chaos].
	TopicPrefix string
}

// Report holds a scenario's figures.
type Report struct {
	Seed        uint64
	Faults      map[Fault]int
	Rooms       int
	Subscribers int
	// Messages the archives hold for the scenario's rooms.
	Messages int
	// Deliveries made to subscribers in all.
	Deliveries int
	// Lost, Duplicated, Reordered and Phantom count, over every subscriber,
	// archive messages it didn't get, extra copies it got, messages it got out
	// of archive order, and messages it got that the archive doesn't hold.
	Lost, Duplicated, Reordered, Phantom int
	// Posts made through the runtimes; Resolved returned the id the archive holds
	// for them, once; Failed returned an error; Wrong returned an id the archive
	// doesn't hold for that post.
	Posts, Resolved, Failed, Wrong int
	// IndependentPosts made around the proxy.
	IndependentPosts int
	// ArchiveDuplicates: a post the archive holds more than once.
	ArchiveDuplicates int
	// LongestRecovery: the longest wait, from a runtime losing its link to the
	// first message reaching one of its subscribers again (the end of the
	// rejoin and replay); Recoveries holds each.
	LongestRecovery time.Duration
	Recoveries      []time.Duration
	Samples         []string // the first few problems, for the log
	Elapsed         time.Duration
	// PerRoom breaks the figures down by room.
	PerRoom []RoomReport
}

// RoomReport holds one room's figures.
type RoomReport struct {
	Topic                       seam.Topic
	Messages, Posts, Deliveries int
	Lost, Duplicated, Reordered int
}

// OK reports whether nothing was lost, duplicated, reordered or invented, and
// every post resolved once with the archive's id.
func (r *Report) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Reordered == 0 && r.Phantom == 0 &&
		r.Failed == 0 && r.Wrong == 0 && r.ArchiveDuplicates == 0 && r.Resolved == r.Posts
}

func (r *Report) String() string {
	var b strings.Builder
	kinds := slices.Sorted(func(yield func(Fault) bool) {
		for k := range r.Faults {
			if !yield(k) {
				return
			}
		}
	})
	var fs []string
	total := 0
	for _, k := range kinds {
		fs = append(fs, fmt.Sprintf("%s %d", k, r.Faults[k]))
		total += r.Faults[k]
	}
	rec := slices.Clone(r.Recoveries)
	slices.Sort(rec)
	p50 := time.Duration(0)
	if len(rec) > 0 {
		p50 = rec[len(rec)/2]
	}
	fmt.Fprintf(&b, "chaos seed %d, %s\n", r.Seed, r.Elapsed.Round(time.Second))
	fmt.Fprintf(&b, "  faults injected   %d (%s)\n", total, strings.Join(fs, ", "))
	fmt.Fprintf(&b, "  messages          %d in %d rooms (%d posted through the runtimes, %d around them)\n", r.Messages, r.Rooms, r.Posts, r.IndependentPosts)
	fmt.Fprintf(&b, "  deliveries        %d to %d subscribers\n", r.Deliveries, r.Subscribers)
	fmt.Fprintf(&b, "  lost              %d\n", r.Lost)
	fmt.Fprintf(&b, "  duplicated        %d\n", r.Duplicated)
	fmt.Fprintf(&b, "  reordered         %d\n", r.Reordered)
	fmt.Fprintf(&b, "  phantom           %d\n", r.Phantom)
	fmt.Fprintf(&b, "  posts resolved    %d of %d once with the archive's id (%d failed, %d wrong id, %d twice in the archive)\n", r.Resolved, r.Posts, r.Failed, r.Wrong, r.ArchiveDuplicates)
	fmt.Fprintf(&b, "  recovery          longest %s, p50 %s over %d lost links (link lost → first message delivered again)\n", r.LongestRecovery.Round(time.Millisecond), p50.Round(time.Millisecond), len(rec))
	for _, s := range r.Samples {
		fmt.Fprintf(&b, "  ! %s\n", s)
	}
	return b.String()
}

func (r *Report) sample(format string, a ...any) {
	if len(r.Samples) < 10 {
		r.Samples = append(r.Samples, fmt.Sprintf(format, a...))
	}
}

type delivery struct {
	id seam.BackendMsgID
	at time.Time
}

// recorder is one subscriber's deliveries.
type recorder struct {
	runtime int
	kind    int  // which of subscriberKind's handlers: 0 plain, 1 slow, 2 panicking
	plain   bool // neither slow nor panicking: its queue is empty between messages
	mu      sync.Mutex
	got     []delivery
}

func (r *recorder) add(m seam.Message) {
	r.mu.Lock()
	r.got = append(r.got, delivery{m.BackendMsgID, time.Now()})
	r.mu.Unlock()
}

func (r *recorder) snapshot() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

type postResult struct {
	room    int
	content string
	id      seam.BackendMsgID
	err     error
}

// linkLosses records when each runtime lost its link and when it was back.
type linkLosses struct {
	mu   sync.Mutex
	at   map[int][]time.Time
	back map[int][]time.Time
}

func (l *linkLosses) add(rt int, c runtime.StateChange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case c.To == runtime.Reconnecting && c.From != runtime.Reconnecting:
		l.at[rt] = append(l.at[rt], c.At)
	case c.To == runtime.Online:
		l.back[rt] = append(l.back[rt], c.At)
	}
}

func (o *Options) defaults() {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&o.Rooms, 3)
	set(&o.Runtimes, 2)
	set(&o.SubscribersPerRoom, 3)
	if o.Duration <= 0 {
		o.Duration = 15 * time.Second
	}
	if o.PostEvery <= 0 {
		o.PostEvery = 25 * time.Millisecond
	}
	if o.FaultEvery <= 0 {
		o.FaultEvery = 2 * time.Second
	}
	if len(o.Faults) == 0 {
		o.Faults = []Fault{Kill, Cut, Blackhole, Latency, Bandwidth, Slice}
		if o.RestartServer != nil {
			o.Faults = append(o.Faults, Restart)
		}
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	if o.Log == nil {
		o.Log = func(string) {}
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = "chaos"
	}
}

// Run runs a scenario: runtimes behind a fault-injecting proxy subscribe to
// fresh rooms and post to them, an independent client posts around the proxy,
// faults are drawn from the seed, and at the end every subscriber's deliveries
// and every post are checked against the rooms' archives, read by an
// independent client.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	start := time.Now()
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	rep := &Report{Seed: o.Seed, Faults: map[Fault]int{}, Rooms: o.Rooms}
	o.Log(fmt.Sprintf("chaos: seed %d (repeat the faults with this seed)", o.Seed))

	proxy, err := NewProxy(o.Server.Addr)
	if err != nil {
		return nil, err
	}
	defer proxy.Close()

	run := strings.ToLower(crand.Text()[:8])
	topics := make([]seam.Topic, o.Rooms)
	for i := range topics {
		topics[i] = seam.Topic(fmt.Sprintf("%s-%s-%d", o.TopicPrefix, run, i))
	}

	// The runtimes, through the proxy.
	losses := &linkLosses{at: map[int][]time.Time{}, back: map[int][]time.Time{}}
	rts := make([]*runtime.Runtime, o.Runtimes)
	for i := range rts {
		cfg := runtime.Config{
			Service: "xmpp://" + proxy.Addr(), Domain: o.Server.Domain, MUCService: o.Server.MUC,
			Username: o.Server.User, Password: o.Server.Password,
			KeepAlive: time.Second, KeepAliveTimeout: time.Second,
			ReconnectWait: 50 * time.Millisecond, MaxReconnectWait: time.Second,
			DialTimeout: 5 * time.Second, RequestTimeout: 5 * time.Second,
			JoinTimeout: 20 * time.Second, PostTimeout: 10 * time.Second,
			SelfPing: 3 * time.Second,
		}
		if i%2 == 1 {
			cfg.SubscriberBuffer = 8 // small queues: slow subscribers fall back to the archive
		}
		if o.Tune != nil {
			o.Tune(&cfg)
		}
		user := cfg.OnStateChange
		cfg.OnStateChange = func(c runtime.StateChange) {
			losses.add(i, c)
			if user != nil {
				user(c)
			}
		}
		rt, err := runtime.New(cfg)
		if err != nil {
			return nil, err
		}
		if err := rt.Connect(ctx); err != nil {
			return nil, fmt.Errorf("chaos: connect runtime %d through the proxy: %w", i, err)
		}
		rts[i] = rt
		defer func() {
			c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = rt.Disconnect(c)
		}()
	}

	// Subscribers, before any post.
	var recs []*recorder
	for r, rt := range rts {
		for k, topic := range topics {
			for j := range o.SubscribersPerRoom {
				rec := &recorder{runtime: r, kind: j % 3, plain: j%3 == 0}
				recs = append(recs, rec)
				h := subscriberKind(j, rec)
				sub, err := rt.Subscribe(ctx, topic, h)
				if err != nil {
					return nil, fmt.Errorf("chaos: subscribe to room %d: %w", k, err)
				}
				defer sub.Close()
			}
		}
	}
	rep.Subscribers = len(recs)
	subsByRoom := func(k int) []*recorder {
		var out []*recorder
		for r := range o.Runtimes {
			base := (r*o.Rooms + k) * o.SubscribersPerRoom
			out = append(out, recs[base:base+o.SubscribersPerRoom]...)
		}
		return out
	}

	// The independent writer, around the proxy.
	var indep *rawclient.Client
	rooms := make([]string, o.Rooms)
	for k, t := range topics {
		local, err := runtime.RoomLocalpart(t)
		if err != nil {
			return nil, err
		}
		rooms[k] = local + "@" + o.Server.MUC
	}
	if !o.NoIndependentWriter {
		indep, err = rawclient.Dial(o.Server.Addr, o.Server.Domain, o.Server.WriterUser, o.Server.WriterPassword)
		if err != nil {
			return nil, fmt.Errorf("chaos: independent writer: %w", err)
		}
		defer indep.Close()
		for _, room := range rooms {
			if err := indep.Join(room, "independent-"+run); err != nil {
				return nil, fmt.Errorf("chaos: independent writer joins %s: %w", room, err)
			}
		}
	}

	// Writers.
	o.Log(fmt.Sprintf("chaos: %d runtimes, %d rooms, %d subscribers; writing for %s with a fault about every %s", o.Runtimes, o.Rooms, len(recs), o.Duration, o.FaultEvery))
	writeCtx, stopWriting := context.WithTimeout(ctx, o.Duration)
	defer stopWriting()
	var (
		mu      sync.Mutex
		results []postResult
		indepN  int
		wg      sync.WaitGroup
	)
	for r, rt := range rts {
		for k, topic := range topics {
			wg.Go(func() {
				for seq := 0; writeCtx.Err() == nil; seq++ {
					content := fmt.Sprintf("%s r%d k%d #%d", run, r, k, seq)
					pctx, cancel := context.WithTimeout(ctx, 90*time.Second)
					id, err := rt.Post(pctx, topic, "chaos", content, seam.PostOptions{})
					cancel()
					mu.Lock()
					results = append(results, postResult{room: k, content: content, id: id, err: err})
					mu.Unlock()
					sleepCtx(writeCtx, o.PostEvery)
				}
			})
		}
	}
	if indep != nil {
		for k, room := range rooms {
			wg.Go(func() {
				for seq := 0; writeCtx.Err() == nil; seq++ {
					if _, err := indep.Post(room, fmt.Sprintf("%s independent k%d #%d", run, k, seq), ""); err == nil {
						mu.Lock()
						indepN++
						mu.Unlock()
					}
					sleepCtx(writeCtx, 4*o.PostEvery)
				}
			})
		}
	}

	// Faults.
	for writeCtx.Err() == nil {
		sleepCtx(writeCtx, time.Duration(float64(o.FaultEvery)*(0.5+rng.Float64())))
		if writeCtx.Err() != nil {
			break
		}
		kind := o.Faults[rng.IntN(len(o.Faults))]
		at := time.Now()
		if err := inject(writeCtx, ctx, proxy, kind, rng, rts, o); err != nil {
			o.Log(fmt.Sprintf("chaos: fault %s: %v", kind, err))
			continue
		}
		rep.Faults[kind]++
		o.Log(fmt.Sprintf("chaos: %s at +%s", kind, at.Sub(start).Round(time.Millisecond)))
	}
	wg.Wait()
	proxy.Heal()
	o.Log("chaos: writing done; waiting for the runtimes to settle")
	if err := waitOnline(ctx, rts, 60*time.Second); err != nil {
		return nil, err
	}

	// The truth: each room's archive, read around the runtime.
	reader, err := rawclient.Dial(o.Server.Addr, o.Server.Domain, o.Server.WriterUser, o.Server.WriterPassword)
	if err != nil {
		return nil, fmt.Errorf("chaos: archive reader: %w", err)
	}
	defer reader.Close()
	archives := make([][]rawclient.Row, o.Rooms)
	for k, room := range rooms {
		if archives[k], err = reader.Archive(room, 50); err != nil {
			return nil, fmt.Errorf("chaos: read the archive of %s: %w", room, err)
		}
		rep.Messages += len(archives[k])
	}

	// Let every subscriber catch up with its archive.
	deadline := time.Now().Add(60 * time.Second)
	for k := range topics {
		for _, rec := range subsByRoom(k) {
			for len(rec.snapshot()) < len(archives[k]) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	time.Sleep(200 * time.Millisecond) // room for duplicates to show

	// Compare.
	rep.PerRoom = make([]RoomReport, len(topics))
	for k := range topics {
		rr := &rep.PerRoom[k]
		rr.Topic, rr.Messages = topics[k], len(archives[k])
		before := *rep
		index := map[seam.BackendMsgID]int{}
		for i, row := range archives[k] {
			index[seam.BackendMsgID(row.ID)] = i
		}
		for _, rec := range subsByRoom(k) {
			got := rec.snapshot()
			rep.Deliveries += len(got)
			seen := map[seam.BackendMsgID]bool{}
			last := -1
			for _, d := range got {
				i, ok := index[d.id]
				switch {
				case !ok:
					rep.Phantom++
					rep.sample("room %d: delivered %s, which the archive doesn't hold", k, d.id)
					continue
				case seen[d.id]:
					rep.Duplicated++
					rep.sample("room %d: delivered %s twice", k, d.id)
					continue
				}
				seen[d.id] = true
				if i < last {
					rep.Reordered++
					rep.sample("room %d: delivered %s (archive #%d) after archive #%d", k, d.id, i, last)
				}
				last = max(last, i)
			}
			for _, row := range archives[k] {
				if !seen[seam.BackendMsgID(row.ID)] {
					rep.Lost++
					rep.sample("room %d: %s (%q) never delivered to runtime %d's subscriber of kind %d", k, row.ID, row.Body, rec.runtime, rec.kind)
				}
			}
		}
		rr.Deliveries = rep.Deliveries - before.Deliveries
		rr.Lost, rr.Duplicated = rep.Lost-before.Lost, rep.Duplicated-before.Duplicated
		rr.Reordered = rep.Reordered - before.Reordered
	}
	byContent := make([]map[string][]string, o.Rooms)
	for k, rows := range archives {
		byContent[k] = map[string][]string{}
		for _, row := range rows {
			byContent[k][row.Body] = append(byContent[k][row.Body], row.ID)
		}
	}
	mu.Lock()
	rep.Posts, rep.IndependentPosts = len(results), indepN
	for _, p := range results {
		rep.PerRoom[p.room].Posts++
		ids := byContent[p.room][p.content]
		switch {
		case p.err != nil:
			rep.Failed++
			rep.sample("post %q failed: %v", p.content, p.err)
		case len(ids) > 1:
			rep.ArchiveDuplicates++
			rep.sample("post %q is in the archive %d times", p.content, len(ids))
		case len(ids) == 0 || ids[0] != string(p.id):
			rep.Wrong++
			rep.sample("post %q resolved with %s; the archive holds %v", p.content, p.id, ids)
		default:
			rep.Resolved++
		}
	}
	mu.Unlock()
	rep.recoveries(losses, recs)
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// subscriberKind returns the j-th kind of subscriber of a room: plain, slow, or
// one whose handler panics on every 13th message (a panic still counts as
// delivered: the handler ran).
func subscriberKind(j int, rec *recorder) seam.Handler {
	switch j % 3 {
	case 1:
		return func(m seam.Message) {
			rec.add(m)
			time.Sleep(2 * time.Millisecond)
		}
	case 2:
		n := 0
		return func(m seam.Message) {
			rec.add(m)
			if n++; n%13 == 0 {
				panic("chaos: a handler that panics")
			}
		}
	}
	return rec.add
}

// inject injects one fault; holds are cut short when ctx (the writing phase)
// ends, but a server restart always runs to its end (under outer).
func inject(ctx, outer context.Context, p *Proxy, kind Fault, rng *rand.Rand, rts []*runtime.Runtime, o Options) error {
	hold := func() { sleepCtx(ctx, time.Duration(500+rng.IntN(1500))*time.Millisecond) }
	switch kind {
	case Kill:
		return p.KillAll()
	case Cut:
		if err := p.CutAfter(30 + rng.IntN(3000)); err != nil {
			return err
		}
		sleepCtx(ctx, 300*time.Millisecond)
	case Blackhole:
		if err := p.Blackhole(); err != nil {
			return err
		}
		// Until every runtime has given its link up (its keepalive found it
		// dead): Toxiproxy drops what it held back, so healing earlier would hand
		// a live link a hole in its byte stream, which real TCP never does.
		until := time.Now().Add(15 * time.Second)
		for time.Now().Before(until) && !allState(rts, runtime.Reconnecting) {
			time.Sleep(10 * time.Millisecond)
		}
	case Latency:
		if err := p.Latency(time.Duration(50+rng.IntN(200))*time.Millisecond, 20*time.Millisecond); err != nil {
			return err
		}
		hold()
	case Bandwidth:
		if err := p.Bandwidth(8 + rng.IntN(56)); err != nil {
			return err
		}
		hold()
	case Slice:
		if err := p.Slice(16+rng.IntN(240), time.Duration(50+rng.IntN(950))*time.Microsecond); err != nil {
			return err
		}
		hold()
	case Restart:
		if o.RestartServer == nil {
			return errors.New("no RestartServer hook")
		}
		return o.RestartServer(outer)
	default:
		return fmt.Errorf("unknown fault %q", kind)
	}
	p.Heal()
	return nil
}

func allState(rts []*runtime.Runtime, s runtime.State) bool {
	for _, rt := range rts {
		if rt.State() != s {
			return false
		}
	}
	return true
}

func waitOnline(ctx context.Context, rts []*runtime.Runtime, d time.Duration) error {
	until := time.Now().Add(d)
	for !allState(rts, runtime.Online) {
		if time.Now().After(until) || ctx.Err() != nil {
			return fmt.Errorf("chaos: runtimes not back online after %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// recoveries measures, for every link a runtime lost, how long until a message
// reached one of its plain subscribers on the new link.
func (r *Report) recoveries(losses *linkLosses, recs []*recorder) {
	losses.mu.Lock()
	defer losses.mu.Unlock()
	for rt, times := range losses.at {
		var got []delivery
		for _, rec := range recs {
			if rec.runtime == rt && rec.plain {
				got = append(got, rec.snapshot()...)
			}
		}
		sort.Slice(got, func(i, j int) bool { return got[i].at.Before(got[j].at) })
		for _, t := range times {
			// Messages still queued for a subscriber when the link went are not a
			// recovery: count from the first delivery after the link is back.
			back := losses.back[rt]
			j := sort.Search(len(back), func(j int) bool { return back[j].After(t) })
			if j == len(back) {
				continue
			}
			i := sort.Search(len(got), func(i int) bool { return got[i].at.After(back[j]) })
			if i == len(got) {
				continue
			}
			d := got[i].at.Sub(t)
			r.Recoveries = append(r.Recoveries, d)
			r.LongestRecovery = max(r.LongestRecovery, d)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

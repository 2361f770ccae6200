package chaos

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	// Rooms [3], Runtimes behind the proxies [2], subscribers per runtime per
	// room [3: a plain one, a slow one, one whose handler panics now and then].
	Rooms, Runtimes, SubscribersPerRoom int
	// Duration of the writing phase [15s]; each writer (every runtime in every
	// room, and the independent writer in every room) posts every PostEvery [25ms].
	Duration  time.Duration
	PostEvery time.Duration
	// NoIndependentWriter leaves out the writer that bypasses the proxies.
	NoIndependentWriter bool
	// Faults to draw from [all but Restart; Restart too when RestartServer is
	// set]. Each runtime connects through a proxy of its own and draws its link
	// faults on its own schedule, one about every FaultEvery [2s] (from half to
	// one and a half times it), so faults on different links overlap. Weights
	// sets how often each kind is drawn relative to the others [1 each].
	Faults     []Fault
	FaultEvery time.Duration
	Weights    map[Fault]int
	// A Restart in Faults restarts the server on a schedule of its own, about
	// every RestartEvery [FaultEvery], through RestartServer (rooms persistent).
	RestartEvery  time.Duration
	RestartServer func(context.Context) error
	// VerifyEvery is how often the observer reads the archives' new messages
	// and checks the deliveries made since [2s].
	VerifyEvery time.Duration
	// FullRead, at the end, reads every archive whole once more and counts any
	// difference from what the observer read page by page (ObserverMismatch).
	FullRead bool
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
	Seed uint64
	// Faults counts the faults injected by kind; Kill counts the links it cut
	// (a kill that found a runtime between connections cuts none and is not
	// counted), Restart the server restarts.
	Faults      map[Fault]int
	Rooms       int
	Runtimes    int
	Subscribers int
	// Messages the archives hold for the scenario's rooms.
	Messages int
	// Deliveries made to subscribers in all.
	Deliveries int
	// Lost, Duplicated, Reordered and Phantom count, over every subscriber,
	// archive messages it didn't get, extra copies it got, messages it got out
	// of archive order, and messages it got that the archive doesn't hold.
	Lost, Duplicated, Reordered, Phantom int
	// Posts made through the runtimes, each with one outcome: Resolved returned
	// the id the archive holds for it, once; InDoubt returned an error wrapping
	// seam.ErrPostInDoubt, and the archive decides (InDoubtLanded of them are in
	// it, once; the rest are not); Failed returned another error and the
	// archive doesn't hold it; Wrong returned an id the archive doesn't hold
	// for it, or an error though the archive holds it.
	Posts, Resolved, InDoubt, InDoubtLanded, Failed, Wrong int
	// IndependentPosts made around the proxies.
	IndependentPosts int
	// ArchiveDuplicates: a post the archive holds more than once.
	ArchiveDuplicates int
	// LinkLosses the runtimes reported (kills, cuts, detected blackholes,
	// server restarts, and links dropped for an unanswered keepalive:
	// KeepaliveLosses of them).
	LinkLosses, KeepaliveLosses int
	// RoomsResumed and RoomsRejoined count the rooms' recoveries by path:
	// a resumed link (XEP-0198: RoomResumed) or a full recovery
	// (RoomRejoined), one per room each time.
	RoomsResumed, RoomsRejoined int
	// ResumesRefused: lost links whose resumption the server refused (its
	// session gone: it restarted, or the session timed out), ResumesRefusedRestart
	// of them around a server restart; ResumeWindowPassed: lost links not
	// resumed within the window (the server's timeout, at most 30 s). Each
	// then recovered in full.
	ResumesRefused, ResumesRefusedRestart, ResumeWindowPassed int
	// Recoveries holds, for each lost link, the time from the loss (the runtime
	// reports Reconnecting) until every room of that runtime delivered a
	// message again, after the runtime was back online (the end of the rejoin
	// and replay); RestartRecoveries the subset of losses caused by a server
	// restart. Interrupted counts losses followed by another before that.
	LongestRecovery   time.Duration
	Recoveries        []time.Duration
	RestartRecoveries []time.Duration
	Interrupted       int
	// ArchiveRepeats: rows the server answered again in a later MAM page or the
	// same one (left out); ObserverMismatch: rooms whose archive, read whole at
	// the end (Options.FullRead), differs from what was read page by page.
	ArchiveRepeats, ObserverMismatch int
	// ArchiveReads: MAM pages the observer read.
	ArchiveReads int
	Samples      []string // the first few problems, for the log
	// Writing is how long the writers wrote; Settle the wait, once they
	// stopped, for the runtimes to be online; Verify the rest, until the
	// verdict: of it, ReadTail read the archives' last messages (to a page
	// with nothing new), CatchUp waited until every subscriber had every
	// message (or the deadline), and FullReadTime read the archives whole again
	// (Options.FullRead).
	Writing, Settle, Verify         time.Duration
	ReadTail, CatchUp, FullReadTime time.Duration
	Elapsed                         time.Duration
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
// every post resolved once in agreement with the archive.
func (r *Report) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Reordered == 0 && r.Phantom == 0 &&
		r.Failed == 0 && r.Wrong == 0 && r.ArchiveDuplicates == 0 && r.ObserverMismatch == 0 &&
		r.Resolved+r.InDoubt == r.Posts
}

// FaultsTotal is the number of faults injected (kills counted by links cut).
func (r *Report) FaultsTotal() int {
	n := 0
	for _, v := range r.Faults {
		n += v
	}
	return n
}

// FaultKinds lists the faults by kind, "kill 1040, cut 120, ...", in a fixed
// order.
func (r *Report) FaultKinds() string {
	var fs []string
	for _, k := range []Fault{Kill, Cut, Blackhole, Latency, Bandwidth, Slice, Restart} {
		if n, ok := r.Faults[k]; ok {
			fs = append(fs, fmt.Sprintf("%s %d", k, n))
		}
	}
	return strings.Join(fs, ", ")
}

// RecoveryP returns the p-th percentile of the recoveries (0 < p ≤ 100).
func (r *Report) RecoveryP(p float64) time.Duration { return percentile(r.Recoveries, p) }

func (r *Report) String() string {
	var b strings.Builder
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	fmt.Fprintf(&b, "chaos seed %d, %s (writing %s)\n", r.Seed, r.Elapsed.Round(time.Second), r.Writing.Round(time.Second))
	fmt.Fprintf(&b, "  faults injected   %d (%s; kills counted by links cut)\n", r.FaultsTotal(), r.FaultKinds())
	fmt.Fprintf(&b, "  messages          %d in %d rooms (%d posted through %d runtimes, %d around them)\n", r.Messages, r.Rooms, r.Posts, r.Runtimes, r.IndependentPosts)
	fmt.Fprintf(&b, "  deliveries        %d to %d subscribers\n", r.Deliveries, r.Subscribers)
	fmt.Fprintf(&b, "  lost              %d\n", r.Lost)
	fmt.Fprintf(&b, "  duplicated        %d\n", r.Duplicated)
	fmt.Fprintf(&b, "  reordered         %d\n", r.Reordered)
	fmt.Fprintf(&b, "  phantom           %d\n", r.Phantom)
	fmt.Fprintf(&b, "  posts             %d of %d resolved once with the archive's id; %d in doubt (the archive holds %d of them, once); %d failed; %d wrong; %d twice in the archive\n",
		r.Resolved, r.Posts, r.InDoubt, r.InDoubtLanded, r.Failed, r.Wrong, r.ArchiveDuplicates)
	fmt.Fprintf(&b, "  recovery          p50 %s, p99 %s, longest %s over %d lost links (link lost → every room of the runtime delivering again)\n",
		ms(r.RecoveryP(50)), ms(r.RecoveryP(99)), ms(r.LongestRecovery), len(r.Recoveries))
	if len(r.RestartRecoveries) > 0 {
		fmt.Fprintf(&b, "                    after a server restart: p50 %s, p99 %s over %d\n", ms(percentile(r.RestartRecoveries, 50)), ms(percentile(r.RestartRecoveries, 99)), len(r.RestartRecoveries))
	}
	fmt.Fprintf(&b, "  link losses       %d (%d for an unanswered keepalive; %d lost again before every room delivered)\n", r.LinkLosses, r.KeepaliveLosses, r.Interrupted)
	fmt.Fprintf(&b, "  room recoveries   %d resumed (stream management), %d rejoined and replayed\n", r.RoomsResumed, r.RoomsRejoined)
	fmt.Fprintf(&b, "  resumptions failed %d refused by the server (%d around a server restart), %d not resumed within the window: recovered in full\n",
		r.ResumesRefused, r.ResumesRefusedRestart, r.ResumeWindowPassed)
	fmt.Fprintf(&b, "  archives          read incrementally in %d MAM pages (%d rows answered twice and left out", r.ArchiveReads, r.ArchiveRepeats)
	if r.ObserverMismatch > 0 {
		fmt.Fprintf(&b, "; %d rooms differ when read whole", r.ObserverMismatch)
	}
	fmt.Fprintf(&b, ")\n")
	caught := "not every subscriber caught up within a minute"
	if r.CatchUp > 0 {
		caught = fmt.Sprintf("every subscriber caught up in %s", ms(r.CatchUp))
	}
	fmt.Fprintf(&b, "  after the writing runtimes online in %s, then verified in %s (archives read to their end in %s, %s", ms(r.Settle), ms(r.Verify), ms(r.ReadTail), caught)
	if r.FullReadTime > 0 {
		fmt.Fprintf(&b, ", archives read whole again in %s for the cross-check", ms(r.FullReadTime))
	}
	fmt.Fprintf(&b, ")\n")
	for _, s := range r.Samples {
		fmt.Fprintf(&b, "  ! %s\n", s)
	}
	return b.String()
}

const maxSamples = 10

func (r *Report) sample(format string, a ...any) {
	if len(r.Samples) < maxSamples {
		r.Samples = append(r.Samples, fmt.Sprintf(format, a...))
	}
}

type postResult struct {
	room    int
	content string
	id      seam.BackendMsgID
	err     error
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
	setD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	setD(&o.Duration, 15*time.Second)
	setD(&o.PostEvery, 25*time.Millisecond)
	setD(&o.FaultEvery, 2*time.Second)
	setD(&o.RestartEvery, o.FaultEvery)
	setD(&o.VerifyEvery, 2*time.Second)
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

// linkFaults returns the faults drawn per link, each repeated by its weight.
func (o *Options) linkFaults() []Fault {
	var out []Fault
	for _, f := range o.Faults {
		if f == Restart {
			continue
		}
		w, ok := o.Weights[f]
		if !ok {
			w = 1
		}
		for range w {
			out = append(out, f)
		}
	}
	return out
}

// faultCounter counts faults from several goroutines.
type faultCounter struct {
	mu sync.Mutex
	n  map[Fault]int
}

func (c *faultCounter) add(f Fault, n int) {
	c.mu.Lock()
	c.n[f] += n
	c.mu.Unlock()
}

func (c *faultCounter) snapshot() map[Fault]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// Run runs a scenario: runtimes, each behind a fault-injecting proxy of its
// own, subscribe to fresh rooms and post to them, an independent client posts
// around the proxies, faults are drawn from the seed, and every subscriber's
// deliveries and every post are checked against the rooms' archives, read
// during the run by an independent client.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	start := time.Now()
	rep := &Report{Seed: o.Seed, Rooms: o.Rooms, Runtimes: o.Runtimes}
	faults := &faultCounter{n: map[Fault]int{}}
	o.Log(fmt.Sprintf("chaos: seed %d (repeat the faults with this seed)", o.Seed))

	proxies := make([]*Proxy, o.Runtimes)
	for i := range proxies {
		p, err := NewProxy(o.Server.Addr)
		if err != nil {
			return nil, err
		}
		defer p.Close()
		proxies[i] = p
	}

	run := strings.ToLower(crand.Text()[:8])
	topics := make([]seam.Topic, o.Rooms)
	rooms := make([]string, o.Rooms)
	for k := range topics {
		topics[k] = seam.Topic(fmt.Sprintf("%s-%s-%d", o.TopicPrefix, run, k))
		local, err := runtime.RoomLocalpart(topics[k])
		if err != nil {
			return nil, err
		}
		rooms[k] = local + "@" + o.Server.MUC
	}

	// The runtimes, each through its proxy.
	var restarting atomic.Bool
	rec := newRecovery(o.Rooms, restarting.Load)
	rts := make([]*runtime.Runtime, o.Runtimes)
	for i := range rts {
		cfg := runtime.Config{
			Service: "xmpp://" + proxies[i].Addr(), Domain: o.Server.Domain, MUCService: o.Server.MUC,
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
		userEv := cfg.OnRoomEvent
		cfg.OnRoomEvent = func(e runtime.RoomEvent) {
			rec.roomEvent(e.Kind)
			if userEv != nil {
				userEv(e)
			}
		}
		user := cfg.OnStateChange
		cfg.OnStateChange = func(c runtime.StateChange) {
			rec.state(i, c)
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
				sr := &recorder{runtime: r, room: k, kind: j % 3, plain: j%3 == 0, rec: rec}
				recs = append(recs, sr)
				sub, err := rt.Subscribe(ctx, topic, subscriberKind(j, sr))
				if err != nil {
					return nil, fmt.Errorf("chaos: subscribe to room %d: %w", k, err)
				}
				defer sub.Close()
			}
		}
	}
	rep.Subscribers = len(recs)

	// The observer, reading the archives as they grow.
	obs := &observer{srv: o.Server}
	for _, room := range rooms {
		obs.logs = append(obs.logs, newRoomLog(room))
	}
	defer obs.close()
	var checkMu sync.Mutex // the observer and the checks: the verifier's, then the final check's
	checkAll := func(final bool) {
		for _, sr := range recs {
			sr.check(obs.logs[sr.room], rep, final)
		}
	}

	// Writers.
	sched := fmt.Sprintf("a fault on each link about every %s", o.FaultEvery)
	if len(o.linkFaults()) == 0 {
		sched = "no link faults"
	}
	if slices.Contains(o.Faults, Restart) {
		sched += fmt.Sprintf(", a server restart about every %s", o.RestartEvery)
	}
	o.Log(fmt.Sprintf("chaos: %d runtimes (a proxy each), %d rooms, %d subscribers; writing for %s with %s", o.Runtimes, o.Rooms, len(recs), o.Duration, sched))
	writeCtx, stopWriting := context.WithTimeout(ctx, o.Duration)
	defer stopWriting()
	var (
		mu      sync.Mutex
		results []postResult
		indepN  atomic.Int64
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
	if !o.NoIndependentWriter {
		iw := &independent{srv: o.Server, rooms: rooms, nick: "independent-" + run}
		if err := iw.connect(); err != nil {
			return nil, err
		}
		defer iw.close()
		wg.Go(func() { iw.write(writeCtx, run, 4*o.PostEvery, &indepN) })
	}

	// The verifier, while the writers write.
	verifyCtx, stopVerifying := context.WithCancel(ctx)
	verified := make(chan struct{})
	go func() {
		defer close(verified)
		for verifyCtx.Err() == nil {
			sleepCtx(verifyCtx, o.VerifyEvery)
			checkMu.Lock()
			if err := obs.poll(verifyCtx); err != nil && verifyCtx.Err() == nil {
				o.Log(err.Error())
			}
			checkAll(false)
			checkMu.Unlock()
		}
	}()
	defer func() { stopVerifying(); <-verified }()

	// Faults: a schedule per link, and the server's restarts.
	var fwg sync.WaitGroup
	lf := o.linkFaults()
	for i := range rts {
		if len(lf) == 0 {
			break
		}
		rng := rand.New(rand.NewPCG(o.Seed+uint64(i), o.Seed^0x9e3779b97f4a7c15))
		fwg.Go(func() {
			for writeCtx.Err() == nil {
				sleepCtx(writeCtx, jitter(rng, o.FaultEvery))
				if writeCtx.Err() != nil {
					return
				}
				kind := lf[rng.IntN(len(lf))]
				at := time.Now()
				n, err := injectLink(writeCtx, proxies[i], rts[i], kind, rng)
				if err != nil {
					o.Log(fmt.Sprintf("chaos: fault %s on runtime %d: %v", kind, i, err))
					continue
				}
				if n > 0 {
					faults.add(kind, n)
					o.Log(fmt.Sprintf("chaos: %s runtime %d at +%s", kind, i, at.Sub(start).Round(time.Millisecond)))
				}
			}
		})
	}
	if slices.Contains(o.Faults, Restart) {
		if o.RestartServer == nil {
			return nil, errors.New("chaos: Restart among the faults but no RestartServer hook")
		}
		rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x51afd7ed558ccd))
		fwg.Go(func() {
			for writeCtx.Err() == nil {
				sleepCtx(writeCtx, jitter(rng, o.RestartEvery))
				if writeCtx.Err() != nil {
					return
				}
				at := time.Now()
				restarting.Store(true)
				err := o.RestartServer(ctx) // always to its end, even when the writing ends
				// The runtimes notice the loss within their keepalive: an outage that
				// starts this soon after is the restart's.
				time.AfterFunc(2*time.Second, func() { restarting.Store(false) })
				if err != nil {
					o.Log(fmt.Sprintf("chaos: restart: %v", err))
					continue
				}
				faults.add(Restart, 1)
				o.Log(fmt.Sprintf("chaos: restart at +%s (took %s)", at.Sub(start).Round(time.Millisecond), time.Since(at).Round(time.Millisecond)))
			}
		})
	}
	// Progress, for long runs.
	if o.Duration >= 2*time.Minute {
		fwg.Go(func() {
			for writeCtx.Err() == nil {
				sleepCtx(writeCtx, 30*time.Second)
				checkMu.Lock()
				msgs, lost, dup, reord := 0, 0, 0, 0
				for _, l := range obs.logs {
					msgs += len(l.ids)
				}
				for _, sr := range recs {
					lost, dup, reord = lost+len(sr.missing), dup+sr.duplicated, reord+sr.reordered
				}
				checkMu.Unlock()
				f := &Report{Faults: faults.snapshot()}
				o.Log(fmt.Sprintf("chaos: +%s: %d faults (%s); %d messages in the archives so far; skipped %d, duplicated %d, reordered %d so far",
					time.Since(start).Round(time.Second), f.FaultsTotal(), f.FaultKinds(), msgs, lost, dup, reord))
			}
		})
	}
	<-writeCtx.Done()
	wg.Wait()
	fwg.Wait()
	rep.Writing = time.Since(start)
	for _, p := range proxies {
		p.Heal()
	}
	o.Log("chaos: writing done; waiting for the runtimes to settle")
	settle := time.Now()
	if err := waitOnline(ctx, rts, 60*time.Second); err != nil {
		return nil, err
	}
	rep.Settle = time.Since(settle)

	// The rest of the archives, and every subscriber caught up with them.
	verify := time.Now()
	stopVerifying()
	<-verified
	checkMu.Lock()
	defer checkMu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		before := 0
		for _, l := range obs.logs {
			before += len(l.ids)
		}
		err := obs.poll(ctx)
		after := 0
		for _, l := range obs.logs {
			after += len(l.ids)
		}
		checkAll(false)
		read := err == nil && after == before
		if read && rep.ReadTail == 0 {
			rep.ReadTail = time.Since(verify)
		}
		done := read
		for _, sr := range recs {
			done = done && sr.caughtUp(obs.logs[sr.room])
		}
		if done {
			rep.CatchUp = time.Since(verify)
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				return nil, err
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for duplicates to show
	checkAll(true)
	if o.FullRead {
		t := time.Now()
		if err := obs.fullRead(rep); err != nil {
			return nil, err
		}
		rep.FullReadTime = time.Since(t)
	}

	// The figures.
	rep.PerRoom = make([]RoomReport, len(topics))
	for k, l := range obs.logs {
		rep.PerRoom[k].Topic, rep.PerRoom[k].Messages = topics[k], len(l.ids)
		rep.Messages += len(l.ids)
		rep.ArchiveRepeats += l.repeats
	}
	rep.ArchiveReads = obs.reads
	for _, sr := range recs {
		sr.finish(obs.logs[sr.room], rep)
		rr := &rep.PerRoom[sr.room]
		n := sr.delivered()
		rep.Deliveries, rr.Deliveries = rep.Deliveries+n, rr.Deliveries+n
		rep.Lost, rr.Lost = rep.Lost+sr.lost, rr.Lost+sr.lost
		rep.Duplicated, rr.Duplicated = rep.Duplicated+sr.duplicated, rr.Duplicated+sr.duplicated
		rep.Reordered, rr.Reordered = rep.Reordered+sr.reordered, rr.Reordered+sr.reordered
		rep.Phantom += sr.phantom
	}
	mu.Lock()
	rep.Posts, rep.IndependentPosts = len(results), int(indepN.Load())
	for _, p := range results {
		rep.PerRoom[p.room].Posts++
		rep.account(p, obs.logs[p.room])
	}
	mu.Unlock()
	rec.mu.Lock()
	rep.Recoveries, rep.RestartRecoveries = slices.Clone(rec.durations), slices.Clone(rec.restarts)
	rep.LinkLosses, rep.KeepaliveLosses, rep.Interrupted = rec.losses, rec.keepalive, rec.interrupted
	rep.RoomsResumed, rep.RoomsRejoined = rec.resumed, rec.rejoined
	rep.ResumesRefused, rep.ResumesRefusedRestart, rep.ResumeWindowPassed = rec.refused, rec.refusedRestart, rec.windowPassed
	rec.mu.Unlock()
	if len(rep.Recoveries) > 0 {
		rep.LongestRecovery = slices.Max(rep.Recoveries)
	}
	rep.Faults = faults.snapshot()
	rep.Verify = time.Since(verify)
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// account checks one post's outcome against the archive.
func (r *Report) account(p postResult, l *roomLog) {
	at := l.byBody[p.content]
	switch {
	case len(at) > 1:
		r.ArchiveDuplicates++
		r.sample("post %q is in the archive %d times", p.content, len(at))
	case p.err == nil && len(at) == 1 && l.ids[at[0]] == p.id:
		r.Resolved++
	case p.err == nil:
		r.Wrong++
		r.sample("post %q resolved with %s; the archive holds it %d times", p.content, p.id, len(at))
	case errors.Is(p.err, seam.ErrPostInDoubt):
		r.InDoubt++
		r.InDoubtLanded += len(at)
	case len(at) == 1:
		r.Wrong++
		r.sample("post %q failed (%v), yet the archive holds it as %s", p.content, p.err, l.ids[at[0]])
	default:
		r.Failed++
		r.sample("post %q failed: %v", p.content, p.err)
	}
}

// independent posts to every room around the proxies, as another client would,
// and dials again when its connection breaks (a server restart).
type independent struct {
	srv   Server
	rooms []string
	nick  string
	cl    *rawclient.Client
}

func (w *independent) connect() error {
	cl, err := rawclient.Dial(w.srv.Addr, w.srv.Domain, w.srv.WriterUser, w.srv.WriterPassword)
	if err != nil {
		return fmt.Errorf("chaos: independent writer: %w", err)
	}
	for _, room := range w.rooms {
		if err := cl.Join(room, w.nick); err != nil {
			cl.Close()
			return fmt.Errorf("chaos: independent writer joins %s: %w", room, err)
		}
	}
	w.cl = cl
	return nil
}

// write posts to each room in turn, a round every every, until ctx ends.
func (w *independent) write(ctx context.Context, run string, every time.Duration, n *atomic.Int64) {
	for seq := 0; ctx.Err() == nil; seq++ {
		for k, room := range w.rooms {
			if w.cl == nil {
				if err := w.connect(); err != nil {
					break
				}
			}
			if _, err := w.cl.Post(room, fmt.Sprintf("%s independent k%d #%d", run, k, seq), ""); err == nil {
				n.Add(1)
				continue
			}
			select {
			case <-w.cl.Done():
				w.cl.Close()
				w.cl = nil
			default:
			}
		}
		sleepCtx(ctx, every)
	}
}

func (w *independent) close() {
	if w.cl != nil {
		w.cl.Close()
	}
}

// jitter returns d scaled by a factor drawn from [0.5, 1.5).
func jitter(rng *rand.Rand, d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.5 + rng.Float64()))
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

// injectLink injects one fault on one runtime's link and returns how many to
// count: the links cut for a kill, else 1. Holds are cut short when ctx (the
// writing phase) ends.
func injectLink(ctx context.Context, p *Proxy, rt *runtime.Runtime, kind Fault, rng *rand.Rand) (int, error) {
	hold := func() { sleepCtx(ctx, time.Duration(500+rng.IntN(1500))*time.Millisecond) }
	switch kind {
	case Kill:
		return p.Kill(), nil
	case Cut:
		if err := p.CutAfter(30 + rng.IntN(3000)); err != nil {
			return 0, err
		}
		sleepCtx(ctx, 300*time.Millisecond)
	case Blackhole:
		if err := p.Blackhole(); err != nil {
			return 0, err
		}
		// Until the runtime has given its link up (its keepalive found it dead):
		// Toxiproxy drops what it held back, so healing earlier would hand a live
		// link a hole in its byte stream, which real TCP never does.
		until := time.Now().Add(15 * time.Second)
		for time.Now().Before(until) && rt.State() != runtime.Reconnecting {
			time.Sleep(10 * time.Millisecond)
		}
		// Then its old connection, and any redial the hole swallowed, are cut:
		// the end a half-open TCP link meets sooner or later.
		p.Heal()
		p.Kill()
		return 1, nil
	case Latency:
		if err := p.Latency(time.Duration(50+rng.IntN(200))*time.Millisecond, 20*time.Millisecond); err != nil {
			return 0, err
		}
		hold()
	case Bandwidth:
		if err := p.Bandwidth(8 + rng.IntN(56)); err != nil {
			return 0, err
		}
		hold()
	case Slice:
		if err := p.Slice(16+rng.IntN(240), time.Duration(50+rng.IntN(950))*time.Microsecond); err != nil {
			return 0, err
		}
		hold()
	default:
		return 0, fmt.Errorf("unknown link fault %q", kind)
	}
	p.Heal()
	return 1, nil
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

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Package serve is the fan-out engine of `parley-xmpp serve`: each route
// forwards every message of its topics to a sink (stdout, a command, a webhook,
// or a relay into another topic), in archive order, and resumes after the last
// message it delivered when it starts again.
//
// Each (route, topic) has a worker and a state file holding its cursor: the
// last message the sink acknowledged. The worker long-polls the archive after
// that cursor, hands each message to the sink (retrying with exponential
// backoff until the sink takes it, or the context ends), and saves the cursor
// after every delivery, before the next one. A delivery is recorded only once
// the sink acknowledged it, so nothing is skipped:
//
//   - stdout, exec and webhook sinks get every message at least once. A
//     duplicate happens when the process dies (or the cursor can't be saved)
//     after the sink acknowledged a message and before its cursor was saved:
//     that message is delivered again on the next start. It also happens when
//     a sink did the work but its acknowledgement was lost (a webhook that
//     answered after the timeout, a command that failed after acting): the
//     attempt counts as failed and is retried. Each delivery carries
//     the message id (the JSON's "id", PARLEY_MESSAGE_ID for exec, the
//     Idempotency-Key header for webhooks) so receivers can drop it.
//   - relays get every message exactly once. A relayed message is posted with
//     runtime.PostOnce under a key derived from the route, the source topic and
//     the message id with a secret kept in the state dir (relay.secret, made on
//     the first run), so no occupant of the destination can post that key
//     first to suppress the message; the state file also keeps the destination id of the
//     last relayed message. After a crash between the post and the save,
//     PostOnce finds the earlier post in the destination's archive (after that
//     id) and answers its id instead of posting again. The keys carry a tag
//     made with the secret, so a relay recognises one on any message: it
//     passes over (logs, counts, moves its cursor past) a message that
//     carries one of the engine's keys, come back round a relay loop, unless
//     one of the engine's own relays posts into its source room (a chain);
//     see loopGuard.
//
// Order is per topic: a route's topics are forwarded independently, and a
// failing sink holds up only the topic whose message it refuses. By default
// the message is retried until the sink takes it; a route's max_attempts
// bounds the attempts, and an error no retry can mend (ErrRefused, invalid or
// oversize content) ends them at once. Then the route's on_exhausted decides:
// stop (the default: the topic stops, is logged and counted in
// parley_xmpp_route_stopped, and RunTopic answers ErrStopped; the other topics
// go on), skip (the message is passed over, logged by id and counted), or
// dead_letter (the message goes to another sink, then is passed over). A
// relay whose destination can't take the content in one post splits or
// truncates it when its oversize says so. Relays count on the destination's
// archive: a post that expired from it before the restart can't be found
// again.
//
// A saved cursor that the archive no longer knows (expired, or the room was
// recreated) is reported as an error that says messages may have been lost,
// and the worker continues from the archive's start.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Backend is what a route needs of a server: the runtime satisfies it.
type Backend interface {
	seam.Backend
	PostOnce(ctx context.Context, topic seam.Topic, key, content string, after *seam.Cursor) (seam.BackendMsgID, error)
}

var _ Backend = (*runtime.Runtime)(nil)

// RelationBackend is an optional interface of a relay's destination Backend
// (the runtime satisfies it). With it, a relay carries a correction, a
// retraction, reactions and a reply into the destination as what they are,
// their target mapped to the destination's copy of it (the relayed copy's
// origin-id is the target's relay key: OwnID finds it); without it, or when
// the destination holds no copy of the target, a relation with text is
// relayed as a plain message, and one without (a retraction, reactions) is
// passed over, logged.
type RelationBackend interface {
	OwnID(ctx context.Context, topic seam.Topic, origin string) (seam.BackendMsgID, error)
	PostOnceWith(ctx context.Context, topic seam.Topic, key, content string, after *seam.Cursor, opts seam.PostOptions) (seam.BackendMsgID, error)
	Edit(ctx context.Context, topic seam.Topic, target seam.BackendMsgID, content string, opts runtime.ActOptions) (seam.BackendMsgID, error)
	Retract(ctx context.Context, topic seam.Topic, target seam.BackendMsgID, opts runtime.ActOptions) (seam.BackendMsgID, error)
	React(ctx context.Context, topic seam.Topic, target seam.BackendMsgID, reactions []string, opts runtime.ActOptions) (seam.BackendMsgID, error)
}

var _ RelationBackend = (*runtime.Runtime)(nil)

// Recorder receives the engine's measurements; *metrics.Prometheus satisfies it.
type Recorder interface {
	Delivered(route, topic string)
	SinkFailure(route string)
	Backlog(route, topic string, n int)
	// Skipped counts a message passed over (on_exhausted: skip); reason is
	// refused (for good) or max_attempts.
	Skipped(route, reason string)
	// DeadLettered counts a message handed to the route's dead-letter sink.
	DeadLettered(route string)
	// Stopped reports a topic stopped on a message its sink refused.
	Stopped(route, topic string)
}

// LoopRecorder is an optional interface of a Recorder: RelayLoopRefused counts
// a message that a relay route passed over because it carried one of this
// engine's own relay keys (a relay loop; see loopGuard). *metrics.Prometheus
// satisfies it.
type LoopRecorder interface {
	RelayLoopRefused(route string)
}

// Options configure Run.
type Options struct {
	Routes   []config.Route
	StateDir string             // "" → "./parley-state"
	Backends map[string]Backend // connected, by server name ("" = the default server); the caller owns them
	Stdout   io.Writer          // the stdout sink's writer (nil → os.Stdout)
	Logger   *slog.Logger       // nil → discard
	Metrics  Recorder           // nil → none; called from every worker at once
	Progress func(line string)  // human progress lines; nil → Info records through Logger (with route and topic); called from every worker at once
	Wait     time.Duration      // long-poll budget per archive read [30s]
	// RoomJID names the room a topic of a server ("" for the default) lives
	// in (config.File.RoomJID): the relay loop guard lets a message that one of
	// this engine's relays posted into a relay's source room pass on (a
	// chain), and it is by rooms that "into" is decided. nil: by server name
	// and topic.
	RoomJID func(server, topic string) string

	secret []byte // the relays' secret, from the state dir (see loadSecret)
}

// Defaults, for what Options and config.Route leave unset.
const (
	defaultStateDir       = "./parley-state"
	defaultWait           = 30 * time.Second
	defaultBatch          = 100
	defaultRetryWait      = 500 * time.Millisecond
	defaultMaxRetryWait   = time.Minute
	defaultExecTimeout    = 30 * time.Second
	defaultWebhookTimeout = 10 * time.Second
)

// Run runs every route until ctx ends, then returns nil once every worker has
// stopped (a delivery in flight finishes or is abandoned without saving its
// cursor). It returns an error at once for a setup problem: an unwritable or
// locked state dir, a corrupt state file, a server name missing from Backends,
// a route that can't run. It is Prepare, then Prepared.Run with o.Backends.
func Run(ctx context.Context, o Options) error {
	p, err := Prepare(o)
	if err != nil {
		return err
	}
	return p.Run(ctx, o.Backends)
}

// Prepared is an engine that has checked everything it can without a server:
// its state dir is locked, every route's saved state is read, its sinks are
// made (an exec sink's command found). A command prepares before it connects,
// so that bad input is reported before any network. Run it once, or Close it.
type Prepared struct {
	unlock  func()
	engine  *Engine
	topics  []fileTopic
	closing sync.Once
}

// fileTopic is a topic Prepare found, with its state file as its Store.
type fileTopic struct {
	t     Topic
	saved *State // nil: no state file yet
	store fileStore
}

type preparedRoute struct {
	index      int // in Options.Routes
	route      config.Route
	sink       sink
	deadLetter sink // nil unless on_exhausted is dead_letter
}

// close closes the route's sinks.
func (r preparedRoute) close() {
	r.sink.close()
	if r.deadLetter != nil {
		r.deadLetter.close()
	}
}

// Prepare checks o and takes the state dir's lock; o.Backends is not used
// (Prepared.Run takes them). Its errors name the key at fault
// (serve.state_dir, serve.routes[i]...). It is the Engine, with a state file
// for each topic.
func Prepare(o Options) (*Prepared, error) {
	o = withDefaults(o)
	unlock, err := lockStateDir(o.StateDir)
	if err != nil {
		return nil, err
	}
	p := &Prepared{unlock: unlock}
	secret, err := loadSecret(o.StateDir)
	if err != nil {
		p.Close()
		return nil, err
	}
	if p.engine, err = NewEngine(o, secret); err != nil {
		p.Close()
		return nil, err
	}
	for i := range o.Routes {
		topics, err := loadRoute(o, i, withRouteDefaults(o.Routes[i]))
		if err != nil {
			p.Close()
			return nil, err
		}
		p.topics = append(p.topics, topics...)
	}
	return p, nil
}

// Close releases what Prepare took (the lock, the sinks) without running. Run
// closes them itself.
func (p *Prepared) Close() {
	p.closing.Do(func() {
		if p.engine != nil {
			p.engine.Close()
		}
		p.unlock()
	})
}

// Run runs every route, reading from and relaying to backends (connected, by
// server name, "" for the default server; the caller owns them), until ctx
// ends; see the package Run.
func (p *Prepared) Run(ctx context.Context, backends map[string]Backend) error {
	defer p.Close()
	if err := p.engine.Bind(backends); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, ft := range p.topics {
		// A topic that stops (on_exhausted: stop) has said so; the others go on.
		wg.Go(func() { _ = p.engine.RunTopic(ctx, ft.t, ft.saved, ft.store) })
	}
	<-ctx.Done() // also with no routes: Run lasts as long as ctx
	wg.Wait()
	return nil
}

// bind checks that the route's server has a backend (each topic's worker
// reads from it: RunTopic) and gives a relay its destination.
func (r preparedRoute) bind(backends map[string]Backend) error {
	if _, err := backendNamed(backends, r.route.Server); err != nil {
		return err
	}
	if rs, ok := r.sink.(*relaySink); ok {
		var err error
		if rs.dest, err = backendNamed(backends, r.route.Sink.Relay.Server); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
	return nil
}

func withDefaults(o Options) Options {
	if o.StateDir == "" {
		o.StateDir = defaultStateDir
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = noRecorder{}
	}
	if o.Wait <= 0 {
		o.Wait = defaultWait
	}
	// Every stdout route shares one writer: one lock keeps their lines whole.
	o.Stdout = &lockedWriter{w: o.Stdout}
	return o
}

func withRouteDefaults(r config.Route) config.Route {
	if r.Batch <= 0 {
		r.Batch = defaultBatch
	}
	if r.RetryWait <= 0 {
		r.RetryWait = config.Duration(defaultRetryWait)
	}
	if r.MaxRetryWait <= 0 {
		r.MaxRetryWait = config.Duration(defaultMaxRetryWait)
	}
	r.MaxRetryWait = max(r.MaxRetryWait, r.RetryWait)
	return r
}

// loadRoute prepares route i's state dir and reads its topics' state files:
// everything about its state that can fail before a worker starts.
func loadRoute(o Options, i int, r config.Route) ([]fileTopic, error) {
	fail := func(format string, a ...any) ([]fileTopic, error) {
		return nil, fmt.Errorf("serve.routes[%d] (route %q): %s", i, r.Name, fmt.Sprintf(format, a...))
	}
	dir := filepath.Join(o.StateDir, r.Name)
	if err := prepareStateDir(dir); err != nil {
		return fail("%v", err)
	}
	var topics []fileTopic
	for j, t := range r.Topics {
		local, err := runtime.RoomLocalpart(seam.Topic(t))
		if err != nil {
			return fail("topics[%d]: %v", j, err)
		}
		file := stateFile{path: filepath.Join(dir, stateFileName(local))}
		st, found, err := file.load()
		if err != nil {
			return fail("topics[%d]: %v", j, err)
		}
		if found && st.Topic != "" && st.Topic != t {
			return fail("topics[%d]: %s holds the state of topic %q, not %q", j, file.path, st.Topic, t)
		}
		ft := fileTopic{t: Topic{Route: r.Name, Topic: t}, store: fileStore{file: file, topic: t}}
		if found {
			ft.saved = &State{Cursor: st.Cursor, RelayLast: st.RelayLast}
		}
		topics = append(topics, ft)
	}
	return topics, nil
}

// newWorker makes the worker of one topic of r; its caller gives it where its
// state lives, and Run or RunTopic its source (and the route's sink).
func newWorker(o Options, r config.Route, topic string, saved State, found bool) *worker {
	return &worker{
		route: r, topic: seam.Topic(topic), state: saved, resumed: found,
		wait: o.Wait, metrics: o.Metrics, progress: o.Progress,
		log:   o.Logger.With(slog.String("server", config.ServerLabel(r.Server)), slog.String("route", r.Name), slog.String("topic", topic)),
		guard: newLoopGuard(o, r, topic),
	}
}

func backendNamed(backends map[string]Backend, name string) (Backend, error) {
	b, ok := backends[name]
	switch {
	case !ok && name == "":
		return nil, errors.New("no backend for the default server")
	case !ok:
		return nil, fmt.Errorf("no backend for server %q", name)
	case b == nil:
		return nil, fmt.Errorf("the backend for server %q is nil", name)
	}
	return b, nil
}

type noRecorder struct{}

func (noRecorder) Delivered(string, string)    {}
func (noRecorder) SinkFailure(string)          {}
func (noRecorder) Backlog(string, string, int) {}
func (noRecorder) Skipped(string, string)      {}
func (noRecorder) DeadLettered(string)         {}
func (noRecorder) Stopped(string, string)      {}

// lockedWriter serialises writes from every worker, so lines don't interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

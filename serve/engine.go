package serve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/parley-go/parley-xmpp/seam"
)

// ErrFenced is what a Store answers once this process no longer owns the
// topic (another cluster node took it over): the topic's worker stops at once,
// delivering nothing more.
var ErrFenced = errors.New("serve: this node no longer owns the topic")

// State is a topic's saved position, as a Store keeps it.
type State struct {
	// Cursor is the last message the sink acknowledged ("" for the archive's
	// start).
	Cursor seam.Cursor `json:"cursor"`
	// RelayLast is the destination id of the last relayed message.
	RelayLast seam.BackendMsgID `json:"relay_last"`
}

// Store keeps one (route, topic)'s State: a state file under the state dir
// when serve runs alone (Prepare), etcd in a cluster (fenced by the topic's
// lock). Its methods are called by the topic's worker only, one at a time.
type Store interface {
	// Save records st; it is called after every delivery and before the next
	// one. ErrFenced stops the worker; another error is retried.
	Save(ctx context.Context, st State) error
	// Check is called before every delivery: nil lets it go ahead, ErrFenced
	// stops the worker, another error holds deliveries and is retried.
	Check(ctx context.Context) error
}

// Engine runs the routes one (route, topic) at a time, each with a Store of
// the caller's. It is the one engine: Prepare runs every topic on it with
// state files, a cluster node the topics placed on it with etcd.
type Engine struct {
	o        Options
	routes   map[string]preparedRoute
	order    []Topic
	backends map[string]Backend
}

// Topic names one (route, topic).
type Topic struct{ Route, Topic string }

// NewEngine checks the routes and makes their sinks, without a server (as
// Prepare does, but without a state dir: o.StateDir and o.Backends are
// unused). relaySecret keys the relays' origin-ids (see relayKey): every
// process running these routes must use the same one (a cluster keeps it in
// etcd). Bind the backends before RunTopic; Close it after.
func NewEngine(o Options, relaySecret []byte) (*Engine, error) {
	o = withDefaults(o)
	o.secret = relaySecret
	e := &Engine{o: o, routes: map[string]preparedRoute{}}
	for i := range o.Routes {
		r := withRouteDefaults(o.Routes[i])
		if _, dup := e.routes[r.Name]; dup {
			e.Close()
			return nil, fmt.Errorf("serve.routes[%d]: two routes are named %q (the name keys their saved cursors)", i, r.Name)
		}
		if err := r.Check(i); err != nil {
			e.Close()
			return nil, err
		}
		if r.Sink.Relay != nil && len(relaySecret) != secretBytes {
			e.Close()
			return nil, fmt.Errorf("serve.routes[%d] (route %q): a relay needs the cluster's relay secret (%d bytes)", i, r.Name, secretBytes)
		}
		pr, err := newSinks(o, r)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("serve.routes[%d] (route %q): %v", i, r.Name, err)
		}
		pr.index = i
		e.routes[r.Name] = pr
		for _, t := range r.Topics {
			e.order = append(e.order, Topic{Route: r.Name, Topic: t})
		}
	}
	return e, nil
}

// Bind gives the routes their servers (connected, by server name, "" for the
// default server; the caller owns them). Call it once, before RunTopic.
func (e *Engine) Bind(backends map[string]Backend) error {
	for i, t := range e.order {
		if i > 0 && e.order[i-1].Route == t.Route {
			continue
		}
		r := e.routes[t.Route]
		if err := r.bind(backends); err != nil {
			return fmt.Errorf("serve.routes[%d] (route %q): %w", r.index, t.Route, err)
		}
	}
	e.backends = backends
	return nil
}

// Topics lists every (route, topic), in configuration order.
func (e *Engine) Topics() []Topic { return append([]Topic(nil), e.order...) }

// RunTopic forwards one (route, topic) until ctx ends, st answers ErrFenced
// (then it returns ErrFenced), or the topic stops on a message its sink
// refused (on_exhausted: stop; then it returns ErrStopped), resuming after saved (nil: none yet, start as
// the route's start says). Run it at most once at a time per (route, topic):
// the caller fences that.
func (e *Engine) RunTopic(ctx context.Context, t Topic, saved *State, st Store) error {
	pr, ok := e.routes[t.Route]
	if !ok {
		return fmt.Errorf("serve: no route %q", t.Route)
	}
	if !slices.Contains(pr.route.Topics, t.Topic) {
		return fmt.Errorf("serve: route %q has no topic %q", t.Route, t.Topic)
	}
	source, err := backendNamed(e.backends, pr.route.Server)
	if err != nil {
		return fmt.Errorf("serve: route %q: %w (Bind first)", t.Route, err)
	}
	var state State
	if saved != nil {
		state = *saved
	}
	fs := &fencedStore{st: st}
	w := newWorker(e.o, pr.route, t.Topic, state, saved != nil)
	w.store, w.source, w.sink, w.deadLetter = fs, source, pr.sink, pr.deadLetter
	w.run(ctx)
	switch {
	case fs.fenced:
		return ErrFenced
	case w.phase == halted:
		return ErrStopped
	}
	return nil
}

// Warm prepares a later RunTopic of t, resuming after saved (nil: none yet),
// so that it delivers sooner: it reads the topic once, as RunTopic's first
// read will (which joins its room and has the runtime check its archive and
// the cursor), and discards what it read. It delivers and saves nothing, so it
// needs no fence: a cluster node calls it while it waits for the lock of a
// topic it is taking over.
func (e *Engine) Warm(ctx context.Context, t Topic, saved *State) error {
	pr, ok := e.routes[t.Route]
	if !ok {
		return fmt.Errorf("serve: no route %q", t.Route)
	}
	source, err := backendNamed(e.backends, pr.route.Server)
	if err != nil {
		return fmt.Errorf("serve: route %q: %w (Bind first)", t.Route, err)
	}
	args := seam.FetchRecentArgs{Topic: seam.Topic(t.Topic), Limit: 1, Block: time.Millisecond} // Block: join the room
	if saved != nil {
		since := saved.Cursor
		args.Since, args.Limit = &since, pr.route.Batch
	}
	_, err = source.FetchRecent(ctx, args)
	return err
}

// Close releases the sinks, once every RunTopic returned.
func (e *Engine) Close() {
	for _, r := range e.routes {
		r.close()
	}
	e.routes = nil
}

// fencedStore adapts a Store to the worker and remembers a fence.
type fencedStore struct {
	st     Store
	fenced bool
}

func (f *fencedStore) Save(ctx context.Context, st State) error { return f.note(f.st.Save(ctx, st)) }

func (f *fencedStore) Check(ctx context.Context) error { return f.note(f.st.Check(ctx)) }

func (f *fencedStore) note(err error) error {
	if errors.Is(err, ErrFenced) {
		f.fenced = true
	}
	return err
}

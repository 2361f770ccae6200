package serve

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-go/parley-xmpp/config"
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

// Store keeps one (route, topic)'s State somewhere other than the state dir
// (in a cluster: etcd, fenced by the topic's lock). Its methods are called by
// the topic's worker only, one at a time.
type Store interface {
	// Save records st; it is called after every delivery and before the next
	// one. ErrFenced stops the worker; another error is retried.
	Save(ctx context.Context, st State) error
	// Check is called before every delivery: nil lets it go ahead, ErrFenced
	// stops the worker, another error holds deliveries and is retried.
	Check(ctx context.Context) error
}

// Engine runs the routes one (route, topic) at a time, each with a Store of
// the caller's: the cluster's building block. Run is the single-process
// engine, with state files.
type Engine struct {
	o      Options
	routes map[string]engineRoute
	order  []Topic
	sinks  []sink
}

type engineRoute struct {
	r      config.Route
	source Backend
	sink   sink
}

// Topic names one (route, topic).
type Topic struct{ Route, Topic string }

// NewEngine checks the routes and sets up their sinks. o.StateDir is unused.
func NewEngine(o Options) (*Engine, error) {
	o = withDefaults(o)
	e := &Engine{o: o, routes: map[string]engineRoute{}}
	for i := range o.Routes {
		r := withRouteDefaults(o.Routes[i])
		if _, dup := e.routes[r.Name]; dup {
			e.Close()
			return nil, fmt.Errorf("serve: two routes are named %q (the name keys their saved cursors)", r.Name)
		}
		source, err := checkRoute(o, r)
		if err != nil {
			e.Close()
			return nil, err
		}
		s, err := newSink(o, r)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("serve: route %q: %v", r.Name, err)
		}
		e.sinks = append(e.sinks, s)
		e.routes[r.Name] = engineRoute{r: r, source: source, sink: s}
		for _, t := range r.Topics {
			e.order = append(e.order, Topic{Route: r.Name, Topic: t})
		}
	}
	return e, nil
}

// Topics lists every (route, topic), in configuration order.
func (e *Engine) Topics() []Topic { return append([]Topic(nil), e.order...) }

// RunTopic forwards one (route, topic) until ctx ends or st answers ErrFenced
// (then it returns ErrFenced), resuming after saved (nil: none yet, start as
// the route's start says). Run it at most once at a time per (route, topic):
// the caller fences that.
func (e *Engine) RunTopic(ctx context.Context, t Topic, saved *State, st Store) error {
	er, ok := e.routes[t.Route]
	if !ok {
		return fmt.Errorf("serve: no route %q", t.Route)
	}
	known := false
	for _, topic := range er.r.Topics {
		known = known || topic == t.Topic
	}
	if !known {
		return fmt.Errorf("serve: route %q has no topic %q", t.Route, t.Topic)
	}
	state := topicState{Topic: t.Topic}
	if saved != nil {
		state.Cursor, state.RelayLast = saved.Cursor, saved.RelayLast
	}
	fs := &fencedStore{st: st}
	w := newWorker(e.o, er.r, er.source, t.Topic, fs, state, saved != nil)
	w.sink = er.sink
	w.run(ctx)
	if fs.fenced {
		return ErrFenced
	}
	return nil
}

// Close releases the sinks, once every RunTopic returned.
func (e *Engine) Close() {
	for _, s := range e.sinks {
		s.close()
	}
	e.sinks = nil
}

// fencedStore adapts a Store to the worker and remembers a fence.
type fencedStore struct {
	st     Store
	fenced bool
}

func (f *fencedStore) save(ctx context.Context, st topicState) error {
	return f.note(f.st.Save(ctx, State{Cursor: st.Cursor, RelayLast: st.RelayLast}))
}

func (f *fencedStore) check(ctx context.Context) error { return f.note(f.st.Check(ctx)) }

func (f *fencedStore) note(err error) error {
	if errors.Is(err, ErrFenced) {
		f.fenced = true
	}
	return err
}

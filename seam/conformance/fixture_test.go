package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/seam/conformance"
	"github.com/parley-go/parley-xmpp/seam/memory"
)

// memoryCaps are what the reference backend declares.
var memoryCaps = conformance.Capabilities{
	BlockingFetch:         true,
	CarriesSenderIdentity: true,
	AbsentTopic:           conformance.AbsentTopicEmptyPage,
}

// wrapFunc turns a fresh, not yet connected memory connection into the backend
// under test; the negative controls break it here.
type wrapFunc func(inner seam.Backend, w *world) seam.Backend

type fixtureOpts struct {
	wrap    wrapFunc                  // nil: the healthy memory backend
	caps    *conformance.Capabilities // nil: memoryCaps
	minimal bool                      // no ConcurrentPost or IndependentPost: the suite's fallbacks run
	xmpp    *xmppBreaks               // non-nil: XMPP hooks on a fake MUC, broken as it says
	// say, when set, breaks Fixture.Say: it gets the store's Say and
	// returns the variant's.
	say func(healthy sayFunc) sayFunc
}

type sayFunc = func(ctx context.Context, topic seam.Topic, person string, m seam.Message) (seam.BackendMsgID, error)

// world is what the backends of one fixture share.
type world struct {
	store *memory.Store
	muc   *fakeMUC // nil without XMPP hooks
	ids   sync.Map // real id → per-connection id, for the per-connection-ids variant

	mu   sync.Mutex
	ends []func() // cleanups of connections the fixture opened behind the suite's back
}

func (w *world) atEnd(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ends = append(w.ends, f)
}

// connected returns a connected memory connection of the world that the suite
// never sees (an independent client, or a variant's shadow connection).
func (w *world) connected() seam.Backend {
	b := w.store.NewBackend()
	if err := b.Connect(context.Background()); err != nil {
		panic(err) // a fresh memory connection always connects
	}
	w.atEnd(func() { _ = b.Disconnect(context.Background()) })
	return b
}

// newFixture builds a conformance fixture on a fresh memory store.
func newFixture(t testing.TB, o fixtureOpts) conformance.Fixture {
	w := &world{store: memory.NewStore()}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, end := range w.ends {
			end()
		}
	})
	dial := func(ctx context.Context) (seam.Backend, error) {
		b := w.store.NewBackend()
		if o.wrap != nil {
			b = o.wrap(b, w)
		}
		return b, b.Connect(ctx)
	}
	open := func(tb testing.TB) seam.Backend {
		b, err := dial(context.Background())
		require.NoError(tb, err, "Connect")
		return b
	}
	main := open(t)
	t.Cleanup(func() { _ = main.Disconnect(context.Background()) })

	var topics atomic.Int64
	f := conformance.Fixture{
		Backend:      main,
		FreshTopic:   func() seam.Topic { return seam.Topic(fmt.Sprintf("topic-%d", topics.Add(1))) },
		NewBackend:   open,
		Capabilities: memoryCaps,
	}
	if o.caps != nil {
		f.Capabilities = *o.caps
	}
	if !o.minimal {
		f.ConcurrentPost = func(ctx context.Context, topic seam.Topic, contents [][]string) error {
			return concurrentPost(ctx, dial, topic, contents)
		}
		f.IndependentPost = func(ctx context.Context, topic seam.Topic, content string) error {
			_, err := w.connected().Post(ctx, topic, "independent", content, seam.PostOptions{})
			return err
		}
	}
	f.Say = func(_ context.Context, topic seam.Topic, person string, m seam.Message) (seam.BackendMsgID, error) {
		return w.store.Say(topic, seam.Handle(person), m), nil
	}
	if o.say != nil {
		f.Say = o.say(f.Say)
	}
	if o.xmpp != nil {
		w.muc = newFakeMUC(w, *o.xmpp)
		f.XMPP = w.muc.hooks()
	}
	return f
}

// concurrentPost is Fixture.ConcurrentPost: each writer its own connection.
func concurrentPost(ctx context.Context, dial func(context.Context) (seam.Backend, error), topic seam.Topic, contents [][]string) error {
	errs := make(chan error, len(contents))
	var wg sync.WaitGroup
	for i := range contents {
		wg.Go(func() {
			b, err := dial(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = b.Disconnect(context.Background()) }()
			for _, c := range contents[i] {
				if _, err := b.Post(ctx, topic, seam.Handle(fmt.Sprintf("writer-%d", i)), c, seam.PostOptions{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect[T any](ch <-chan T) []T {
	var out []T
	for v := range ch {
		out = append(out, v)
	}
	return out
}

// hooked is a memory connection with some methods replaced: the building block of
// the broken variants and of the fake MUC.
type hooked struct {
	seam.Backend
	post       func(ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error)
	fetch      func(ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error)
	subscribe  func(ctx context.Context, topic seam.Topic, h seam.Handler) (seam.Subscription, error)
	disconnect func(ctx context.Context) error
	resolve    func(ctx context.Context, h seam.Handle) (seam.BackendIdentity, error)
}

func (b *hooked) Post(ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
	if b.post != nil {
		return b.post(ctx, topic, who, content, opts)
	}
	return b.Backend.Post(ctx, topic, who, content, opts)
}

func (b *hooked) FetchRecent(ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
	if b.fetch != nil {
		return b.fetch(ctx, args)
	}
	return b.Backend.FetchRecent(ctx, args)
}

func (b *hooked) Subscribe(ctx context.Context, topic seam.Topic, h seam.Handler) (seam.Subscription, error) {
	if b.subscribe != nil {
		return b.subscribe(ctx, topic, h)
	}
	return b.Backend.Subscribe(ctx, topic, h)
}

func (b *hooked) Disconnect(ctx context.Context) error {
	if b.disconnect != nil {
		return b.disconnect(ctx)
	}
	return b.Backend.Disconnect(ctx)
}

func (b *hooked) ResolveIdentity(ctx context.Context, h seam.Handle) (seam.BackendIdentity, error) {
	if b.resolve != nil {
		return b.resolve(ctx, h)
	}
	return b.Backend.ResolveIdentity(ctx, h)
}

// everything reads a whole topic through a memory connection.
func everything(ctx context.Context, b seam.Backend, topic seam.Topic) []seam.Message {
	r, _ := b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Limit: 1 << 20})
	return r.Messages
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

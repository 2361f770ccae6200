package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/seam/conformance"
)

// A negative control is a deliberately broken variant of the memory backend that
// the suite must fail on the clause it breaks: a clause no variant fails is not yet
// a test. Each variant runs in a child process of the test binary, so its failure
// is observed rather than reported as ours.

// variantEnv names the variant a child process runs; it is the only state the
// mechanism shares between parent and child.
const variantEnv = "PARLEY_CONFORMANCE_BROKEN_VARIANT"

type variant struct {
	name   string
	clause int // the clause the suite must fail
	opts   fixtureOpts
}

func caps(f func(*conformance.Capabilities)) *conformance.Capabilities {
	c := memoryCaps
	f(&c)
	return &c
}

var variants = []variant{
	{"mentions-dropped", 1, fixtureOpts{wrap: onFetched(func(m seam.Message) seam.Message { m.Mentions = nil; return m })}},
	{"zero-timestamp", 1, fixtureOpts{wrap: onFetched(func(m seam.Message) seam.Message { m.Timestamp = time.Time{}; return m })}},
	{"post-returns-other-id", 1, fixtureOpts{wrap: onPost(postReturnsOtherID)}},
	{"content-derived-ids", 2, fixtureOpts{wrap: contentDerivedIDs}},
	{"inclusive-since", 3, fixtureOpts{wrap: onPage(inclusiveSince)}},
	{"next-cursor-is-topic-end", 4, fixtureOpts{wrap: onPage(nextCursorIsTopicEnd)}},
	{"ignores-limit", 4, fixtureOpts{wrap: onFetch(ignoresLimit)}},
	{"newest-page-is-oldest", 5, fixtureOpts{wrap: onPage(newestPageIsOldest)}},
	{"newest-page-newest-first", 5, fixtureOpts{wrap: onPage(newestPageNewestFirst)}},
	{"tail-repeats-last", 6, fixtureOpts{wrap: onPage(tailRepeatsLast)}},
	{"absent-cursor-unreplayable", 7, fixtureOpts{wrap: onPage(absentCursorUnreplayable)}},
	{"read-creates-topic", 7, fixtureOpts{wrap: onPage(readCreatesTopic)}},
	{"no-such-topic-wrong-name", 7, fixtureOpts{
		wrap: onPage(noSuchTopic("general")),
		caps: caps(func(c *conformance.Capabilities) { c.AbsentTopic = conformance.AbsentTopicError }),
	}},
	{"cross-topic-leak", 8, fixtureOpts{wrap: crossTopicLeak}},
	{"accepts-illegal-content", 9, fixtureOpts{wrap: onPost(acceptsIllegalContent)}},
	{"trims-content", 9, fixtureOpts{wrap: onPost(trimsContent)}},
	{"illegal-breaks-connection", 9, fixtureOpts{wrap: illegalBreaksConnection}},
	{"reply-not-durable", 10, fixtureOpts{wrap: onPost(replyNotDurable)}},
	{"resolve-wrong-handle", 11, fixtureOpts{wrap: resolveWrongHandle}},
	{"collapses-senders", 12, fixtureOpts{wrap: onPost(collapsesSenders)}},
	{"unstable-sender", 12, fixtureOpts{ // declares no sender identity, yet each post has its own
		caps: caps(func(c *conformance.Capabilities) { c.CarriesSenderIdentity = false }),
	}},
	{"live-id-differs", 13, fixtureOpts{wrap: onLive(func(m seam.Message) seam.Message { m.BackendMsgID = "live-" + m.BackendMsgID; return m })}},
	{"live-mentions-missing", 13, fixtureOpts{wrap: onLive(func(m seam.Message) seam.Message { m.Mentions = nil; return m })}},
	{"replays-history", 14, fixtureOpts{wrap: replaysHistory}},
	{"delivers-twice", 14, fixtureOpts{wrap: deliversTwice}},
	{"drops-own-posts", 14, fixtureOpts{wrap: filtersLive(false)}},
	{"reorders-live", 14, fixtureOpts{wrap: reordersLive}},
	{"drops-foreign-posts", 15, fixtureOpts{wrap: filtersLive(true)}},
	{"live-cross-topic-leak", 16, fixtureOpts{wrap: liveCrossTopicLeak}},
	{"handlers-survive-disconnect", 17, fixtureOpts{wrap: handlersSurviveDisconnect}},
	{"post-after-disconnect", 17, fixtureOpts{wrap: postAfterDisconnect}},
	{"second-disconnect-errors", 17, fixtureOpts{wrap: secondDisconnectErrors}},
	{"block-hides-window", 18, fixtureOpts{wrap: onFetch(blockHidesWindow)}},
	{"block-never-wakes", 19, fixtureOpts{wrap: onFetch(blockNeverWakes)}},
	{"wakes-with-stale-page", 19, fixtureOpts{wrap: onFetch(wakesWithStalePage)}},
	{"block-returns-at-once", 20, fixtureOpts{wrap: onFetch(blockReturnsAtOnce)}},
	{"lost-wakeup", 21, fixtureOpts{wrap: lostWakeup}},
	{"long-polls-without-native-block", 22, fixtureOpts{ // declares no long-poll, yet waits out the budget
		caps: caps(func(c *conformance.Capabilities) { c.BlockingFetch = false }),
	}},
	{"wake-returns-newest-only", 23, fixtureOpts{wrap: wakeReturnsNewestOnly}},
	{"per-connection-ids", 24, fixtureOpts{wrap: perConnectionIDs}},
	{"cold-join-locked", 25, fixtureOpts{xmpp: &xmppBreaks{lockNewRooms: true}}},
	{"duplicate-nick-splits", 26, fixtureOpts{xmpp: &xmppBreaks{duplicateNicks: true}}},
	{"no-archive-silent", 27, fixtureOpts{xmpp: &xmppBreaks{silentNoArchive: true}}},
	{"unknown-cursor-newest-page", 28, fixtureOpts{wrap: onPage(unknownCursorNewestPage)}},
	{"unknown-cursor-full-replay", 28, fixtureOpts{wrap: onPage(unknownCursorFullReplay)}},
	{"forged-id-trusted", 29, fixtureOpts{xmpp: &xmppBreaks{trustForgedIDs: true}, wrap: trustsForgedIDs}},
	{"fetch-drops-in-reply-to", 31, fixtureOpts{wrap: onFetched(func(m seam.Message) seam.Message { m.InReplyTo = ""; return m })}},
	{"anyone-corrects", 32, fixtureOpts{say: impersonates}},
	{"anyone-retracts", 33, fixtureOpts{say: impersonates}},
	{"fetch-drops-reactions", 34, fixtureOpts{wrap: onFetched(func(m seam.Message) seam.Message { m.Reactions = nil; return m })}},
	{"attachments-dropped", 35, fixtureOpts{say: func(healthy sayFunc) sayFunc {
		return func(ctx context.Context, topic seam.Topic, person string, m seam.Message) (seam.BackendMsgID, error) {
			m.Attachments = nil
			return healthy(ctx, topic, person, m)
		}
	}}},
	{"invents-targets", 36, fixtureOpts{wrap: inventsTargets}},
}

// impersonates says everything as alice: a backend that lets anyone correct
// or retract anyone's message.
func impersonates(healthy sayFunc) sayFunc {
	return func(ctx context.Context, topic seam.Topic, _ string, m seam.Message) (seam.BackendMsgID, error) {
		return healthy(ctx, topic, "alice", m)
	}
}

// inventsTargets links a message that names no known target to one anyway,
// on both paths.
func inventsTargets(inner seam.Backend, w *world) seam.Backend {
	invent := func(m seam.Message) seam.Message {
		if strings.HasSuffix(m.Content, "of nothing") || strings.HasSuffix(m.Content, "to nothing") {
			m.Replaces = "ghost"
		}
		return m
	}
	return &hooked{Backend: inner, fetch: mapFetch(inner, invent), subscribe: mapLive(inner, invent)}
}

// TestBrokenVariant is the child's side: it runs the suite against the variant
// named by variantEnv, and does nothing in a normal test run.
func TestBrokenVariant(t *testing.T) {
	name := os.Getenv(variantEnv)
	if name == "" {
		t.Skip("runs only in a child process of TestNegativeControls")
	}
	i := slices.IndexFunc(variants, func(v variant) bool { return v.name == name })
	require.GreaterOrEqual(t, i, 0, "unknown variant %q", name)
	conformance.Run(t, newFixture(t, variants[i].opts))
}

// TestNegativeControls runs every variant in a child process limited to its
// clause, and requires the child to fail that clause.
func TestNegativeControls(t *testing.T) {
	if os.Getenv(variantEnv) != "" {
		t.Skip("a child process runs only TestBrokenVariant")
	}
	if testing.Short() {
		t.Skip("spawns a child process per variant")
	}
	for _, c := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 28, 31, 32, 33, 34, 35, 36} {
		assert.True(t, slices.ContainsFunc(variants, func(v variant) bool { return v.clause == c }), "no variant fails clause %d", c)
	}

	// The children mostly wait (on timers and timeouts), so run many at once, more
	// than -parallel would allow on a small machine.
	type outcome struct {
		out     []byte
		err     error
		elapsed time.Duration
	}
	outcomes := make([]chan outcome, len(variants))
	slots := make(chan struct{}, 12)
	for i, v := range variants {
		outcomes[i] = make(chan outcome, 1)
		go func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0],
				"-test.run=^TestBrokenVariant$/^"+fmt.Sprintf("%02d_", v.clause),
				"-test.v", "-test.count=1", "-test.timeout=90s")
			cmd.Env = append(os.Environ(), variantEnv+"="+v.name)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			outcomes[i] <- outcome{out, err, time.Since(start)}
		}()
	}
	for i, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			o := <-outcomes[i]
			t.Logf("child ran %v", o.elapsed.Round(time.Millisecond))
			var exit *exec.ExitError
			require.True(t, errors.As(o.err, &exit), "the child must exit non-zero (err %v); output:\n%s", o.err, o.out)
			failed := regexp.MustCompile(fmt.Sprintf(`(?m)^\s*--- FAIL: TestBrokenVariant/%02d_`, v.clause))
			require.True(t, failed.Match(o.out), "the suite must fail clause %d; output:\n%s", v.clause, o.out)
			// A crash is not a detection: the clause must fail by its assertions.
			require.False(t, bytes.Contains(o.out, []byte("WARNING: DATA RACE")), "data race in the child:\n%s", o.out)
			require.False(t, bytes.Contains(o.out, []byte("panic: ")), "panic in the child:\n%s", o.out)
		})
	}
}

// --- building blocks ---

func onFetch(f func(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error)) wrapFunc {
	return func(inner seam.Backend, _ *world) seam.Backend {
		return &hooked{Backend: inner, fetch: func(ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
			return f(inner, ctx, args)
		}}
	}
}

// pageFunc rewrites the honest answer to a fetch.
type pageFunc func(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs, r seam.FetchRecentResult, err error) (seam.FetchRecentResult, error)

func onPage(f pageFunc) wrapFunc {
	return onFetch(func(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
		r, err := inner.FetchRecent(ctx, args)
		return f(inner, ctx, args, r, err)
	})
}

// mapFetch applies f to every fetched message.
func mapFetch(inner seam.Backend, f func(seam.Message) seam.Message) func(context.Context, seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
	return func(ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
		r, err := inner.FetchRecent(ctx, args)
		for i := range r.Messages {
			r.Messages[i] = f(r.Messages[i])
		}
		return r, err
	}
}

// mapLive applies f to every delivered message.
func mapLive(inner seam.Backend, f func(seam.Message) seam.Message) func(context.Context, seam.Topic, seam.Handler) (seam.Subscription, error) {
	return func(ctx context.Context, topic seam.Topic, h seam.Handler) (seam.Subscription, error) {
		return inner.Subscribe(ctx, topic, func(m seam.Message) { h(f(m)) })
	}
}

func onFetched(f func(seam.Message) seam.Message) wrapFunc {
	return func(inner seam.Backend, _ *world) seam.Backend {
		return &hooked{Backend: inner, fetch: mapFetch(inner, f)}
	}
}

func onLive(f func(seam.Message) seam.Message) wrapFunc {
	return func(inner seam.Backend, _ *world) seam.Backend {
		return &hooked{Backend: inner, subscribe: mapLive(inner, f)}
	}
}

type postFunc func(inner seam.Backend, ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error)

func onPost(f postFunc) wrapFunc {
	return func(inner seam.Backend, _ *world) seam.Backend {
		return &hooked{Backend: inner, post: func(ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
			return f(inner, ctx, topic, who, content, opts)
		}}
	}
}

func indexOfCursor(ms []seam.Message, c seam.Cursor) int {
	return slices.IndexFunc(ms, func(m seam.Message) bool { return m.Cursor == c })
}

func nonBlocking(args seam.FetchRecentArgs) seam.FetchRecentArgs {
	args.Block = 0
	return args
}

// --- catch-up (1-8) ---

func postReturnsOtherID(inner seam.Backend, ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
	id, err := inner.Post(ctx, topic, who, content, opts)
	return id + "-ack", err // the acknowledgement names another id than the archive
}

// contentDerivedIDs makes the id a hash of topic and content: the same content
// posted twice collides.
func contentDerivedIDs(inner seam.Backend, _ *world) seam.Backend {
	idOf := func(topic seam.Topic, content string) seam.BackendMsgID {
		h := fnv.New64a()
		h.Write([]byte(string(topic) + "\x00" + content))
		return seam.BackendMsgID(fmt.Sprintf("c-%x", h.Sum64()))
	}
	rewrite := func(m seam.Message) seam.Message { m.BackendMsgID = idOf(m.Topic, m.Content); return m }
	return &hooked{
		Backend: inner,
		post: func(ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
			_, err := inner.Post(ctx, topic, who, content, opts)
			return idOf(topic, content), err
		},
		fetch: mapFetch(inner, rewrite),
	}
}

func inclusiveSince(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs, r seam.FetchRecentResult, err error) (seam.FetchRecentResult, error) {
	if err != nil || args.Since == nil {
		return r, err
	}
	all := everything(ctx, inner, args.Topic)
	if i := indexOfCursor(all, *args.Since); i >= 0 {
		r.Messages = append([]seam.Message{all[i]}, r.Messages...)
		r.NextCursor = r.Messages[len(r.Messages)-1].Cursor
	}
	return r, nil
}

func nextCursorIsTopicEnd(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs, r seam.FetchRecentResult, err error) (seam.FetchRecentResult, error) {
	if all := everything(ctx, inner, args.Topic); err == nil && len(all) > 0 {
		r.NextCursor = all[len(all)-1].Cursor
	}
	return r, err
}

func ignoresLimit(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
	args.Limit = 0 // always the default page
	return inner.FetchRecent(ctx, args)
}

func newestPageIsOldest(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs, r seam.FetchRecentResult, err error) (seam.FetchRecentResult, error) {
	if err != nil || args.Since != nil || len(r.Messages) == 0 {
		return r, err
	}
	all := everything(ctx, inner, args.Topic)
	r.Messages = all[:len(r.Messages)]
	r.NextCursor = r.Messages[len(r.Messages)-1].Cursor
	return r, nil
}

func newestPageNewestFirst(_ seam.Backend, _ context.Context, args seam.FetchRecentArgs, r seam.FetchRecentResult, err error) (seam.FetchRecentResult, error) {
	if args.Since == nil {
		slices.Reverse(r.Messages)
	}
	return r, err
}

// tailRepeatsLast treats Since as inclusive only when nothing follows it.
func tailRepeatsLast(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs, r seam.FetchRecentResult, err error) (seam.FetchRecentResult, error) {
	if err != nil || args.Since == nil || len(r.Messages) > 0 {
		return r, err
	}
	all := everything(ctx, inner, args.Topic)
	if i := indexOfCursor(all, *args.Since); i >= 0 {
		r.Messages = []seam.Message{all[i]}
	}
	return r, nil
}

func absentCursorUnreplayable(_ seam.Backend, _ context.Context, args seam.FetchRecentArgs, r seam.FetchRecentResult, err error) (seam.FetchRecentResult, error) {
	if err == nil && args.Since == nil && len(r.Messages) == 0 {
		r.NextCursor = "absent" // a cursor the backend will not recognise
	}
	return r, err
}

func readCreatesTopic(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs, r seam.FetchRecentResult, err error) (seam.FetchRecentResult, error) {
	if err == nil && args.Since == nil && len(r.Messages) == 0 {
		_, err = inner.Post(ctx, args.Topic, "system", "topic created", seam.PostOptions{})
	}
	return r, err
}

func noSuchTopic(name seam.Topic) pageFunc {
	return func(_ seam.Backend, _ context.Context, args seam.FetchRecentArgs, r seam.FetchRecentResult, err error) (seam.FetchRecentResult, error) {
		if err == nil && args.Since == nil && len(r.Messages) == 0 {
			return seam.FetchRecentResult{}, &seam.NoSuchTopicError{Topic: name}
		}
		return r, err
	}
}

// crossTopicLeak also posts into the topic this connection posted to before.
func crossTopicLeak(inner seam.Backend, _ *world) seam.Backend {
	var mu sync.Mutex
	var last seam.Topic
	return &hooked{Backend: inner, post: func(ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
		mu.Lock()
		prev := last
		last = topic
		mu.Unlock()
		if prev != "" && prev != topic {
			_, _ = inner.Post(ctx, prev, who, content, opts)
		}
		return inner.Post(ctx, topic, who, content, opts)
	}}
}

// --- post (9-12) ---

func acceptsIllegalContent(inner seam.Backend, ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
	clean := strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(content, string(utf8.RuneError)))
	return inner.Post(ctx, topic, who, clean, opts)
}

func trimsContent(inner seam.Backend, ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
	return inner.Post(ctx, topic, who, strings.TrimSpace(content), opts)
}

// illegalBreaksConnection refuses illegal content, then every later post.
func illegalBreaksConnection(inner seam.Backend, _ *world) seam.Backend {
	var broken atomic.Bool
	return &hooked{Backend: inner, post: func(ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
		if broken.Load() {
			return "", errors.New("connection lost")
		}
		id, err := inner.Post(ctx, topic, who, content, opts)
		if errors.Is(err, seam.ErrInvalidContent) {
			broken.Store(true)
		}
		return id, err
	}}
}

func replyNotDurable(inner seam.Backend, ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
	if opts.InReplyTo != "" {
		return "reply-" + opts.InReplyTo, nil // acknowledged, never stored
	}
	return inner.Post(ctx, topic, who, content, opts)
}

func resolveWrongHandle(inner seam.Backend, _ *world) seam.Backend {
	return &hooked{Backend: inner, resolve: func(context.Context, seam.Handle) (seam.BackendIdentity, error) {
		return seam.BackendIdentity{Handle: "nobody", BackendRef: "memory:nobody"}, nil
	}}
}

func collapsesSenders(inner seam.Backend, ctx context.Context, topic seam.Topic, _ seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
	return inner.Post(ctx, topic, "bridge", content, opts)
}

// --- live path (13-17) ---

func replaysHistory(inner seam.Backend, _ *world) seam.Backend {
	return &hooked{Backend: inner, subscribe: func(ctx context.Context, topic seam.Topic, h seam.Handler) (seam.Subscription, error) {
		for _, m := range everything(ctx, inner, topic) {
			h(m)
		}
		return inner.Subscribe(ctx, topic, h)
	}}
}

func deliversTwice(inner seam.Backend, _ *world) seam.Backend {
	return &hooked{Backend: inner, subscribe: func(ctx context.Context, topic seam.Topic, h seam.Handler) (seam.Subscription, error) {
		return inner.Subscribe(ctx, topic, func(m seam.Message) { h(m); h(m) })
	}}
}

// filtersLive delivers only this connection's own posts (onlyOwn) or only the
// others' posts.
func filtersLive(onlyOwn bool) wrapFunc {
	return func(inner seam.Backend, _ *world) seam.Backend {
		var mine sync.Map // topic+"\x00"+content of this connection's posts
		return &hooked{
			Backend: inner,
			post: func(ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
				mine.Store(string(topic)+"\x00"+content, true) // before posting: delivery may beat the return
				return inner.Post(ctx, topic, who, content, opts)
			},
			subscribe: func(ctx context.Context, topic seam.Topic, h seam.Handler) (seam.Subscription, error) {
				return inner.Subscribe(ctx, topic, func(m seam.Message) {
					if _, own := mine.Load(string(m.Topic) + "\x00" + m.Content); own == onlyOwn {
						h(m)
					}
				})
			},
		}
	}
}

// reordersLive swaps the first two deliveries of each subscription.
func reordersLive(inner seam.Backend, _ *world) seam.Backend {
	return &hooked{Backend: inner, subscribe: func(ctx context.Context, topic seam.Topic, h seam.Handler) (seam.Subscription, error) {
		var n int
		var held seam.Message // handler calls are sequential: no lock needed
		return inner.Subscribe(ctx, topic, func(m seam.Message) {
			switch n++; n {
			case 1:
				held = m
			case 2:
				h(m)
				h(held)
			default:
				h(m)
			}
		})
	}}
}

// liveCrossTopicLeak hands every message to every handler of the connection.
func liveCrossTopicLeak(inner seam.Backend, _ *world) seam.Backend {
	var mu sync.Mutex
	var handlers []seam.Handler
	return &hooked{Backend: inner, subscribe: func(ctx context.Context, topic seam.Topic, h seam.Handler) (seam.Subscription, error) {
		mu.Lock()
		handlers = append(handlers, h)
		mu.Unlock()
		return inner.Subscribe(ctx, topic, func(m seam.Message) {
			mu.Lock()
			hs := slices.Clone(handlers)
			mu.Unlock()
			for _, h := range hs {
				h(m)
			}
		})
	}}
}

// handlersSurviveDisconnect subscribes through a shadow connection that
// Disconnect forgets.
func handlersSurviveDisconnect(inner seam.Backend, w *world) seam.Backend {
	return &hooked{Backend: inner, subscribe: func(ctx context.Context, topic seam.Topic, h seam.Handler) (seam.Subscription, error) {
		return w.connected().Subscribe(ctx, topic, h)
	}}
}

// postAfterDisconnect posts through a shadow connection once disconnected.
func postAfterDisconnect(inner seam.Backend, w *world) seam.Backend {
	return &hooked{Backend: inner, post: func(ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
		id, err := inner.Post(ctx, topic, who, content, opts)
		if errors.Is(err, seam.ErrDisconnected) {
			return w.connected().Post(ctx, topic, who, content, opts)
		}
		return id, err
	}}
}

func secondDisconnectErrors(inner seam.Backend, _ *world) seam.Backend {
	var calls atomic.Int32
	return &hooked{Backend: inner, disconnect: func(ctx context.Context) error {
		if calls.Add(1) > 1 {
			return errors.New("already disconnected")
		}
		return inner.Disconnect(ctx)
	}}
}

// --- blocking fetch (18-22) ---

// blockHidesWindow answers a blocking fetch without Since with the tail only.
func blockHidesWindow(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
	r, err := inner.FetchRecent(ctx, nonBlocking(args))
	if args.Since == nil && args.Block > 0 {
		r.Messages = nil
	}
	return r, err
}

// blockNeverWakes sleeps out the whole budget, whatever is posted meanwhile.
func blockNeverWakes(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
	r, err := inner.FetchRecent(ctx, nonBlocking(args))
	if err != nil || len(r.Messages) > 0 || args.Block <= 0 {
		return r, err
	}
	if err := sleepCtx(ctx, args.Block); err != nil {
		return seam.FetchRecentResult{}, err
	}
	return inner.FetchRecent(ctx, nonBlocking(args))
}

// wakesWithStalePage wakes on the post but answers with the page read before it.
func wakesWithStalePage(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
	r, err := inner.FetchRecent(ctx, nonBlocking(args))
	if err != nil || len(r.Messages) > 0 || args.Block <= 0 {
		return r, err
	}
	_, err = inner.FetchRecent(ctx, args)
	return r, err
}

func blockReturnsAtOnce(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
	return inner.FetchRecent(ctx, nonBlocking(args))
}

// waker is a broadcast a connection fires after each of its own posts.
type waker struct {
	mu sync.Mutex
	ch chan struct{}
}

func (w *waker) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

func (w *waker) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
}

// lostWakeup checks for news, then only later starts listening for posts: a post
// landing in between is missed until the budget runs out.
func lostWakeup(inner seam.Backend, _ *world) seam.Backend {
	wk := &waker{ch: make(chan struct{})}
	return &hooked{
		Backend: inner,
		post: func(ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
			id, err := inner.Post(ctx, topic, who, content, opts)
			wk.fire()
			return id, err
		},
		fetch: func(ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
			r, err := inner.FetchRecent(ctx, nonBlocking(args))
			if err != nil || len(r.Messages) > 0 || args.Block <= 0 {
				return r, err
			}
			time.Sleep(20 * time.Millisecond) // the window between checking and listening
			timer := time.NewTimer(args.Block)
			defer timer.Stop()
			select {
			case <-wk.wait():
			case <-timer.C:
			case <-ctx.Done():
				return seam.FetchRecentResult{}, ctx.Err()
			}
			return inner.FetchRecent(ctx, nonBlocking(args))
		},
	}
}

// --- concurrency (23-24) ---

// wakeReturnsNewestOnly answers a woken fetch with the newest message only, so a
// burst of posts loses all but its last. Posts are slowed a little so that bursts
// land while a reader is blocked.
func wakeReturnsNewestOnly(inner seam.Backend, _ *world) seam.Backend {
	return &hooked{
		Backend: inner,
		post: func(ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
			time.Sleep(time.Millisecond)
			return inner.Post(ctx, topic, who, content, opts)
		},
		fetch: func(ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
			r, err := inner.FetchRecent(ctx, nonBlocking(args))
			if err != nil || len(r.Messages) > 0 || args.Block <= 0 {
				return r, err
			}
			if r, err = inner.FetchRecent(ctx, args); err != nil || len(r.Messages) == 0 {
				return r, err
			}
			time.Sleep(10 * time.Millisecond) // let the burst land
			r, err = inner.FetchRecent(ctx, nonBlocking(args))
			if len(r.Messages) > 1 {
				r.Messages = r.Messages[len(r.Messages)-1:]
			}
			return r, err
		},
	}
}

// perConnectionIDs numbers ids per connection: unique for one writer, colliding
// across concurrent ones.
func perConnectionIDs(inner seam.Backend, w *world) seam.Backend {
	var n atomic.Int64
	return &hooked{
		Backend: inner,
		post: func(ctx context.Context, topic seam.Topic, who seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
			id, err := inner.Post(ctx, topic, who, content, opts)
			if err != nil {
				return id, err
			}
			local := seam.BackendMsgID(fmt.Sprintf("p-%d", n.Add(1)))
			w.ids.Store(id, local)
			return local, nil
		},
		fetch: mapFetch(inner, func(m seam.Message) seam.Message {
			if local, ok := w.ids.Load(m.BackendMsgID); ok {
				m.BackendMsgID = local.(seam.BackendMsgID)
			}
			return m
		}),
	}
}

// --- clause 28 ---

func unknownCursorNewestPage(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs, r seam.FetchRecentResult, err error) (seam.FetchRecentResult, error) {
	if errors.Is(err, seam.ErrUnknownCursor) {
		args.Since = nil
		return inner.FetchRecent(ctx, args)
	}
	return r, err
}

func unknownCursorFullReplay(inner seam.Backend, ctx context.Context, args seam.FetchRecentArgs, r seam.FetchRecentResult, err error) (seam.FetchRecentResult, error) {
	if errors.Is(err, seam.ErrUnknownCursor) {
		all := everything(ctx, inner, args.Topic)
		if len(all) == 0 {
			return r, err
		}
		return seam.FetchRecentResult{Messages: all, NextCursor: all[len(all)-1].Cursor}, nil
	}
	return r, err
}

// --- XMPP ---

// trustsForgedIDs is the backend of the forged-id-trusted variant: it reports the
// forged id on both paths.
func trustsForgedIDs(inner seam.Backend, w *world) seam.Backend {
	rewrite := func(m seam.Message) seam.Message { return w.muc.trustForged(m) }
	return &hooked{
		Backend:   inner,
		fetch:     mapFetch(inner, rewrite),
		subscribe: mapLive(inner, rewrite),
	}
}

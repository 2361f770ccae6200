// Package runtime is the backend that bridges embed: a seam.Backend that serves
// Parley topics as XMPP Multi-User Chat rooms.
//
// A topic is a MUC room (see RoomLocalpart). A message's id and cursor are the
// room's XEP-0359 stanza-id, which is also its XEP-0313 (MAM) archive id, so a
// message has the same id and cursor whether it arrives live or from the archive.
// Catch-up (FetchRecent) is a MAM query; joining a room asks for no history. A
// post resolves when the room reflects it.
//
// Inside, the runtime is a set of actors (github.com/asynkron/protoactor-go): a
// session actor owns the connection, one room actor per room owns its join
// state, pending posts and subscribers, and each room's archive actor reads its
// archive. Public calls cross into the actors and honour their context. The
// runtime's types (State, StateChange, RoomEvent, Allowlist) are the actors'
// own, declared once in the runtime's vocabulary (internal/vocab) and named
// here, and every error a call returns matches a sentinel of this package
// (errors.go) or of package seam. The
// runtime reads no environment (see ConfigFromEnv). docs/architecture.md draws
// the whole house.
//
// # Bridging
//
// A bridge that forwards a topic elsewhere and restarts where it stopped
// subscribes first, then reads FetchRecent from its saved cursor (an empty
// cursor: from the start), and drops the live messages whose ids the archive
// already gave it: nothing is missed between the two, nothing handled twice
// (FetchRecent says how; its examples run against a server). Post's identity
// argument is ignored: every post is the runtime's nick's (Post). A handler
// that panics is logged at ERROR with its topic, also without a Logger
// (Subscribe).
package runtime

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parley-go/parley-xmpp/actors/notifier"
	"github.com/parley-go/parley-xmpp/actors/room"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/internal/ask"
	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/supervision"
)

// Runtime is a seam.Backend over one XMPP connection. Its methods are safe for
// concurrent use. A Runtime is used once: after Disconnect every call fails with
// seam.ErrDisconnected.
type Runtime struct {
	cfg *resolved
	log *slog.Logger

	mu       sync.Mutex // guards the lifecycle fields below, not the actors' state
	system   *actor.ActorSystem
	asker    *ask.Asker // every call into the actors goes through it
	session  *actor.PID
	notifier *actor.PID
	online   bool // Connect succeeded once
	closed   bool

	// state is the connection's State, stored by the session actor as it
	// changes, before it answers Connect or Disconnect: not by the notifier,
	// whose events wait behind the embedder's callbacks.
	state atomic.Int32
}

var _ seam.Backend = (*Runtime)(nil)

// New checks cfg and returns a Runtime that is not yet connected.
func New(cfg Config) (*Runtime, error) {
	r, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runtime{cfg: r, log: log}, nil
}

// Nick is the occupant nick this runtime posts under.
func (rt *Runtime) Nick() string { return rt.cfg.Nick }

// State is the connection's state now. Before the first Connect it is
// Connecting; once Connect has returned nil it is Online (until the link
// drops), and once Disconnect has returned it is Closed. It does not wait for
// OnStateChange: the callbacks run later, in order, on a goroutine of their
// own.
func (rt *Runtime) State() State { return State(rt.state.Load()) }

// Connect dials the server and logs in; it returns once logged in. Rooms are
// joined on first use. Calling Connect on a connected runtime does nothing.
func (rt *Runtime) Connect(ctx context.Context) error {
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return seam.ErrDisconnected
	}
	if rt.system == nil {
		if err := rt.start(); err != nil {
			rt.mu.Unlock()
			return fmt.Errorf("parley-xmpp: connect: %w", err)
		}
	}
	system, asker, pid := rt.system, rt.asker, rt.session
	rt.mu.Unlock()

	res, err := asker.Ask(ctx, pid, &session.Connect{})
	if err != nil {
		if ctx.Err() != nil {
			system.Root.Send(pid, &session.AbortConnect{})
		}
		return rt.callErr("connect", err)
	}
	if c, ok := res.(*session.Connected); ok && c.Err != nil {
		return fmt.Errorf("parley-xmpp: connect to %s as %s@%s: %w", rt.cfg.addr, rt.cfg.Username, rt.cfg.Domain, c.Err)
	}
	rt.mu.Lock()
	rt.online = !rt.closed
	rt.mu.Unlock()
	return nil
}

// start builds the actor system, its asker, the notifier and the session
// actor. Called with mu held.
func (rt *Runtime) start() error {
	c := rt.cfg
	system := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet(rt.log) }),
		actor.WithDeadLetterThrottleInterval(100*time.Millisecond),
	)
	asker, err := ask.New(system, rt.log)
	if err != nil {
		system.Shutdown()
		return err
	}
	rt.system, rt.asker = system, asker
	root := rt.system.Root
	nc := notifier.Config{Logger: rt.log}
	if f := c.OnStateChange; f != nil {
		nc.OnStateChange = f
	}
	if f := c.OnRoomEvent; f != nil {
		nc.OnRoomEvent = f
	}
	rt.notifier = root.Spawn(notifier.Props(nc))
	keepAlive := c.KeepAlive
	if keepAlive < 0 {
		keepAlive = 0
	}
	props := session.Props(session.Config{
		Conn:    c.connOptions(),
		Logger:  rt.log,
		NewRoom: rt.roomProps,
		Notify:  rt.notifier,
		State:   &rt.state,
		Rooms: supervision.Policy{
			MaxFailures: 5, Window: time.Minute, InitialDelay: 10 * time.Millisecond, MaxDelay: 5 * time.Second,
			Report: func(f supervision.Failure) { rt.log.Error("room actor failed", slog.String("failure", f.String())) },
		}.Strategy(),
		FailFast: c.FailFast,
		Reconnect: session.Reconnect{
			InitialInterval: c.ReconnectWait, MaxInterval: c.MaxReconnectWait,
			MaxAttempts: c.MaxReconnects, StableAfter: c.StableAfter,
		},
		KeepAlive:        keepAlive,
		KeepAliveTimeout: c.KeepAliveTimeout,
		LoginTimeout:     c.DialTimeout,
		RejoinInFlight:   c.RejoinConcurrency,
		RejoinLease:      defaults.RejoinLease,
		CloseGrace:       defaults.CloseGrace,
		Metrics:          c.Metrics,
	})
	// A top-level actor ignores its own props' supervisor; the guardian decides.
	// The session holds the connection: a failure of its own stops it (the
	// runtime reports Closed) rather than restarting it without its rooms.
	guardian := supervision.Policy{MaxFailures: 0, Report: func(f supervision.Failure) {
		rt.log.Error("session actor failed; the runtime is closed", slog.String("failure", f.String()))
		rt.state.Store(int32(Closed))
		root.Send(rt.notifier, &StateChange{To: Closed, Err: fmt.Errorf("%w: %v", supervision.ErrActorFailed, f.Reason), At: time.Now()})
	}}.Strategy()
	rt.session = root.Spawn(props.Configure(actor.WithGuardian(guardian)))
	return nil
}

func (rt *Runtime) roomProps(spec session.RoomSpec) *actor.Props {
	c := rt.cfg
	selfPing := c.SelfPing
	if selfPing < 0 {
		selfPing = 0
	}
	return room.Props(room.Config{
		JID: spec.JID, Topic: spec.Topic, Nick: c.Nick, Pinned: c.pinned, Session: spec.Session,
		Online: spec.Online, Link: spec.Link, Notify: rt.notifier, Logger: rt.log, Replies: rt.asker,
		IQTimeout: c.RequestTimeout, JoinTimeout: c.JoinTimeout, PostTimeout: c.PostTimeout,
		DefaultLimit: c.FetchLimit, MaxLimit: c.MaxFetchLimit, PageSize: c.MAMPageSize,
		SubscriberBuffer: c.SubscriberBuffer, SelfPing: selfPing, PersistentRooms: c.PersistentRooms,
		RingMessages: c.RingMessages, RingBytes: c.RingBytes, ArchiveWait: c.ArchiveWait,
		DedupWindow: defaults.DedupWindow, RejoinMin: defaults.RejoinMin, RejoinMax: defaults.RejoinMax,
		MaxBuffered: defaults.MaxBuffered, TargetLookback: defaults.TargetLookback, PostWindow: defaults.PostWindow,
		Metrics: rt.roomMetrics(spec.Topic),
		Account: c.Username + "@" + c.Domain,
		Allow:   c.allowFor(spec.Topic),
	})
}

func (c *resolved) allowFor(topic seam.Topic) *Allowlist {
	if a, ok := c.Allow[topic]; ok {
		return &a
	}
	return nil
}

func (rt *Runtime) roomMetrics(topic seam.Topic) observe.Room {
	if rt.cfg.Metrics == nil {
		return nil
	}
	return rt.cfg.Metrics.Room(string(topic))
}

// Disconnect closes the connection and stops every room and subscription. It
// returns when no handler is running and the runtime's goroutines have ended
// (or ctx ends). Calling it again does nothing.
func (rt *Runtime) Disconnect(ctx context.Context) error {
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return nil
	}
	rt.closed, rt.online = true, false
	system, asker, pid := rt.system, rt.asker, rt.session
	rt.mu.Unlock()
	// Closed once Disconnect returns, whatever the session said last (it
	// says so itself before answering; a session that never ran, or didn't
	// answer in time, says nothing).
	defer rt.state.Store(int32(Closed))
	if system == nil {
		return nil
	}
	_, err := asker.Ask(ctx, pid, &session.Disconnect{})
	if err := system.Root.StopFuture(pid).Wait(); err != nil {
		rt.log.Warn("session did not stop in time", slog.Any("err", err))
	}
	// The notifier drains the events still queued (Closed among them) first.
	if err := system.Root.PoisonFuture(rt.notifier).Wait(); err != nil {
		rt.log.Warn("notifier did not stop in time", slog.Any("err", err))
	}
	system.Shutdown()
	if err != nil && !errors.Is(err, ask.ErrNoActor) {
		return fmt.Errorf("parley-xmpp: disconnect: %w", err)
	}
	return nil
}

// ready returns the actor system, asker and session of a connected runtime.
func (rt *Runtime) ready() (*actor.ActorSystem, *ask.Asker, *actor.PID, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	switch {
	case rt.closed:
		return nil, nil, nil, seam.ErrDisconnected
	case !rt.online:
		return nil, nil, nil, seam.ErrNotConnected
	}
	return rt.system, rt.asker, rt.session, nil
}

// toRoom asks topic's room actor msg.
func (rt *Runtime) toRoom(ctx context.Context, topic seam.Topic, msg any) (any, error) {
	local, err := RoomLocalpart(topic)
	if err != nil {
		return nil, err
	}
	_, asker, pid, err := rt.ready()
	if err != nil {
		return nil, err
	}
	res, err := asker.Ask(ctx, pid, &session.ToRoom{Room: local + "@" + rt.cfg.MUCService, Topic: topic, Msg: msg})
	if err != nil {
		return nil, rt.callErr("", err)
	}
	if e, ok := res.(error); ok {
		return nil, e
	}
	return res, nil
}

func (rt *Runtime) callErr(op string, err error) error {
	if errors.Is(err, ask.ErrNoActor) {
		return seam.ErrDisconnected
	}
	if op != "" {
		return fmt.Errorf("parley-xmpp: %s: %w", op, err)
	}
	return err
}

// Post sends content to topic's room and returns the room's stanza-id for it once
// the room reflects it.
//
// identity is there for seam.Backend, and ignored: it is not sent, stored or
// checked. Every post goes out under the runtime's occupant nick (Nick), and
// that nick is the SenderHandle subscribers, the archive and other clients
// see (ResolveIdentity answers so). A bridge relaying other people's messages
// puts their names in the content (see the Post example).
//
// Content that XML can't carry (NUL and
// other control characters, invalid UTF-8, U+FFFE, U+FFFF), empty content, and
// content over MaxContentBytes fail with seam.ErrInvalidContent before anything
// is sent. A carriage return arrives as a line feed (XML normalises line ends).
//
// While the link is down Post waits for it (unless FailFast). A post in flight
// when the link drops resolves exactly once: with the id the archive holds for
// it, or, when the archive doesn't hold it, it is sent again. When ctx ends
// first, the error wraps ctx.Err() and ErrPostNotSent or ErrPostInDoubt.
func (rt *Runtime) Post(ctx context.Context, topic seam.Topic, identity seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
	if err := rt.checkContent(content); err != nil {
		return "", err
	}
	if err := stanza.CheckText(string(opts.InReplyTo)); err != nil {
		return "", fmt.Errorf("%w: InReplyTo: %v", seam.ErrInvalidContent, err)
	}
	origin := rand.Text()
	if err := rt.checkStanzaSize(topic, origin, content, string(opts.InReplyTo)); err != nil {
		return "", err
	}
	res, err := rt.toRoom(ctx, topic, &room.Post{Origin: origin, Content: content, InReplyTo: opts.InReplyTo, Fence: postFence(ctx)})
	if err != nil {
		if ctx.Err() != nil {
			return rt.abandonPost(topic, origin, err)
		}
		return "", fmt.Errorf("parley-xmpp: post to %q: %w", topic, err)
	}
	p := res.(*room.Posted)
	if p.Err != nil {
		return "", fmt.Errorf("parley-xmpp: post to %q: %w", topic, p.Err)
	}
	return p.ID, nil
}

// ActOptions are the optional parts of Edit, Retract and React.
type ActOptions struct {
	// Key, when set, makes the call idempotent as PostOnce is with its key
	// (the XEP-0359 origin-id of what is sent, derived with a secret:
	// OriginKey), reading the archive after *After (nil: from the start).
	// Unset, a random origin-id is used, as Post does.
	Key   string
	After *seam.Cursor
}

// Edit corrects one of this account's messages of topic (XEP-0308): content
// replaces its text. The room must have seen target (live, or in a
// FetchRecent of this runtime): else ErrUnknownTarget; a message of another
// account: ErrNotOwnMessage; nothing is sent then. It returns the
// correction's own id. The exactly-once and in-doubt rules are Post's (with
// ActOptions.Key, PostOnce's). Readers receive it with seam.Message.Replaces.
func (rt *Runtime) Edit(ctx context.Context, topic seam.Topic, target seam.BackendMsgID, content string, opts ActOptions) (seam.BackendMsgID, error) {
	if err := rt.checkContent(content); err != nil {
		return "", err
	}
	return rt.act(ctx, topic, &room.Post{Content: content, Replaces: target}, opts)
}

// Retract withdraws one of this account's messages of topic (XEP-0424: v0.3
// and v0.4's elements, and a fallback body marked as XEP-0428). Target
// rules, errors and delivery as Edit; readers receive it with
// seam.Message.Retracts. The archive keeps the original.
func (rt *Runtime) Retract(ctx context.Context, topic seam.Topic, target seam.BackendMsgID, opts ActOptions) (seam.BackendMsgID, error) {
	return rt.act(ctx, topic, &room.Post{Retracts: target}, opts)
}

// React sets this account's reactions to any message of topic the room has
// seen (XEP-0444): reactions is the full set it now holds (none: withdraw
// them all), each an emoji or short text. Errors and delivery as Edit.
func (rt *Runtime) React(ctx context.Context, topic seam.Topic, target seam.BackendMsgID, reactions []string, opts ActOptions) (seam.BackendMsgID, error) {
	if len(reactions) > 64 {
		return "", fmt.Errorf("parley-xmpp: react: at most 64 reactions: %w", ErrInvalidArgument)
	}
	for _, r := range reactions {
		if err := stanza.CheckText(r); err != nil || strings.TrimSpace(r) == "" || len(r) > 64 {
			return "", fmt.Errorf("parley-xmpp: react: reaction %q: %w", r, ErrInvalidArgument)
		}
	}
	return rt.act(ctx, topic, &room.Post{ReactsTo: target, Reactions: slices.Clone(reactions)}, opts)
}

// act sends a relation post, with Post's (or PostOnce's) rules.
func (rt *Runtime) act(ctx context.Context, topic seam.Topic, p *room.Post, opts ActOptions) (seam.BackendMsgID, error) {
	for _, id := range []seam.BackendMsgID{p.Replaces, p.Retracts, p.ReactsTo} {
		if err := stanza.CheckText(string(id)); err != nil {
			return "", fmt.Errorf("parley-xmpp: target: %v: %w", err, ErrInvalidArgument)
		}
	}
	if p.Replaces == "" && p.Retracts == "" && p.ReactsTo == "" {
		return "", fmt.Errorf("parley-xmpp: no target: %w", ErrInvalidArgument)
	}
	p.Origin = rand.Text()
	if opts.Key != "" {
		if len(opts.Key) > 128 || stanza.CheckText(opts.Key) != nil {
			return "", fmt.Errorf("parley-xmpp: the key must hold 1 to 128 bytes of text: %w", ErrInvalidArgument)
		}
		since := seam.Cursor("")
		if opts.After != nil {
			since = *opts.After
		}
		p.Origin, p.OnceAfter = opts.Key, &since
	}
	if err := rt.checkStanzaSize(topic, p.Origin, p.Content, ""); err != nil {
		return "", err
	}
	p.Fence = postFence(ctx)
	res, err := rt.toRoom(ctx, topic, p)
	if err != nil {
		if ctx.Err() != nil {
			return rt.abandonPost(topic, p.Origin, err)
		}
		return "", fmt.Errorf("parley-xmpp: post to %q: %w", topic, err)
	}
	posted := res.(*room.Posted)
	if posted.Err != nil {
		return "", fmt.Errorf("parley-xmpp: post to %q: %w", topic, posted.Err)
	}
	return posted.ID, nil
}

// WithPostFence answers a ctx under which Post and PostOnce write their message
// only while fence answers nil. It is asked immediately before every write of
// the message (its first, a resend after a lost link, and the connection's
// own resend when stream management resumes the link), the last time by
// the connection's writer right before the write system call, so a post that
// waited (for the room's archive check, for the post window, in the link's
// queue) is checked when it actually goes out, not when it was asked for. A
// post it refuses is not written: the call fails with ErrPostFenced when the
// room's check refused it; refused by the writer (fence changed its answer in
// the microseconds between the two), the post is never reflected and fails
// with ErrPostTimeout, in doubt (PostOnce with the same key resolves it).
// fence must be quick and must not block; it runs on the runtime's actors and
// on the connection's writer.
//
// A cluster node fences its relay's posts with its etcd lease's local
// validity (a monotonic deadline): a node paused (SIGSTOP) past its lease
// with a post queued does not write it when it runs again, after another node
// took over and posted the same message.
func WithPostFence(ctx context.Context, fence func() error) context.Context {
	return context.WithValue(ctx, postFenceKey{}, fence)
}

type postFenceKey struct{}

func postFence(ctx context.Context) func() error {
	f, _ := ctx.Value(postFenceKey{}).(func() error)
	return f
}

// PostOnce posts content to topic with key as its XEP-0359 origin-id, unless the
// topic's archive already holds a message of this runtime's account with that
// origin-id after *after (nil: from the start): then it returns that message's
// id and sends nothing. With a key derived from what is being posted (a relayed
// message's id, say), a caller that retries after a crash posts it exactly
// once, also from another runtime of the same account. The check reads the
// archive after *after, so keep that range short: pass the id of the last
// message you know you posted.
//
// Which archived message counts as this account's: where the room shows real
// JIDs (a non-anonymous room; ejabberd also shows an account its own), only one
// whose real JID is the account's bare JID. Where it hides them (an anonymous
// room, Prosody's default), any message with the key's origin-id, so the key
// must be one that nobody else can compute, or an occupant who predicts it can
// post it first and suppress the real post: derive keys with a secret
// (OriginKey), and share the secret only with the runtimes that must agree.
// An outcome that leaves the post in doubt is errors.Is(err, ErrPostInDoubt);
// calling PostOnce again with the same key and after resolves it.
func (rt *Runtime) PostOnce(ctx context.Context, topic seam.Topic, key, content string, after *seam.Cursor) (seam.BackendMsgID, error) {
	return rt.PostOnceWith(ctx, topic, key, content, after, seam.PostOptions{})
}

// OwnID returns the id of this account's message of topic whose origin-id
// is origin (a PostOnce key, say), among the messages the topic's room has
// seen (live, or in a FetchRecent of this runtime): ErrUnknownTarget when
// none. serve's relays map a relation's target into the destination with it.
func (rt *Runtime) OwnID(ctx context.Context, topic seam.Topic, origin string) (seam.BackendMsgID, error) {
	res, err := rt.toRoom(ctx, topic, &room.OwnID{Origin: origin})
	if err != nil {
		return "", fmt.Errorf("parley-xmpp: own id in %q: %w", topic, err)
	}
	r := res.(*room.OwnIDResult)
	return r.ID, r.Err
}

// PostOnceWith is PostOnce with PostOptions: a reply (opts.InReplyTo) posted
// exactly once.
func (rt *Runtime) PostOnceWith(ctx context.Context, topic seam.Topic, key, content string, after *seam.Cursor, opts seam.PostOptions) (seam.BackendMsgID, error) {
	if err := stanza.CheckText(string(opts.InReplyTo)); err != nil {
		return "", fmt.Errorf("%w: InReplyTo: %v", seam.ErrInvalidContent, err)
	}
	if key == "" || len(key) > 128 {
		return "", fmt.Errorf("parley-xmpp: post once: the key must hold 1 to 128 bytes: %w", ErrInvalidArgument)
	}
	if err := stanza.CheckText(key); err != nil {
		return "", fmt.Errorf("parley-xmpp: post once: key: %v: %w", err, ErrInvalidArgument)
	}
	if err := rt.checkContent(content); err != nil {
		return "", err
	}
	since := seam.Cursor("")
	if after != nil {
		since = *after
	}
	if err := rt.checkStanzaSize(topic, key, content, string(opts.InReplyTo)); err != nil {
		return "", err
	}
	res, err := rt.toRoom(ctx, topic, &room.Post{Origin: key, Content: content, InReplyTo: opts.InReplyTo, OnceAfter: &since, Fence: postFence(ctx)})
	if err != nil {
		if ctx.Err() != nil {
			return rt.abandonPost(topic, key, err)
		}
		return "", fmt.Errorf("parley-xmpp: post to %q: %w", topic, err)
	}
	p := res.(*room.Posted)
	if p.Err != nil {
		return "", fmt.Errorf("parley-xmpp: post to %q: %w", topic, p.Err)
	}
	return p.ID, nil
}

// checkStanzaSize measures the post's stanza exactly as it will be written and
// refuses one over MaxStanzaBytes, before anything is sent.
func (rt *Runtime) checkStanzaSize(topic seam.Topic, origin, content, inReplyTo string) error {
	local, err := RoomLocalpart(topic)
	if err != nil {
		return nil // the room lookup reports it
	}
	// Measured without the reply's quote: the room drops the quote of a reply
	// it would make too large.
	n := len(stanza.GroupchatMessage(local+"@"+rt.cfg.MUCService, origin, content, stanza.Reply{ID: inReplyTo}))
	if n > rt.cfg.MaxStanzaBytes {
		return fmt.Errorf("%w: %w: the message is %d bytes once XML-escaped (its content %d), over the %d-byte stanza limit (Config.MaxStanzaBytes; the server closes the stream on a stanza over its own limit): shorten it, or send fewer characters that need escaping (& < > and carriage returns)",
			seam.ErrContentTooLarge, seam.ErrInvalidContent, n, len(content), rt.cfg.MaxStanzaBytes)
	}
	return nil
}

// abandonPost settles a post whose caller's ctx ended: the room withdraws it if
// it wasn't sent, and stops resending it if it was; the caller learns which.
func (rt *Runtime) abandonPost(topic seam.Topic, origin string, cause error) (seam.BackendMsgID, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := rt.toRoom(ctx, topic, &room.CancelPost{Origin: origin})
	fate, ok := res.(*room.PostFate)
	switch {
	case err != nil || !ok:
		return "", fmt.Errorf("parley-xmpp: post to %q: %w (%w)", topic, cause, ErrPostInDoubt)
	case fate.ID != "":
		return fate.ID, nil // it landed as the caller gave up
	case fate.Sent:
		return "", fmt.Errorf("parley-xmpp: post to %q: %w (%w)", topic, cause, ErrPostInDoubt)
	default:
		return "", fmt.Errorf("parley-xmpp: post to %q: %w (%w)", topic, cause, ErrPostNotSent)
	}
}

// FetchRecent reads topic's archive: with Since nil the newest Limit messages,
// otherwise up to Limit messages strictly after *Since, oldest first. Since
// pointing at an empty cursor ("") means from the start: the topic's oldest
// Limit messages, then on from NextCursor (see the fromTheStart example). A
// topic never posted to gives an empty page whose NextCursor replays from the
// start, and reading does not create its room.
//
// To resume without a gap (a bridge restarting with its saved cursor):
// Subscribe first, keeping what it delivers; then read from the saved cursor
// until a page comes back empty, handling each message and noting its id;
// then handle the kept live messages, dropping those whose ids the archive
// gave (a message reflected while the reads ran comes both ways), and go on
// live. Save each handled message's Cursor (see the resume example). A Since the archive doesn't know (never
// issued, or expired) fails with seam.ErrUnknownCursor. With Block set and
// nothing newer than Since, it waits up to Block for the next message (joining
// the room, which creates it if need be).
//
// A read is bounded: a server whose paging doesn't end (empty pages that each
// claim more, or a flood of rows that aren't messages) fails it with
// ErrArchiveRunaway (see docs/security.md for the bounds). When ctx ends, the
// read stops at the page in flight: no further page is asked for.
func (rt *Runtime) FetchRecent(ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
	// Done: once ctx ends, the archive asks the server for no further page.
	res, err := rt.toRoom(ctx, args.Topic, &room.Fetch{Since: args.Since, Limit: args.Limit, Block: args.Block, Done: ctx.Done()})
	if err != nil {
		return seam.FetchRecentResult{}, fmt.Errorf("parley-xmpp: fetch %q: %w", args.Topic, err)
	}
	// The answer is the archive actor's (archive.Result): the archive decides
	// its NextCursor, and the runtime passes it through.
	page, err := res.(interface {
		Page() (seam.FetchRecentResult, error)
	}).Page()
	if err != nil {
		return seam.FetchRecentResult{}, fmt.Errorf("parley-xmpp: fetch %q: %w", args.Topic, err)
	}
	return page, nil
}

// Subscribe delivers every message of topic reflected after it returns, own
// posts included, once each, in archive order, to h, on a goroutine of the
// subscription's own: a slow handler delays only itself.
//
// A handler that panics keeps its subscription: the message counts as
// delivered, the next one follows. The panic is logged at ERROR with the
// topic, the message's id, the panic's value and stack: to Config.Logger, or,
// without one, to slog.Default(); and OnRoomEvent gets a
// RoomSubscriberPanicked event.
//
// Messages reflected before Subscribe returns are the archive's: a bridge
// that resumes from a saved cursor without a gap subscribes first, then reads
// FetchRecent from the cursor, and drops the live messages whose ids the
// archive gave it (see the FetchRecent resume example).
func (rt *Runtime) Subscribe(ctx context.Context, topic seam.Topic, h seam.Handler) (seam.Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("parley-xmpp: subscribe: nil handler: %w", ErrInvalidArgument)
	}
	if _, err := RoomLocalpart(topic); err != nil {
		return nil, fmt.Errorf("parley-xmpp: subscribe to %q: %w", topic, err)
	}
	system, _, _, err := rt.ready()
	if err != nil {
		return nil, fmt.Errorf("parley-xmpp: subscribe to %q: %w", topic, err)
	}
	notify, root := rt.notifier, system.Root
	onPanic := func(m seam.Message, r any) {
		if rt.cfg.Logger == nil {
			// Without a Logger the runtime logs nothing, but a handler's
			// panic is a bug of the embedder's, which must not pass unseen.
			slog.Default().Error("subscription handler panicked; continuing with the next message",
				slog.String("topic", string(topic)), slog.String("id", string(m.BackendMsgID)), slog.String("panic", fmt.Sprint(r)),
				slog.String("stack", string(debug.Stack())))
		}
		root.Send(notify, &RoomEvent{Topic: topic, Kind: RoomSubscriberPanicked, Err: fmt.Errorf("%w on %s: %v", ErrHandlerPanicked, m.BackendMsgID, r), At: time.Now()})
	}
	res, err := rt.toRoom(ctx, topic, &room.Subscribe{Handler: h, OnPanic: onPanic})
	if err != nil {
		return nil, fmt.Errorf("parley-xmpp: subscribe to %q: %w", topic, err)
	}
	s := res.(*room.Subscribed)
	if s.Err != nil {
		return nil, fmt.Errorf("parley-xmpp: subscribe to %q: %w", topic, s.Err)
	}
	return &subscription{system: rt.system, pid: s.PID, room: s.Room, gate: s.Gate}, nil
}

type subscription struct {
	system *actor.ActorSystem
	pid    *actor.PID
	room   *actor.PID
	gate   *subscriber.Gate
	once   sync.Once
}

// Close stops delivery: once it returns, no message is handed to the handler
// other than one whose delivery had already begun. It may be called from the
// handler, and more than once.
func (s *subscription) Close() error {
	s.once.Do(func() {
		s.gate.Close()
		s.system.Root.Send(s.room, &room.Unsubscribe{PID: s.pid})
		s.system.Root.Stop(s.pid)
	})
	return nil
}

// ResolveIdentity answers by the string convention: the handle is its own
// identity, and BackendRef is the occupant nick this runtime posts under.
func (rt *Runtime) ResolveIdentity(ctx context.Context, handle seam.Handle) (seam.BackendIdentity, error) {
	if err := ctx.Err(); err != nil {
		return seam.BackendIdentity{}, err
	}
	if handle == "" {
		return seam.BackendIdentity{}, fmt.Errorf("parley-xmpp: resolve identity: empty handle: %w", ErrInvalidArgument)
	}
	return seam.BackendIdentity{Handle: handle, BackendRef: rt.cfg.Nick}, nil
}

// Package memory is the in-memory reference implementation of seam.Backend. It passes
// seam/conformance with BlockingFetch, CarriesSenderIdentity and
// AbsentTopicEmptyPage, and is meant to be read: every clause of the contract shows
// up here in its plainest form.
//
// A Store is the shared state, like a server; each Backend made by Store.NewBackend
// is an independent connection to it.
package memory

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parley-go/parley-xmpp/seam"
)

// DefaultLimit is the page size used when FetchRecentArgs.Limit <= 0.
const DefaultLimit = 50

// Store holds the topics every Backend of it shares.
type Store struct {
	salt string // makes the cursors of one store unknown to another

	mu     sync.Mutex
	topics map[seam.Topic]*topicLog // created by the first Post or Subscribe, never by a read
	posted chan struct{}            // closed and replaced by every Post: wakes blocked fetches
	conns  int
}

type topicLog struct {
	msgs []seam.Message // msgs[i] has cursor position i+1
	subs map[*subscription]struct{}
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		salt:   fmt.Sprintf("%08x", rand.Uint32()),
		topics: map[seam.Topic]*topicLog{},
		posted: make(chan struct{}),
	}
}

// NewBackend returns a new, not yet connected, connection to the store. A post made
// with an empty identity is attributed to the connection's own name.
func (s *Store) NewBackend() seam.Backend {
	s.mu.Lock()
	s.conns++
	name := seam.Handle(fmt.Sprintf("memory-%d", s.conns))
	s.mu.Unlock()
	return &backend{store: s, name: name, subs: map[*subscription]struct{}{}, done: make(chan struct{})}
}

// key is the topic's tag in its ids and cursors: a cursor replayed on another topic
// (or store) does not match it, so it is reported unknown.
func (s *Store) key(topic seam.Topic) string {
	h := fnv.New64a()
	h.Write([]byte(s.salt + "\x00" + string(topic)))
	return fmt.Sprintf("%016x", h.Sum64())
}

// Cursors read "m-<position>-<topic key>": position p means "after the p-th message",
// so the never-posted topic's cursor is position 0, valid before the topic exists.
func cursorAt(key string, pos int) seam.Cursor {
	return seam.Cursor(fmt.Sprintf("m-%06d-%s", pos, key))
}

// position parses c for the topic with the given key; ok is false for anything
// cursorAt did not produce for that key.
func position(c seam.Cursor, key string) (pos int, ok bool) {
	num, k, found := strings.Cut(strings.TrimPrefix(string(c), "m-"), "-")
	pos, err := strconv.Atoi(num)
	if !found || err != nil || k != key || pos < 0 || cursorAt(key, pos) != c {
		return 0, false
	}
	return pos, true
}

// Say is a participant other than the store's backends (a person, in the
// store's terms) writing to topic as sender: a message with the relation
// fields of m (Content, InReplyTo, Replaces, Retracts, ReactsTo, Reactions,
// Attachments; the rest is ignored), targets named by their BackendMsgID.
// The store honours them as seam.Message's godoc says: a target that is not a
// message of the topic, or a correction or retraction of someone else's
// message, leaves the message plain (its relation fields cleared, its Content
// kept), and it is stored and delivered all the same. A retraction's and a
// reaction's Content is "". It returns the new message's id. Moderated
// retractions are the store's own: sender is then the moderator, and the
// target anyone's.
func (s *Store) Say(topic seam.Topic, sender seam.Handle, m seam.Message) seam.BackendMsgID {
	m.SenderHandle = sender
	return s.add(topic, m)
}

// add stores a message and hands it to the topic's subscriptions. Both happen
// under s.mu, so every subscription sees posts in archive order.
func (s *Store) add(topic seam.Topic, in seam.Message) seam.BackendMsgID {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topicLocked(topic)
	key, pos := s.key(topic), len(t.msgs)+1
	m := seam.Message{
		Topic:        topic,
		SenderHandle: in.SenderHandle,
		Content:      in.Content,
		Timestamp:    time.Now(),
		BackendMsgID: seam.BackendMsgID(fmt.Sprintf("id-%s-%d", key, pos)),
		Cursor:       cursorAt(key, pos),
		Attachments:  slices.Clone(in.Attachments),
	}
	target := func(id seam.BackendMsgID, own bool) bool {
		for _, x := range t.msgs {
			if x.BackendMsgID == id {
				return !own || x.SenderHandle == in.SenderHandle || in.Moderated
			}
		}
		return false
	}
	switch {
	case in.Retracts != "":
		if target(in.Retracts, true) {
			m.Retracts, m.Moderated, m.Content = in.Retracts, in.Moderated, ""
		}
	case in.ReactsTo != "":
		if target(in.ReactsTo, false) {
			m.ReactsTo, m.Reactions, m.Content = in.ReactsTo, slices.Clone(in.Reactions), ""
		}
	default:
		if in.Replaces != "" && target(in.Replaces, true) {
			m.Replaces = in.Replaces
		}
		if in.InReplyTo != "" && target(in.InReplyTo, false) {
			m.InReplyTo = in.InReplyTo
		}
	}
	m.Mentions = seam.ParseMentions(m.Content)
	t.msgs = append(t.msgs, m)
	for sub := range t.subs {
		sub.push(clone(m))
	}
	close(s.posted)
	s.posted = make(chan struct{})
	return m.BackendMsgID
}

func (s *Store) topicLocked(topic seam.Topic) *topicLog {
	t := s.topics[topic]
	if t == nil {
		t = &topicLog{subs: map[*subscription]struct{}{}}
		s.topics[topic] = t
	}
	return t
}

// page answers a fetch without waiting. posted is closed by the next Post: a caller
// that got an empty page waits on it and asks again, and can't miss a post made in
// between because both were read under one lock.
func (s *Store) page(topic seam.Topic, since *seam.Cursor, limit int) (r seam.FetchRecentResult, posted <-chan struct{}, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := s.key(topic)
	var msgs []seam.Message
	if t := s.topics[topic]; t != nil { // a read never creates the topic
		msgs = t.msgs
	}
	from, to := max(0, len(msgs)-limit), len(msgs) // no Since: the newest page
	if since != nil {
		pos, ok := position(*since, key)
		if !ok || pos > len(msgs) {
			return r, nil, fmt.Errorf("memory: %w %q on topic %q", seam.ErrUnknownCursor, *since, topic)
		}
		from, to = pos, min(len(msgs), pos+limit)
	}
	for _, m := range msgs[from:to] {
		r.Messages = append(r.Messages, clone(m))
	}
	r.NextCursor = cursorAt(key, to) // the last returned message, or Since itself
	return r, s.posted, nil
}

func clone(m seam.Message) seam.Message {
	m.Mentions = slices.Clone(m.Mentions)
	m.Reactions = slices.Clone(m.Reactions)
	m.Attachments = slices.Clone(m.Attachments)
	return m
}

// validContent reports why content can't be posted: it is empty, not UTF-8, or holds
// a character XML 1.0 forbids (C0 controls other than tab, LF and CR; U+FFFE;
// U+FFFF). The error wraps seam.ErrInvalidContent.
func validContent(content string) error {
	switch {
	case content == "":
		return fmt.Errorf("memory: %w: empty", seam.ErrInvalidContent)
	case !utf8.ValidString(content): // also catches encoded surrogates
		return fmt.Errorf("memory: %w: not valid UTF-8", seam.ErrInvalidContent)
	}
	for i, r := range content {
		if !isXMLChar(r) {
			return fmt.Errorf("memory: %w: %U at byte %d is not an XML 1.0 character", seam.ErrInvalidContent, r, i)
		}
	}
	return nil
}

// isXMLChar is XML 1.0's Char production.
func isXMLChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' ||
		0x20 <= r && r <= 0xD7FF || 0xE000 <= r && r <= 0xFFFD || 0x10000 <= r && r <= utf8.MaxRune
}

type state int

const (
	idle state = iota
	connected
	disconnected
)

// backend is one connection to a Store.
type backend struct {
	store *Store
	name  seam.Handle

	mu    sync.Mutex
	state state
	subs  map[*subscription]struct{}
	done  chan struct{}  // closed by Disconnect: ends blocked fetches
	wg    sync.WaitGroup // one per live subscription goroutine
}

var _ seam.Backend = (*backend)(nil)

func (b *backend) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == disconnected {
		return fmt.Errorf("memory: connect: %w", seam.ErrDisconnected)
	}
	b.state = connected
	return nil
}

// Disconnect closes every subscription, ends blocked fetches and waits (within ctx)
// for running handlers to return, so no goroutine of the backend outlives it. Don't
// call it from a handler: it would wait for itself until ctx expires.
func (b *backend) Disconnect(ctx context.Context) error {
	b.mu.Lock()
	if b.state == disconnected {
		b.mu.Unlock()
		return nil
	}
	b.state = disconnected
	close(b.done)
	subs := b.subs
	b.subs = nil
	b.mu.Unlock()

	for sub := range subs {
		sub.close()
	}
	idle := make(chan struct{})
	go func() { b.wg.Wait(); close(idle) }()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("memory: disconnect: handlers still running: %w", ctx.Err())
	}
}

// usable is the error for a call in the current state, nil when connected.
func (b *backend) usable() error {
	switch b.state {
	case idle:
		return seam.ErrNotConnected
	case disconnected:
		return seam.ErrDisconnected
	}
	return nil
}

func (b *backend) check(ctx context.Context, topic seam.Topic) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	err := b.usable()
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	if topic == "" {
		return fmt.Errorf("memory: %w: empty", seam.ErrInvalidTopic)
	}
	return nil
}

func (b *backend) Post(ctx context.Context, topic seam.Topic, identity seam.Handle, content string, opts seam.PostOptions) (seam.BackendMsgID, error) {
	// PostOptions.InReplyTo is recorded when it names a message of the topic
	// (seam.Message.InReplyTo), like any reply (Say).
	if err := b.check(ctx, topic); err != nil {
		return "", err
	}
	if err := validContent(content); err != nil {
		return "", err
	}
	if identity == "" {
		identity = b.name
	}
	return b.store.add(topic, seam.Message{SenderHandle: identity, Content: content, InReplyTo: opts.InReplyTo}), nil
}

func (b *backend) FetchRecent(ctx context.Context, args seam.FetchRecentArgs) (seam.FetchRecentResult, error) {
	if err := b.check(ctx, args.Topic); err != nil {
		return seam.FetchRecentResult{}, err
	}
	limit := args.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	var budget <-chan time.Time
	if args.Block > 0 {
		timer := time.NewTimer(args.Block)
		defer timer.Stop()
		budget = timer.C
	}
	for {
		r, posted, err := b.store.page(args.Topic, args.Since, limit)
		if err != nil || len(r.Messages) > 0 || budget == nil {
			return r, err
		}
		select {
		case <-posted: // something was posted somewhere: look again
		case <-budget:
			return r, nil
		case <-ctx.Done():
			return seam.FetchRecentResult{}, ctx.Err()
		case <-b.done:
			return seam.FetchRecentResult{}, fmt.Errorf("memory: fetch: %w", seam.ErrDisconnected)
		}
	}
}

func (b *backend) ResolveIdentity(ctx context.Context, handle seam.Handle) (seam.BackendIdentity, error) {
	if err := ctx.Err(); err != nil {
		return seam.BackendIdentity{}, err
	}
	b.mu.Lock()
	err := b.usable()
	b.mu.Unlock()
	if err != nil {
		return seam.BackendIdentity{}, fmt.Errorf("memory: %w", err)
	}
	if handle == "" {
		return seam.BackendIdentity{}, fmt.Errorf("memory: resolve identity: empty handle: %w", seam.ErrInvalidArgument)
	}
	return seam.BackendIdentity{Handle: handle, BackendRef: "memory:" + string(handle)}, nil
}

func (b *backend) Subscribe(ctx context.Context, topic seam.Topic, h seam.Handler) (seam.Subscription, error) {
	if err := b.check(ctx, topic); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("memory: subscribe: nil handler: %w", seam.ErrInvalidArgument)
	}
	sub := &subscription{b: b, topic: topic, h: h, ready: make(chan struct{}, 1)}
	// Registering under b.mu orders it with Disconnect: either Disconnect sees the
	// subscription and closes it, or Subscribe sees the backend disconnected.
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.usable(); err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	b.store.mu.Lock()
	b.store.topicLocked(topic).subs[sub] = struct{}{}
	b.store.mu.Unlock()
	b.subs[sub] = struct{}{}
	b.wg.Add(1)
	go sub.run()
	return sub, nil
}

// subscription queues its messages without bound, so a slow handler never blocks
// Post, and delivers them one at a time from its own goroutine.
type subscription struct {
	b     *backend
	topic seam.Topic
	h     seam.Handler
	ready chan struct{} // capacity 1: "the queue changed or the subscription closed"

	mu     sync.Mutex
	queue  []seam.Message
	closed bool
}

func (s *subscription) push(m seam.Message) {
	s.mu.Lock()
	if !s.closed {
		s.queue = append(s.queue, m)
	}
	s.mu.Unlock()
	s.wake()
}

func (s *subscription) wake() {
	select {
	case s.ready <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func (s *subscription) run() {
	defer s.b.wg.Done()
	for range s.ready {
		for {
			// closed is checked under the same lock as the queue, right before each
			// call: once Close has returned, no new handler call starts.
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				return
			}
			if len(s.queue) == 0 {
				s.mu.Unlock()
				break
			}
			m := s.queue[0]
			s.queue = s.queue[1:]
			s.mu.Unlock()
			s.h(m)
		}
	}
}

// Close stops delivery. It does not wait for a running handler, so a handler may
// close its own subscription.
func (s *subscription) Close() error {
	s.close()
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	return nil
}

func (s *subscription) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.queue = true, nil
	s.mu.Unlock()
	s.wake()
	s.b.store.mu.Lock()
	delete(s.b.store.topics[s.topic].subs, s)
	s.b.store.mu.Unlock()
}

// Package seam is the Parley bridge's backend contract: the types and the Backend
// interface that every backend implements, and the sentinel errors callers test with
// errors.Is. The clauses a backend must honour are tested by package
// seam/conformance.
package seam

import (
	"context"
	"time"
)

type (
	// Topic names a stream of messages.
	Topic string
	// Handle names a participant on the Parley side.
	Handle string
	// BackendMsgID identifies one message in its topic: the dedup key.
	BackendMsgID string
	// Cursor is the order key. It is opaque: callers never compare cursors, they
	// replay them as FetchRecentArgs.Since.
	Cursor string
)

// Message is one message of a topic, as read back from the backend.
//
// OriginID is the sender's own id for the message, as the sender chose it (on
// XMPP its XEP-0359 origin-id), "" when it gave none or the backend has no
// such notion (seam/memory). It is the sender's word, not the backend's: any
// sender can put any text there, so it identifies nothing by itself (a
// holder of a secret can recognise ids it derived, as serve's relays do).
// A backend fills it the same on every path (Subscribe and FetchRecent).
type Message struct {
	Topic        Topic
	SenderHandle Handle
	Content      string
	Timestamp    time.Time // the backend's, the same on every path; informational only
	BackendMsgID BackendMsgID
	Cursor       Cursor
	Mentions     []Handle // ParseMentions(Content)
	OriginID     string   // the sender's id for the message; "" when none
}

// BackendIdentity is what ResolveIdentity answers for a handle.
type BackendIdentity struct {
	Handle     Handle
	BackendRef string
}

// PostOptions are the optional parts of a post.
type PostOptions struct{ InReplyTo BackendMsgID }

// FetchRecentArgs selects a page of a topic.
type FetchRecentArgs struct {
	Topic Topic
	Since *Cursor       // nil: the newest page; non-nil: strictly after *Since
	Limit int           // <= 0: the backend's default (at least 50)
	Block time.Duration // long-poll budget when nothing is newer than Since; 0: no wait
}

// FetchRecentResult is a page of a topic.
type FetchRecentResult struct {
	Messages   []Message // ascending
	NextCursor Cursor    // replay verbatim as the next Since
}

// Handler receives the messages of a subscription, one at a time, in order.
type Handler func(Message)

// Subscription is a live subscription; Close stops delivery.
type Subscription interface{ Close() error }

// Backend is the seam between the Parley bridge and a message backend.
type Backend interface {
	Connect(ctx context.Context) error
	Disconnect(ctx context.Context) error
	Subscribe(ctx context.Context, topic Topic, h Handler) (Subscription, error)
	Post(ctx context.Context, topic Topic, identity Handle, content string, opts PostOptions) (BackendMsgID, error)
	FetchRecent(ctx context.Context, args FetchRecentArgs) (FetchRecentResult, error)
	ResolveIdentity(ctx context.Context, handle Handle) (BackendIdentity, error)
}

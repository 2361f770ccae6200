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
//
// # Relations
//
// A message can say something about an earlier message of its topic: the
// relation fields below, each empty for a plain message (so a caller that
// reads none of them sees what it saw before they existed, except that
// reactions and retractions, which have no text of their own, now arrive as
// messages with an empty Content). The shape is fields on Message, not a kind:
// a reply can also be a correction, and any message can carry attachments.
// Every target is a BackendMsgID of the same topic, the same on every path.
//
//   - InReplyTo: the message this one answers (XEP-0461 on XMPP). Content is
//     the reply's own text: the quote a sender adds for clients without
//     replies (XEP-0428 fallback) is not part of it.
//   - Replaces: this message corrects Replaces (XEP-0308); Content is the
//     whole new text. Only the target's sender can correct it.
//   - Retracts: the target is withdrawn (XEP-0424) by its sender, or, with
//     Moderated, by the room's moderators (XEP-0425; the sender is then the
//     room). Content is "". The original stays in FetchRecent as it was
//     archived, at its place; the retraction follows it, at its own place, on
//     both paths: a caller hides the target when it sees the retraction.
//   - ReactsTo and Reactions: the full set of reactions (emoji) the sender now
//     holds on ReactsTo (XEP-0444); none: it withdrew them all. Content is "".
//   - Attachments: files shared as links (XEP-0066, XEP-0447). Content stays
//     as sent (often the URL itself, for clients that show no attachment).
//
// A relation whose target the backend can't find, or which comes from
// someone other than the target's sender (a correction, a retraction), is
// not honoured: the message is delivered as a plain one, with its whole
// text, and never dropped. Backends without a relation leave these empty.
type Message struct {
	Topic        Topic
	SenderHandle Handle
	Content      string
	Timestamp    time.Time // the backend's, the same on every path; informational only
	BackendMsgID BackendMsgID
	Cursor       Cursor
	Mentions     []Handle // ParseMentions(Content)
	OriginID     string   // the sender's id for the message; "" when none

	InReplyTo   BackendMsgID // the message this one answers
	Replaces    BackendMsgID // the sender's message this one corrects
	Retracts    BackendMsgID // the message this one withdraws
	Moderated   bool         // Retracts by a moderator, not the sender
	ReactsTo    BackendMsgID // the message Reactions are on
	Reactions   []string     // the sender's full set on ReactsTo
	Attachments []Attachment // files shared as links
}

// Attachment is a file a message shares as a link.
type Attachment struct {
	URL       string
	Name      string // "" when the sender gave none
	MediaType string // "" when the sender gave none
	Size      int64  // 0 when unknown
	Desc      string
}

// IsRelation reports whether m is about another message (a correction, a
// retraction or reactions) rather than a new message of its own.
func (m Message) IsRelation() bool { return m.Replaces != "" || m.Retracts != "" || m.ReactsTo != "" }

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

// After is the cursor a reader that was at cur stands at once it has handled
// the whole page: NextCursor, which also steps past rows the archive skipped
// after the last message (so the next read doesn't return them again), or cur
// when the page names none. Within a page, a reader that stops after a
// message stands at that message's Cursor. serve and the tail command keep
// their cursors by this one rule (the runtime's archive decides NextCursor
// itself, in one place).
func (r FetchRecentResult) After(cur Cursor) Cursor {
	if r.NextCursor != "" {
		return r.NextCursor
	}
	return cur
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

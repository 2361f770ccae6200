package conformance

import (
	"context"
	"testing"

	"github.com/parley-go/parley-xmpp/seam"
)

// AbsentTopic says how a backend answers FetchRecent on a never-posted topic
// (clause 7).
type AbsentTopic int

const (
	// AbsentTopicEmptyPage: an empty page whose NextCursor, replayed, returns the
	// same empty page, and later the topic's first posts.
	AbsentTopicEmptyPage AbsentTopic = iota
	// AbsentTopicError: a *seam.NoSuchTopicError naming the topic.
	AbsentTopicError
)

// Capabilities declare what a backend does, so the suite holds it to the right
// variant of a clause.
type Capabilities struct {
	// BlockingFetch: FetchRecent honours Block as a native long-poll (clauses
	// 18-21); without it the budget is ignored (clause 22).
	BlockingFetch bool
	// CarriesSenderIdentity: the backend records Post's identity as the sender.
	// XMPP does not: the sender is the occupant nick (clause 12).
	CarriesSenderIdentity bool
	// AbsentTopic: clause 7's behaviour.
	AbsentTopic AbsentTopic
}

// Fixture is what a backend hands the suite.
type Fixture struct {
	// Backend is connected. The suite never disconnects it.
	Backend seam.Backend
	// FreshTopic returns a topic name never used before.
	FreshTopic func() seam.Topic
	// NewBackend returns another backend on the same store or server, independent
	// of Backend (its own connection), connected. The suite disconnects it. Used by
	// clause 17 and as the writers of clauses 15 and 23 when the hooks below are nil.
	NewBackend func(t testing.TB) seam.Backend
	// ConcurrentPost posts from len(contents) independent connections at once:
	// writer i posts contents[i], in order. It returns when every post is
	// acknowledged. Nil when the backend can't (clauses 23-24 then use NewBackend
	// writers).
	ConcurrentPost func(ctx context.Context, topic seam.Topic, contents [][]string) error
	// IndependentPost writes content to topic through a client independent of the
	// backend (another connection, ideally another library). Nil: a NewBackend
	// connection writes instead (clause 15).
	IndependentPost func(ctx context.Context, topic seam.Topic, content string) error
	// Say has person ("alice" or "bob": two participants other than Backend,
	// each always the same one) write a message to topic with the relation
	// fields of m set (Content, InReplyTo, Replaces, Retracts, ReactsTo,
	// Reactions, Attachments), targets named by their BackendMsgID, and
	// returns the new message's id once FetchRecent can read it. Nil: the
	// relation clauses (31-36) are not applicable (a backend without
	// relations).
	Say func(ctx context.Context, topic seam.Topic, person string, m seam.Message) (seam.BackendMsgID, error)
	// Cleanup runs when the suite ends; may be nil.
	Cleanup func()
	// Capabilities of the backend.
	Capabilities Capabilities
	// XMPP holds the hooks of the XMPP clauses (25, 26, 27, 29); nil for other backends,
	// whose run then reports those clauses as not applicable.
	XMPP *XMPPFixture
}

// XMPPFixture holds what the XMPP-specific clauses need.
type XMPPFixture struct {
	// NewConnection returns a new, not yet connected backend on the same server
	// and account as Fixture.Backend, with nick pinned to nick ("" = the
	// backend's per-connection default). The suite connects and disconnects it.
	NewConnection func(t testing.TB, nick string) seam.Backend
	// NewAccountConnection is NewConnection on another account of the same server.
	NewAccountConnection func(t testing.TB, nick string) seam.Backend
	// NoArchiveBackend returns a connected backend whose topics live on a MUC
	// service without MAM (clause 27).
	NoArchiveBackend func(t testing.TB) seam.Backend
	// PostForged sends content to topic's room from an independent client, with
	// extra <stanza-id/> elements claiming the given ids: one with by= the room's
	// own JID and one by another entity (clause 29). The server must strip or
	// ignore them; the backend must report only the room's own id.
	PostForged func(ctx context.Context, topic seam.Topic, content string, forgedIDs []string) error
}

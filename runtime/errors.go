package runtime

import (
	"errors"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/room"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/internal/xmppconn"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/supervision"
)

// The errors a Runtime's caller (or OnStateChange, OnRoomEvent) can receive,
// besides seam's (seam.ErrNotConnected, seam.ErrDisconnected,
// seam.ErrInvalidContent, seam.ErrContentTooLarge, seam.ErrPoisonMessage,
// seam.ErrInvalidTopic, seam.ErrNoArchive, seam.ErrUnknownCursor,
// seam.ErrNickConflict, seam.ErrPostInDoubt) and the context's. Each is the very
// value the runtime's insides wrap, so errors.Is matches either name. An error
// from the runtime wraps one of these, one of seam's, or ctx.Err().
var (
	// ErrConfig: New refused the Config; the message names the field.
	ErrConfig = errors.New("parley-xmpp: bad config")
	// ErrInvalidArgument: a call's argument can't be used (a nil handler, an
	// empty handle, a PostOnce key or an OriginKey secret out of bounds). It is
	// seam.ErrInvalidArgument.
	ErrInvalidArgument = seam.ErrInvalidArgument

	// Posts.

	// ErrPostTimeout: no reflection within Config.PostTimeout. The post is in
	// doubt (it also wraps ErrPostInDoubt).
	ErrPostTimeout = room.ErrPostTimeout
	// ErrPostRefused: the room answered the post with an error (not a
	// moderator in a moderated room, say): only an error from the room's bare
	// JID carrying the post's id counts, never one from an occupant.
	ErrPostRefused = room.ErrPostRefused
	// ErrNoStanzaID: the room reflected the post without its stanza-id (a room
	// without XEP-0359 support), so it has no id to return.
	ErrNoStanzaID = room.ErrNoStanzaID
	// ErrPostFenced: the fence of WithPostFence refused the post before it was
	// written; it was not sent.
	ErrPostFenced = room.ErrFenced

	// Rooms.

	// ErrJoin: the room refused the join.
	ErrJoin = room.ErrJoin
	// ErrJoinTimeout: the join did not complete within Config.JoinTimeout.
	ErrJoinTimeout = room.ErrJoinTimeout
	// ErrLeft: the runtime is no longer in the room (removed, or it was
	// destroyed); it rejoins with backoff (RoomRemoved).
	ErrLeft = room.ErrLeft
	// ErrBanned: the room banned this connection (RoomBanned).
	ErrBanned = room.ErrBanned
	// ErrRoomFailed: the room's actor failed too often and was stopped
	// (RoomFailed).
	ErrRoomFailed = room.ErrFailed
	// ErrArchiveGap: a lagging subscriber skipped messages the room fanned out
	// because the archive never supplied them within Config.ArchiveWait
	// (RoomHistoryGap's Err; RoomEvent.Skipped names them).
	ErrArchiveGap = room.ErrArchiveGap
	// ErrUnknownTarget: Edit, Retract or React named a message the topic's
	// room has not seen (live, or in a FetchRecent of this runtime): read it
	// first, or it is too old for the room's record (Config.DedupWindow).
	ErrUnknownTarget = room.ErrUnknownTarget
	// ErrNotOwnMessage: Edit or Retract named a message this account did not
	// send.
	ErrNotOwnMessage = room.ErrNotOwnMessage
	// ErrRoomNotOwned: the topic's room existed before the runtime joined it,
	// and another account owns it (RoomNotOwned's Err).
	ErrRoomNotOwned = room.ErrNotOwned
	// ErrActorFailed: the actor serving the request failed; the request is
	// answered with this rather than retried.
	ErrActorFailed = supervision.ErrActorFailed
	// ErrArchiveStalled: the archive answered a page that does not advance;
	// reading stopped rather than loop.
	ErrArchiveStalled = archive.ErrStalled
	// ErrArchiveRunaway: a read of the archive went past its bounds (1000
	// MAM pages beyond those its limit needs; 3 empty pages in a row that
	// each claim more; 10000 rows that aren't messages); reading stopped
	// rather than page for as long as the server keeps answering.
	ErrArchiveRunaway = archive.ErrRunaway

	// The connection.

	// ErrLinkLost: the connection was lost while a request was in flight.
	ErrLinkLost = session.ErrLinkLost
	// ErrIQTimeout: the server did not answer a request within
	// Config.RequestTimeout.
	ErrIQTimeout = session.ErrIQTimeout
	// ErrKeepAlive: a keepalive ping went unanswered; the link was taken for
	// dead (StateChange.Err).
	ErrKeepAlive = session.ErrKeepAlive
	// ErrGaveUp: reconnecting stopped after Config.MaxReconnects attempts
	// (StateChange.Err, and the calls that waited for the link).
	ErrGaveUp = session.ErrGaveUp
	// ErrTLS: the TLS handshake failed (a certificate that doesn't name the
	// domain, an unknown CA).
	ErrTLS = xmppconn.ErrTLS
	// ErrTLSRequired: TLS is required and the server offers no STARTTLS.
	ErrTLSRequired = xmppconn.ErrTLSRequired
	// ErrInboundTooLarge is the reason (StateChange.Err) for a link the runtime
	// closed because the server sent a stanza over MaxInboundStanzaBytes; it
	// reconnects with backoff.
	ErrInboundTooLarge = xmppconn.ErrInboundTooLarge
	// ErrNegotiationTooLarge: the server sent more than 64 KiB before TLS (its
	// stream header and features, which a real server keeps to a few hundred
	// bytes); the connect attempt failed and nothing about the account was
	// sent.
	ErrNegotiationTooLarge = xmppconn.ErrNegotiationTooLarge
	// ErrReaderPanicked is the reason (StateChange.Err) for a link ended
	// because reading a stanza panicked (a bug, worth reporting): the
	// runtime reconnects, and the process goes on.
	ErrReaderPanicked = xmppconn.ErrReaderPanicked
	// ErrSendQueueFull: the link's send queue is full; nothing was sent and the
	// link is fine: retry later.
	ErrSendQueueFull = xmppconn.ErrSendQueueFull
	// ErrStanzaTooLarge: a stanza over the server's advertised limit; nothing
	// was sent and the link is fine.
	ErrStanzaTooLarge = xmppconn.ErrStanzaTooLarge
	// ErrConnClosed: the connection was closed under a write.
	ErrConnClosed = xmppconn.ErrClosed
)

// Errors a Post's caller gets when its ctx ends first, joined with ctx.Err():
// they say whether the message may still land.
var (
	// ErrPostNotSent: the message was never sent and never will be.
	ErrPostNotSent = errors.New("parley-xmpp: the message was not sent")
	// ErrPostInDoubt: the message was sent; it may have landed or still land. It
	// is not sent again. It is seam.ErrPostInDoubt, which every in-doubt outcome
	// of Post and PostOnce wraps: a ctx that ended, no reflection within
	// PostTimeout, Disconnect, giving up reconnecting, a ban, a room that failed.
	ErrPostInDoubt = seam.ErrPostInDoubt
)

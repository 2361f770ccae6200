package runtime

import (
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/seam"
)

// The errors a Runtime's caller (or OnStateChange, OnRoomEvent) can receive,
// besides seam's (seam.ErrNotConnected, seam.ErrDisconnected,
// seam.ErrInvalidContent, seam.ErrContentTooLarge, seam.ErrPoisonMessage,
// seam.ErrInvalidTopic, seam.ErrNoArchive, seam.ErrUnknownCursor,
// seam.ErrNickConflict, seam.ErrPostInDoubt) and the context's. Each is
// declared once, in the runtime's vocabulary (internal/vocab), and is the very
// value the runtime's insides wrap. An error
// from the runtime wraps one of these, one of seam's, or ctx.Err().
var (
	// ErrConfig: New refused the Config; the message names the field.
	ErrConfig = vocab.ErrConfig
	// ErrInvalidArgument: a call's argument can't be used (a nil handler, an
	// empty handle, a PostOnce key or an OriginKey secret out of bounds). It is
	// seam.ErrInvalidArgument.
	ErrInvalidArgument = seam.ErrInvalidArgument

	// Posts.

	// ErrPostTimeout: no reflection within Config.PostTimeout. The post is in
	// doubt (it also wraps ErrPostInDoubt).
	ErrPostTimeout = vocab.ErrPostTimeout
	// ErrPostRefused: the room answered the post with an error (not a
	// moderator in a moderated room, say): only an error from the room's bare
	// JID carrying the post's id counts, never one from an occupant.
	ErrPostRefused = vocab.ErrPostRefused
	// ErrNoStanzaID: the room reflected the post without its stanza-id (a room
	// without XEP-0359 support), so it has no id to return.
	ErrNoStanzaID = vocab.ErrNoStanzaID
	// ErrPostFenced: the fence of WithPostFence refused the post before it was
	// written; it was not sent.
	ErrPostFenced = vocab.ErrPostFenced

	// Rooms.

	// ErrJoin: the room refused the join.
	ErrJoin = vocab.ErrJoin
	// ErrJoinTimeout: the join did not complete within Config.JoinTimeout.
	ErrJoinTimeout = vocab.ErrJoinTimeout
	// ErrLeft: the runtime is no longer in the room (removed, or it was
	// destroyed); it rejoins with backoff (RoomRemoved).
	ErrLeft = vocab.ErrLeft
	// ErrBanned: the room banned this connection (RoomBanned).
	ErrBanned = vocab.ErrBanned
	// ErrRoomFailed: the room's actor failed too often and was stopped
	// (RoomFailed).
	ErrRoomFailed = vocab.ErrRoomFailed
	// ErrArchiveGap: a lagging subscriber skipped messages the room fanned out
	// because the archive never supplied them within Config.ArchiveWait
	// (RoomHistoryGap's Err; RoomEvent.Skipped names them).
	ErrArchiveGap = vocab.ErrArchiveGap
	// ErrUnknownTarget: Edit, Retract or React named a message the topic's
	// room has not seen (live, or in a FetchRecent of this runtime): read it
	// first, or it is too old for the room's record (Config.DedupWindow).
	ErrUnknownTarget = vocab.ErrUnknownTarget
	// ErrNotOwnMessage: Edit or Retract named a message this account did not
	// send.
	ErrNotOwnMessage = vocab.ErrNotOwnMessage
	// ErrRoomNotOwned: the topic's room existed before the runtime joined it,
	// and another account owns it (RoomNotOwned's Err).
	ErrRoomNotOwned = vocab.ErrRoomNotOwned
	// ErrActorFailed: the actor serving the request failed; the request is
	// answered with this rather than retried.
	ErrActorFailed = vocab.ErrActorFailed
	// ErrArchiveStalled: the archive answered a page that does not advance;
	// reading stopped rather than loop.
	ErrArchiveStalled = vocab.ErrArchiveStalled
	// ErrArchiveRunaway: a read of the archive went past its bounds (1000
	// MAM pages beyond those its limit needs; 3 empty pages in a row that
	// each claim more; 10000 rows that aren't messages); reading stopped
	// rather than page for as long as the server keeps answering.
	ErrArchiveRunaway = vocab.ErrArchiveRunaway
	// ErrArchiveRefused: the server answered a request about the room's
	// archive (its disco#info, a MAM query) with an error other than "no
	// archive here" (seam.ErrNoArchive).
	ErrArchiveRefused = vocab.ErrArchiveRefused
	// ErrArchiveGarbled: the server's archive answer can't be used: a row
	// without an id, an id that can't be a cursor.
	ErrArchiveGarbled = vocab.ErrArchiveGarbled
	// ErrHandlerPanicked: a subscription's handler panicked
	// (RoomSubscriberPanicked's Err); the subscription continues.
	ErrHandlerPanicked = vocab.ErrHandlerPanicked

	// The connection.

	// ErrLinkLost: the connection was lost while a request was in flight.
	ErrLinkLost = vocab.ErrLinkLost
	// ErrIQTimeout: the server did not answer a request within
	// Config.RequestTimeout.
	ErrIQTimeout = vocab.ErrIQTimeout
	// ErrKeepAlive: a keepalive ping went unanswered; the link was taken for
	// dead (StateChange.Err).
	ErrKeepAlive = vocab.ErrKeepAlive
	// ErrGaveUp: reconnecting stopped after Config.MaxReconnects attempts
	// (StateChange.Err, and the calls that waited for the link).
	ErrGaveUp = vocab.ErrGaveUp
	// ErrTLS: the TLS handshake failed (a certificate that doesn't name the
	// domain, an unknown CA).
	ErrTLS = vocab.ErrTLS
	// ErrTLSRequired: TLS is required and the server offers no STARTTLS.
	ErrTLSRequired = vocab.ErrTLSRequired
	// ErrInboundTooLarge is the reason (StateChange.Err) for a link the runtime
	// closed because the server sent a stanza over MaxInboundStanzaBytes; it
	// reconnects with backoff.
	ErrInboundTooLarge = vocab.ErrInboundTooLarge
	// ErrNegotiationTooLarge: the server sent more than 64 KiB before TLS (its
	// stream header and features, which a real server keeps to a few hundred
	// bytes); the connect attempt failed and nothing about the account was
	// sent.
	ErrNegotiationTooLarge = vocab.ErrNegotiationTooLarge
	// ErrReaderPanicked is the reason (StateChange.Err) for a link ended
	// because reading a stanza panicked (a bug, worth reporting): the
	// runtime reconnects, and the process goes on.
	ErrReaderPanicked = vocab.ErrReaderPanicked
	// ErrSendQueueFull: the link's send queue is full; nothing was sent and the
	// link is fine: retry later.
	ErrSendQueueFull = vocab.ErrSendQueueFull
	// ErrStanzaTooLarge: a stanza over the server's advertised limit; nothing
	// was sent and the link is fine.
	ErrStanzaTooLarge = vocab.ErrStanzaTooLarge
	// ErrConnClosed: the connection was closed under a write.
	ErrConnClosed = vocab.ErrConnClosed
)

// Errors a Post's caller gets when its ctx ends first, joined with ctx.Err():
// they say whether the message may still land.
var (
	// ErrPostNotSent: the message was never sent and never will be.
	ErrPostNotSent = vocab.ErrPostNotSent
	// ErrPostInDoubt: the message was sent; it may have landed or still land. It
	// is not sent again. It is seam.ErrPostInDoubt, which every in-doubt outcome
	// of Post and PostOnce wraps: a ctx that ended, no reflection within
	// PostTimeout, Disconnect, giving up reconnecting, a ban, a room that failed.
	ErrPostInDoubt = seam.ErrPostInDoubt
)

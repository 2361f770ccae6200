package vocab

import "errors"

// The sentinel errors, each declared once: the actors wrap these very values,
// and package runtime exports them under the same names (runtime/errors.go
// says what each means to a caller). Sentinels no caller of the runtime sees
// (session.ErrDuplicateIQ, archive.ErrAbandoned) stay with their actor.
var (
	// The runtime's own.
	ErrConfig      = errors.New("parley-xmpp: bad config")
	ErrPostNotSent = errors.New("parley-xmpp: the message was not sent")

	// A room's.
	ErrJoin          = errors.New("room: join refused")
	ErrJoinTimeout   = errors.New("room: join timed out")
	ErrPostTimeout   = errors.New("room: no reflection in time (the message may still have landed)")
	ErrPostFenced    = errors.New("room: the post's fence refused it; it was not sent")
	ErrPostRefused   = errors.New("room: post refused")
	ErrNoStanzaID    = errors.New("room: reflection without the room's stanza-id")
	ErrLeft          = errors.New("room: no longer in the room")
	ErrBanned        = errors.New("room: banned from the room")
	ErrRoomFailed    = errors.New("room: the room's actor failed and was stopped")
	ErrArchiveGap    = errors.New("room: the archive never supplied messages the room fanned out; a lagging subscriber skipped them")
	ErrUnknownTarget = errors.New("room: the message named is not one the room has seen")
	ErrNotOwnMessage = errors.New("room: the message named is not this account's")
	ErrRoomNotOwned  = errors.New("room: the topic's room is owned by another account")

	// An archive read's.
	ErrArchiveStalled = errors.New("archive: page did not advance")
	ErrArchiveRunaway = errors.New("archive: paging did not end")
	ErrArchiveRefused = errors.New("archive: the server refused the request")
	ErrArchiveGarbled = errors.New("archive: the server's answer can't be used")

	// A subscriber's handler's.
	ErrHandlerPanicked = errors.New("parley-xmpp: the handler panicked")

	// Supervision's.
	ErrActorFailed = errors.New("supervision: the actor handling this request failed")

	// The session's.
	ErrLinkLost  = errors.New("session: connection lost")
	ErrIQTimeout = errors.New("session: no answer in time")
	ErrKeepAlive = errors.New("session: keepalive ping unanswered")
	ErrGaveUp    = errors.New("session: gave up reconnecting")

	// The connection's (internal/xmppconn).
	ErrConnClosed          = errors.New("xmppconn: connection closed")
	ErrSendQueueFull       = errors.New("xmppconn: send queue full")
	ErrStanzaTooLarge      = errors.New("xmppconn: stanza too large")
	ErrReaderPanicked      = errors.New("xmppconn: reading a stanza panicked")
	ErrInboundTooLarge     = errors.New("xmppconn: the server sent a stanza over the inbound limit")
	ErrTLSRequired         = errors.New("xmppconn: the server offers no STARTTLS and TLS is required")
	ErrTLS                 = errors.New("xmppconn: TLS handshake failed")
	ErrNegotiationTooLarge = errors.New("xmppconn: the server's stream header and features are over 64 KiB")
)

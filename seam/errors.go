package seam

import (
	"errors"
	"fmt"
)

// Sentinel errors. Backends wrap them with detail; callers test with errors.Is.
var (
	// ErrNotConnected: the call needs a connected backend and Connect has not
	// succeeded (yet).
	ErrNotConnected = errors.New("seam: not connected")
	// ErrDisconnected: Disconnect was called; the backend accepts no more calls.
	ErrDisconnected = errors.New("seam: disconnected")
	// ErrInvalidContent: the content can't be carried by the backend (for XMPP:
	// characters XML 1.0 forbids, empty, or too large). Nothing was sent.
	ErrInvalidContent = errors.New("seam: invalid content")
	// ErrContentTooLarge: the message, as it would be sent, is over the link's
	// stanza limit (for XMPP: Config.MaxStanzaBytes, or the server's advertised
	// XEP-0478 limit when lower; escaping can make a stanza several times larger
	// than its content). Nothing was sent. It comes with ErrInvalidContent.
	ErrContentTooLarge = errors.New("seam: content too large once encoded")
	// ErrPoisonMessage: the server ended the stream twice while this message was
	// the first one it had to read, and the message is not in the archive: it is
	// taken as the cause and not sent again. Nothing of it landed.
	ErrPoisonMessage = errors.New("seam: the server dropped the link on this message twice")
	// ErrInvalidTopic: the topic is empty or can't be mapped to the backend.
	ErrInvalidTopic = errors.New("seam: invalid topic")
	// ErrNoArchive: the topic's backend has no message archive, so catch-up and
	// cursors can't work. For XMPP: the MUC service lacks MAM (XEP-0313).
	ErrNoArchive = errors.New("seam: no message archive")
	// ErrUnknownCursor: Since names a cursor the backend doesn't know (never
	// issued, or expired from the archive). Nothing was returned in its place.
	ErrUnknownCursor = errors.New("seam: unknown cursor")
	// ErrNickConflict: the backend's pinned nickname is already in use by another
	// live connection.
	ErrNickConflict = errors.New("seam: nickname conflict")
	// ErrPostInDoubt: a post was sent and its outcome is unknown: it may have
	// landed, or may still land, and it is not sent again. A caller that must
	// not post twice checks the topic (FetchRecent) before posting again, or
	// posts with a backend's idempotent call (runtime.PostOnce).
	ErrPostInDoubt = errors.New("seam: the message was sent and may still land")
	// ErrInvalidArgument: an argument the call can't use (a nil handler, an
	// empty handle, ...). Nothing was done.
	ErrInvalidArgument = errors.New("seam: invalid argument")
)

// NoSuchTopicError is the answer of a backend that reports a never-posted topic as
// an error rather than an empty page.
type NoSuchTopicError struct{ Topic Topic }

func (e *NoSuchTopicError) Error() string {
	return fmt.Sprintf("seam: no such topic %q", string(e.Topic))
}

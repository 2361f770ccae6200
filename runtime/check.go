package runtime

import (
	"crypto/rand"
	"fmt"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/seam"
)

// CheckPost reports, without touching the network, why Post would refuse topic
// and content (seam.ErrInvalidTopic, seam.ErrInvalidContent, or
// seam.ErrContentTooLarge for a stanza over MaxStanzaBytes), or nil. A runtime
// needn't be connected: a command checks its input before it connects.
func (rt *Runtime) CheckPost(topic seam.Topic, content string) error {
	if _, err := RoomLocalpart(topic); err != nil {
		return err
	}
	if err := rt.checkContent(content); err != nil {
		return err
	}
	return rt.checkStanzaSize(topic, rand.Text(), content, "") // Post's origin-ids are rand.Text()
}

// CheckPostOnce reports, without touching the network, why PostOnce would
// refuse key and content for topic (as CheckPost does for Post: the stanza is
// measured with key as its origin-id), or nil. A relay that splits or
// truncates content asks it what fits.
func (rt *Runtime) CheckPostOnce(topic seam.Topic, key, content string) error {
	if _, err := RoomLocalpart(topic); err != nil {
		return err
	}
	if key == "" || len(key) > 128 {
		return fmt.Errorf("parley-xmpp: post once: the key must hold 1 to 128 bytes: %w", ErrInvalidArgument)
	}
	if err := rt.checkContent(content); err != nil {
		return err
	}
	return rt.checkStanzaSize(topic, key, content, "")
}

// checkContent: why Post and PostOnce refuse content before anything is sent.
func (rt *Runtime) checkContent(content string) error {
	switch {
	case content == "":
		return fmt.Errorf("%w: empty content (XMPP has no empty message)", seam.ErrInvalidContent)
	case len(content) > rt.cfg.MaxContentBytes:
		return fmt.Errorf("%w: %d bytes is over the %d-byte limit (Config.MaxContentBytes)", seam.ErrInvalidContent, len(content), rt.cfg.MaxContentBytes)
	}
	if err := stanza.CheckText(content); err != nil {
		return fmt.Errorf("%w: %v", seam.ErrInvalidContent, err)
	}
	return nil
}

// MaxContentBytes is the most content Post takes (Config.MaxContentBytes,
// or its default).
func (rt *Runtime) MaxContentBytes() int { return rt.cfg.MaxContentBytes }

// CheckFetch reports, without touching the network, what is wrong with args
// beyond what FetchRecent forgives: an invalid topic (seam.ErrInvalidTopic), a
// negative Limit or one over MaxFetchLimit (which FetchRecent would take as
// the default or clamp), a negative Block, or a Since that can't be a cursor
// (XML can't carry it, it holds white space, or it is longer than any
// stanza-id). It returns nil when args are fine.
func (rt *Runtime) CheckFetch(args seam.FetchRecentArgs) error {
	if _, err := RoomLocalpart(args.Topic); err != nil {
		return err
	}
	switch {
	case args.Limit < 0:
		return fmt.Errorf("%w: limit %d is negative", ErrInvalidArgument, args.Limit)
	case args.Limit > rt.cfg.MaxFetchLimit:
		return fmt.Errorf("%w: limit %d is over the cap of %d (MaxFetchLimit)", ErrInvalidArgument, args.Limit, rt.cfg.MaxFetchLimit)
	case args.Block < 0:
		return fmt.Errorf("%w: block %s is negative", ErrInvalidArgument, args.Block)
	}
	if args.Since != nil {
		return CheckCursor(*args.Since)
	}
	return nil
}

// CheckCursor reports why c can't be a cursor this runtime issued, or nil. ""
// (the start of a topic) is a cursor; any other is a message id.
func CheckCursor(c seam.Cursor) error {
	if c == "" {
		return nil
	}
	if err := stanza.CheckID(string(c)); err != nil {
		return fmt.Errorf("%w: not a cursor: %v", ErrInvalidArgument, err)
	}
	return nil
}

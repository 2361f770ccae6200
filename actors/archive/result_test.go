package archive

import (
	"errors"
	"testing"

	"github.com/parley-go/parley-xmpp/seam"
)

// NextCursor is decided here, for archive reads and for long-polls that live
// messages completed: after the last message, else where the archive read
// ended, else where the read started.
func TestNextCursorIsDecidedHere(t *testing.T) {
	since := seam.Cursor("s")
	msgs := []seam.Message{{Cursor: "a"}, {Cursor: "b"}}
	for name, c := range map[string]struct {
		res  *Result
		want seam.Cursor
	}{
		"live messages":              {LiveResult(&since, "n", msgs), "b"},
		"nothing, the archive ended": {LiveResult(&since, "n", nil), "n"},
		"nothing at all":             {LiveResult(&since, "", nil), "s"},
		"newest, nothing":            {LiveResult(nil, "", nil), ""},
		"an archive page":            {&Result{Entries: []Entry{{Message: msgs[0]}}, NextCursor: "z"}, "z"},
	} {
		page, err := c.res.Page()
		if err != nil || page.NextCursor != c.want {
			t.Errorf("%s: NextCursor %q (%v), want %q", name, page.NextCursor, err, c.want)
		}
		if len(page.Messages) != len(c.res.Entries) {
			t.Errorf("%s: %d messages of %d", name, len(page.Messages), len(c.res.Entries))
		}
	}
	boom := errors.New("boom")
	if _, err := (&Result{Err: boom, NextCursor: "x"}).Page(); !errors.Is(err, boom) {
		t.Errorf("an error read as %v", err)
	}
}

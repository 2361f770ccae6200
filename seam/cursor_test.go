package seam_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/parley-go/parley-xmpp/seam"
)

func TestAfterAPage(t *testing.T) {
	for name, c := range map[string]struct {
		page seam.FetchRecentResult
		cur  seam.Cursor
		want seam.Cursor
	}{
		"past the last message": {seam.FetchRecentResult{Messages: []seam.Message{{Cursor: "a"}, {Cursor: "b"}}, NextCursor: "b"}, "", "b"},
		"past skipped rows":     {seam.FetchRecentResult{Messages: []seam.Message{{Cursor: "a"}}, NextCursor: "c"}, "", "c"},
		"an empty page moves":   {seam.FetchRecentResult{NextCursor: "c"}, "b", "c"},
		"no cursor: stays":      {seam.FetchRecentResult{}, "b", "b"},
	} {
		assert.Equal(t, c.want, c.page.After(c.cur), name)
	}
}

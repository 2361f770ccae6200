package seam_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/parley-go/parley-xmpp/seam"
)

// The cases follow ParseMentions' doc comment, rule by rule.
func TestParseMentions(t *testing.T) {
	for _, c := range []struct {
		name    string
		content string
		want    []seam.Handle
	}{
		// The doc comment's own examples.
		{"sentence end", "ping @bob.", []seam.Handle{"bob"}},
		{"email address", "alice@example.com", nil},

		// Where an '@' may stand.
		{"start of content", "@bob hi", []seam.Handle{"bob"}},
		{"whole content", "@bob", []seam.Handle{"bob"}},
		{"after a space", "hi @bob", []seam.Handle{"bob"}},
		{"after a newline", "hi\n@bob", []seam.Handle{"bob"}},
		{"after a tab", "hi\t@bob", []seam.Handle{"bob"}},
		{"in parentheses", "(@bob)", []seam.Handle{"bob"}},
		{"after a comma", "alice,@bob", []seam.Handle{"bob"}},
		{"after a colon", "cc:@bob", []seam.Handle{"bob"}},
		{"after a non-ASCII letter", "é@bob", []seam.Handle{"bob"}},
		{"after a letter", "x@bob", nil},
		{"after a digit", "1@bob", nil},
		{"after an underscore", "_@bob", nil},
		{"after a dot", "end.@bob", nil},
		{"after a hyphen", "-@bob", nil},
		{"after another @", "@@bob", nil},
		{"address with a dotted domain", "mail bob.smith@example.org now", nil},

		// What a handle is: starts and ends with [A-Za-z0-9], '.', '_', '-' inside.
		{"inner dot", "@bob.smith", []seam.Handle{"bob.smith"}},
		{"inner underscore", "@bob_smith", []seam.Handle{"bob_smith"}},
		{"inner hyphen", "@bob-smith", []seam.Handle{"bob-smith"}},
		{"inner runs", "@a.-_b", []seam.Handle{"a.-_b"}},
		{"digits", "@42 and @r2d2", []seam.Handle{"42", "r2d2"}},
		{"one character", "@x", []seam.Handle{"x"}},
		{"mixed case kept", "@BoB", []seam.Handle{"BoB"}},
		{"leading hyphen", "@-bob", nil},
		{"leading dot", "@.bob", nil},
		{"leading underscore", "@_bob", nil},
		{"bare @", "@", nil},
		{"@ then space", "@ bob", nil},
		{"non-ASCII handle", "@émile", nil},
		{"ASCII part of a handle only", "@bobé", []seam.Handle{"bob"}},

		// Trailing '.', '_' and '-' are the sentence's, not the handle's.
		{"trailing hyphen", "@bob-", []seam.Handle{"bob"}},
		{"trailing underscore", "@bob_ ok", []seam.Handle{"bob"}},
		{"trailing run", "@bob.-_", []seam.Handle{"bob"}},
		{"question mark", "@bob?", []seam.Handle{"bob"}},
		{"exclamation", "hey @bob!", []seam.Handle{"bob"}},
		{"comma", "@bob, @carol: hi", []seam.Handle{"bob", "carol"}},
		{"ellipsis", "@bob...", []seam.Handle{"bob"}},

		// Unique, in first-seen order.
		{"order kept", "@carol @bob @alice", []seam.Handle{"carol", "bob", "alice"}},
		{"duplicates dropped", "@bob @alice @bob", []seam.Handle{"bob", "alice"}},
		{"duplicate with punctuation", "@bob. @bob, @bob", []seam.Handle{"bob"}},

		// An address right after a mention belongs to no new mention.
		{"mention then @", "@bob@carol", []seam.Handle{"bob"}},

		// Nothing to find.
		{"empty", "", nil},
		{"no @", "hello", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := seam.ParseMentions(c.content)
			if len(c.want) == 0 {
				assert.Empty(t, got, "ParseMentions(%q)", c.content)
				return
			}
			assert.Equal(t, c.want, got, "ParseMentions(%q)", c.content)
		})
	}
}

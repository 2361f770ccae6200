package stanza

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/parley-go/parley-xmpp/observe"
)

// observe.RelationKinds, whose series the metrics create at a room's start,
// are the kinds Apply reports.
func TestRelationKindsAreApplys(t *testing.T) {
	assert.ElementsMatch(t, []string{RelReply, RelCorrection, RelRetraction, RelModeration, RelReactions}, observe.RelationKinds)
}

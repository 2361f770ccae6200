package room

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestIDRingRemembersTheLastN(t *testing.T) {
	r := newIDRing(3)
	for i := range 5 {
		assert.True(t, r.add(fmt.Sprint(i)), "%d is new", i)
	}
	assert.False(t, r.add("4"))
	assert.False(t, r.add("2"))
	assert.True(t, r.add("1"), "1 fell out of the window")
	assert.Len(t, r.set, 3)
	assert.Len(t, r.ids, 3)
}

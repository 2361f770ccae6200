package runtime_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/runtime"
)

func TestOriginKey(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	k, err := runtime.OriginKey(secret, "route", "topic", "id1")
	require.NoError(t, err)
	assert.Len(t, k, 32)
	again, _ := runtime.OriginKey(secret, "route", "topic", "id1")
	assert.Equal(t, k, again, "deterministic: runtimes sharing the secret agree")
	other, _ := runtime.OriginKey(bytes.Repeat([]byte{8}, 32), "route", "topic", "id1")
	assert.NotEqual(t, k, other, "another secret, another key")
	split1, _ := runtime.OriginKey(secret, "ab", "c")
	split2, _ := runtime.OriginKey(secret, "a", "bc")
	assert.NotEqual(t, split1, split2, "parts are length-prefixed")
	_, err = runtime.OriginKey([]byte("short"), "x")
	assert.ErrorContains(t, err, "at least 16")
}

package serve

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/config"
)

// The relays' secret is made once (32 random bytes, mode 0600) and read back
// on later runs; a file that doesn't hold one, or that others can read, is a
// configuration error naming the file, never replaced, and never echoed.
func TestRelaySecret(t *testing.T) {
	dir := t.TempDir()
	first, err := loadSecret(dir)
	require.NoError(t, err)
	assert.Len(t, first, 32)
	path := filepath.Join(dir, secretName)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	again, err := loadSecret(dir)
	require.NoError(t, err)
	assert.Equal(t, first, again, "read back, not made anew")
	other, err := loadSecret(t.TempDir())
	require.NoError(t, err)
	assert.NotEqual(t, first, other, "random per state dir")
	leftovers, _ := filepath.Glob(filepath.Join(dir, "."+secretName+".tmp-*"))
	assert.Empty(t, leftovers)

	good, err := os.ReadFile(path)
	require.NoError(t, err)
	for name, content := range map[string]string{
		"short":   string(good[:40]),
		"not hex": "zz" + string(good[2:]),
		"empty":   "",
		"long":    string(good[:64]) + "00\n",
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
			_, err := loadSecret(dir)
			require.ErrorIs(t, err, config.ErrConfig)
			assert.ErrorContains(t, err, path)
			if len(content) > 8 {
				assert.NotContains(t, err.Error(), content[:8], "the secret is never echoed")
			}
			got, _ := os.ReadFile(path)
			assert.Equal(t, content, string(got), "a bad secret is left for the user to fix, not replaced")
		})
	}
	require.NoError(t, os.WriteFile(path, good, 0o644))
	require.NoError(t, os.Chmod(path, 0o644))
	_, err = loadSecret(dir)
	require.ErrorIs(t, err, config.ErrConfig)
	assert.ErrorContains(t, err, "chmod 600")
}

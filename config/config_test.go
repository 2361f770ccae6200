package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func clearEnv(t *testing.T) {
	for _, e := range env {
		t.Setenv(e.name, "")
	}
}

func TestLoadReadsTheBackendBlock(t *testing.T) {
	clearEnv(t)
	p := write(t, t.TempDir(), "c.yaml", `
backend_config:
  service: "xmpp://127.0.0.1:5222"
  domain: "parley.local"
  muc_service: "muc.parley.local"
  username: "parley"
`)
	f, err := Load(p)
	require.NoError(t, err)
	c := f.RuntimeConfig()
	assert.Equal(t, "xmpp://127.0.0.1:5222", c.Service)
	assert.Equal(t, "muc.parley.local", c.MUCService)
	assert.Equal(t, "parley", c.Username)
	assert.Empty(t, c.Password, "not in the file: the runtime's own default or the environment")
	assert.Empty(t, c.Nick)
}

func TestEnvironmentAndDotEnvOverrideTheFile(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	p := write(t, dir, "c.yaml", "backend_config:\n  username: fromfile\n  nick: filenick\n")
	write(t, dir, ".env", "# secrets\nPARLEY_XMPP_PASS='dotenv-secret'\nexport PARLEY_XMPP_NICK=dotenvnick\n")
	t.Setenv("PARLEY_XMPP_NICK", "envnick")
	f, err := Load(p)
	require.NoError(t, err)
	assert.Equal(t, "dotenv-secret", f.Backend.Password, ".env supplies what the environment lacks")
	assert.Equal(t, "envnick", f.Backend.Nick, "the environment wins over .env and the file")
	assert.Equal(t, "fromfile", f.Backend.Username)
}

func TestUnknownKeysAreErrorsNamingTheKey(t *testing.T) {
	for body, key := range map[string]string{
		"backend_config:\n  sevrice: x\n": "sevrice",
		"backend_confg:\n  service: x\n":  "backend_confg",
		"backend_config:\n  nick: [a]\n":  "nick",
	} {
		_, err := Parse([]byte(body))
		require.Error(t, err, body)
		assert.ErrorIs(t, err, ErrConfig)
		assert.Contains(t, err.Error(), key)
	}
}

func TestBadDotEnvIsAnError(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	p := write(t, dir, "c.yaml", "backend_config: {}\n")
	write(t, dir, ".env", "this is not a pair\n")
	_, err := Load(p)
	assert.ErrorContains(t, err, ".env:1")
}

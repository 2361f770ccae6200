package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// plantScript writes an executable scripts/devserver.sh under dir that
// appends its arguments to marker.
func plantScript(t *testing.T, dir, marker string) string {
	t.Helper()
	p := filepath.Join(dir, "scripts", "devserver.sh")
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\necho \"$0 $*\" >> '"+marker+"'\n"), 0o755))
	return p
}

// A scripts/devserver.sh in the working directory or any directory above it
// is never run: demo and bench start a dev server only with --dev-server, and
// then exactly the script it names.
func TestDemoAndBenchNeverRunAPlantedDevServerScript(t *testing.T) {
	root := t.TempDir()
	marker := filepath.Join(root, "marker")
	cwd := filepath.Join(root, "a", "b")
	for _, d := range []string{root, filepath.Join(root, "a"), cwd} {
		plantScript(t, d, marker)
	}
	t.Chdir(cwd)
	// Loopback, port 5222 (the dev server's), and nothing listens there.
	t.Setenv("PARLEY_XMPP_SERVICE", "xmpp://127.0.0.2:5222")
	require.False(t, reachable("127.0.0.2:5222"), "this test needs nothing on 127.0.0.2:5222")

	for _, args := range [][]string{{"demo", "--duration", "2s"}, {"bench", "--scale", "0.01"}} {
		code, _, errOut := runCLI(t, "", args...)
		assert.NotEqual(t, 0, code, "%v: %s", args, errOut)
		assert.Contains(t, errOut, "--dev-server", "%v: the error names the flag", args)
		_, err := os.Stat(marker)
		assert.True(t, os.IsNotExist(err), "%v ran a planted scripts/devserver.sh", args)

		// A relative --dev-server is refused (exit 2): it would be looked up
		// from wherever the command runs.
		code, _, errOut = runCLI(t, "", append(args, "--dev-server", "scripts/devserver.sh")...)
		assert.Equal(t, 2, code, "%v: %s", args, errOut)
		assert.Contains(t, errOut, "--dev-server")
		_, err = os.Stat(marker)
		assert.True(t, os.IsNotExist(err), "%v ran a relative --dev-server", args)
	}

	// With --dev-server, exactly the script named runs (start, then stop when
	// nothing comes to listen).
	defer func(w time.Duration) { devServerWait = w }(devServerWait)
	devServerWait = 300 * time.Millisecond
	other := t.TempDir()
	ownMarker := filepath.Join(other, "marker")
	script := plantScript(t, other, ownMarker)
	code, _, errOut := runCLI(t, "", "demo", "--duration", "2s", "--dev-server", script)
	assert.NotEqual(t, 0, code, errOut)
	assert.Contains(t, errOut, "nothing listens at 127.0.0.2:5222")
	got, err := os.ReadFile(ownMarker)
	require.NoError(t, err, "the named script ran")
	assert.Equal(t, script+" start prosody\n"+script+" stop prosody\n", string(got))
	_, err = os.Stat(marker)
	assert.True(t, os.IsNotExist(err), "only the named script runs")
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/modfile"
)

func TestVersionTextFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/parley-go/parley-xmpp", Version: "v1.4.0"}}
	out := versionText(bi)
	assert.Contains(t, out, "parley-xmpp v1.4.0\n")
	assert.Contains(t, out, "module      github.com/parley-go/parley-xmpp\n")
	assert.NotContains(t, out, "revision", "go install module@version stamps no vcs settings")

	bi.Main.Version = "(devel)"
	bi.Settings = []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abc"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}
	out = versionText(bi)
	assert.Contains(t, out, "(devel)")
	assert.Contains(t, out, "revision    0123abc\n")
	assert.Contains(t, out, "time        2026-12-01T10:00:00Z\n")
	assert.Contains(t, out, "modified    true\n")
	assert.Contains(t, versionText(nil), "no build information")
}

// A binary built from this checkout prints the checkout's revision.
func TestVersionOfABuiltBinary(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed: the go command can't stamp a revision")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	require.NoError(t, err)
	// The go command stamps vcs.* only when .git is a directory: a git
	// worktree (.git is a file) builds without them.
	fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git"))
	stamped := err == nil && fi.IsDir()
	bin := filepath.Join(t.TempDir(), "parley-xmpp")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	out, err := exec.Command(bin, "version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "module      github.com/parley-go/parley-xmpp\n")
	if !stamped {
		t.Logf("%s: a git worktree, the go command records no revision; checked the module line only", strings.TrimSpace(string(top)))
		return
	}
	assert.Contains(t, string(out), "revision    "+strings.TrimSpace(string(head))+"\n")
	assert.Contains(t, string(out), "modified    ")
}

// `go install github.com/parley-go/parley-xmpp/cmd/parley-xmpp@vX` needs the
// module path to match the import path and no replace directive (go install
// module@version refuses a main module that has one).
func TestGoInstallable(t *testing.T) {
	b, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	f, err := modfile.Parse("go.mod", b, nil)
	require.NoError(t, err)
	assert.Equal(t, "github.com/parley-go/parley-xmpp", f.Module.Mod.Path)
	assert.Empty(t, f.Replace, "go install module@version fails on a replace directive")
	assert.Empty(t, f.Exclude, "go install module@version fails on an exclude directive")
	out, err := exec.Command("go", "list", "-f", "{{.Name}} {{.ImportPath}}", ".").Output()
	require.NoError(t, err)
	assert.Equal(t, "main github.com/parley-go/parley-xmpp/cmd/parley-xmpp", strings.TrimSpace(string(out)))
}

package xmpptest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

var shellResult = regexp.MustCompile(`(?m)^Result: (.*)$`)

// ProsodyShell runs one line of Lua in the admin shell of the dev Prosody
// (scripts/devserver.sh enables mod_admin_shell and its socket, and keeps the
// configuration under PARLEY_DEV_DIR) and returns what the line returned. It
// fails the test when the shell can't be reached, or skips it outside CI when
// there is no dev Prosody configuration at all.
func ProsodyShell(t testing.TB, line string) string {
	t.Helper()
	dir := os.Getenv("PARLEY_DEV_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "parley-xmpp-dev")
	}
	cfg := filepath.Join(dir, "prosody", "prosody.cfg.lua")
	if _, err := os.Stat(cfg); err != nil {
		msg := fmt.Sprintf("no dev Prosody configuration at %s (%v): start it with scripts/devserver.sh start prosody, with the PARLEY_DEV_DIR it was started with", cfg, err)
		if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "prosodyctl", "--config", cfg, "shell", "> "+line).CombinedOutput()
	if err != nil {
		t.Fatalf("prosodyctl shell: %v (is mod_admin_shell enabled? scripts/devserver.sh restart prosody enables it):\n%s", err, out)
	}
	m := shellResult.FindSubmatch(out)
	if m == nil {
		t.Fatalf("prosodyctl shell: no result:\n%s", out)
	}
	return string(m[1])
}

package xmpptest

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of an external program a test runs (promtool,
// systemd-analyze, prometheus). Missing, it fails the test when CI=true or
// PARLEY_XMPP_REQUIRE_SERVER=1 (CI installs it: .ci/run), and skips it
// otherwise, naming the Debian package that has it.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
		t.Fatalf("%s not installed (%v): CI must install it (apt-get install %s)", name, err, debianPackage)
	}
	t.Skipf("%s not installed (apt-get install %s); with CI=true this fails", name, debianPackage)
	return ""
}

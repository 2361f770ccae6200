package xmpptest

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of an external program a test runs (promtool,
// systemd-analyze, prometheus). Missing, it fails the test when CI=true or
// PARLEY_XMPP_REQUIRE_SERVER=1 (make test installs it: scripts/deps.sh), and skips it
// otherwise, naming the Debian package that has it.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
		t.Fatalf("%s not installed (%v): `make test` installs it (scripts/deps.sh), or: apt-get install %s", name, err, debianPackage)
	}
	t.Skipf("%s not installed (`make test` installs it, or: apt-get install %s); under make test or CI=true this fails", name, debianPackage)
	return ""
}

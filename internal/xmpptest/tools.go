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

// RequirePython returns the path of a Python interpreter that imports module
// (Debian's /usr/bin/python3 with python3-slixmpp, say, not a pyenv python on
// PATH). Missing, it fails the test when CI=true or
// PARLEY_XMPP_REQUIRE_SERVER=1 (make test installs it: scripts/deps.sh), and
// skips it otherwise, naming the Debian package that has it.
func RequirePython(t testing.TB, python, module, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(python)
	if err == nil {
		err = exec.Command(p, "-c", "import "+module).Run()
	}
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
		t.Fatalf("%s with the module %s not installed (%v): `make test` installs it (scripts/deps.sh), or: apt-get install %s", python, module, err, debianPackage)
	}
	t.Skipf("%s with the module %s not installed (`make test` installs it, or: apt-get install %s); under make test or CI=true this fails", python, module, debianPackage)
	return ""
}

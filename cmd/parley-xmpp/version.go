package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the module version and the VCS revision it was built from",
		Long: `Print the module version (v1.2.3 for a go install of a tag, "(devel)" for a
build from a checkout), the Go version, and, when the build recorded them, the
VCS revision, its commit time, and whether the checkout had local changes.
parley-xmpp --version prints the same.`,
		Example: `  parley-xmpp version
  parley-xmpp --version`,
		Args: argsBetween(0, 0),
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprint(a.out, versionString())
		},
	}
}

// versionString is this build's versionText (--version prints it).
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return versionText(bi)
}

// versionText describes a build: the module's path and version, the Go
// version, and the vcs.* settings the go command stamps into a build from a
// checkout (none for go install module@version, which the version names).
func versionText(bi *debug.BuildInfo) string {
	if bi == nil {
		return "parley-xmpp: no build information (built without module support)\n"
	}
	var b strings.Builder
	v := bi.Main.Version
	switch v {
	case "":
		v = "(unknown)"
	case "(devel)":
		v = "(devel): built from a checkout, not a tagged release"
	}
	path := bi.Main.Path
	if path == "" {
		path = "github.com/parley-go/parley-xmpp"
	}
	fmt.Fprintf(&b, "parley-xmpp %s\n", v)
	fmt.Fprintf(&b, "module      %s\n", path)
	fmt.Fprintf(&b, "go          %s\n", bi.GoVersion)
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	for _, k := range []struct{ key, label string }{
		{"vcs.revision", "revision"}, {"vcs.time", "time"}, {"vcs.modified", "modified"},
	} {
		if val, ok := settings[k.key]; ok {
			fmt.Fprintf(&b, "%-11s %s\n", k.label, val)
		}
	}
	return b.String()
}

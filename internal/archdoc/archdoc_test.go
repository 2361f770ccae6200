// Package archdoc holds the test that keeps docs/architecture.md's import
// listing true: it is what `go list` says, package by package.
package archdoc

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/architecture.md's listing from go list")

const (
	module = "github.com/parley-go/parley-xmpp/"
	begin  = "<!-- imports: go test ./internal/archdoc -update rewrites this block -->"
	end    = "<!-- end of imports -->"
)

// tooling are the packages that are not the product: test helpers, tools,
// examples and benchmarks (docs/architecture.md, "Product and tooling").
var tooling = regexp.MustCompile(`^(examples/|internal/(xmpptest|etcdtest|rawclient|devconfig|archdoc|fakexmpp)|bench|chaos|seam/conformance|seam/memory)`)

// listing is the product packages, each with the product packages it imports.
func listing(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		pkg := strings.TrimPrefix(f[0], module)
		if pkg == f[0] || tooling.MatchString(pkg) {
			continue
		}
		var deps []string
		for _, d := range f[1:] {
			if p, ok := strings.CutPrefix(d, module); ok && !tooling.MatchString(p) {
				deps = append(deps, p)
			}
		}
		slices.Sort(deps)
		arrow := "(nothing of the project)"
		if len(deps) > 0 {
			arrow = strings.Join(deps, ", ")
		}
		lines = append(lines, pkg+" → "+arrow)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// docs/architecture.md's listing of who imports whom is go list's.
func TestTheMapListsTheImports(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "architecture.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no listing between %q and %q", path, begin, end)
	}
	want := begin + "\n\n```\n" + listing(t) + "\n```\n\n"
	got := s[i:j]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(s[:i]+want+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's import listing is not go list's: run go test ./internal/archdoc -update, and redraw the map if an arrow changed\n--- want\n%s\n--- got\n%s", path, want, got)
}

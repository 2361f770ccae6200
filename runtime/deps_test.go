package runtime_test

import (
	"bufio"
	"bytes"
	"go/ast"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/parley-go/parley-xmpp"

// tooling is the module's test and benchmark tooling: free to use go-xmpp
// directly, and never part of the product.
var tooling = []string{"/bench", "/chaos", "/internal/rawclient", "/internal/xmpptest", "/internal/fakexmpp"}

// product is the product path: what a user embeds or runs. The command's demo
// and bench subcommands are in package main with the rest of the command, so the
// command's own imports are checked, and the bench package (tooling) it pulls in
// is left out.
var product = []string{"./runtime", "./actors/...", "./serve", "./config", "./seam/...", "./supervision", "./observe", "./metrics", "./cmd/parley-xmpp"}

func isTooling(p string) bool {
	return slices.ContainsFunc(tooling, func(tool string) bool { return p == module+tool || strings.HasPrefix(p, module+tool+"/") })
}

// Only internal/xmppconn imports go-xmpp on the product path (go list -deps),
// and the library (everything but the command) reaches no tooling package.
func TestOnlyXmppconnImportsGoXMPP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		//lint:ignore SA1019 the go that built this test, when none is on PATH
		goBin = filepath.Join(goruntime.GOROOT(), "bin", "go")
	}
	list := func(pkgs ...string) map[string][]string {
		t.Helper()
		args := append([]string{"list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}"}, pkgs...)
		cmd := exec.Command(goBin, args...)
		cmd.Dir = ".."
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list: %v: %s", err, stderr.String())
		}
		deps := map[string][]string{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			deps[f[0]] = f[1:]
		}
		return deps
	}

	var importers []string
	for pkg, imports := range list(product...) {
		if !strings.HasPrefix(pkg, module) || isTooling(pkg) {
			continue
		}
		if slices.ContainsFunc(imports, func(i string) bool { return strings.HasPrefix(i, "github.com/xmppo/go-xmpp") }) {
			importers = append(importers, strings.TrimPrefix(pkg, module+"/"))
		}
	}
	slices.Sort(importers)
	if !slices.Equal(importers, []string{"internal/xmppconn"}) {
		t.Errorf("product packages importing go-xmpp: %v, want only internal/xmppconn", importers)
	}

	library := slices.DeleteFunc(slices.Clone(product), func(p string) bool { return p == "./cmd/parley-xmpp" })
	for pkg := range list(library...) {
		if isTooling(pkg) {
			t.Errorf("the library reaches the tooling package %s", pkg)
		}
	}
}

// The library reads no environment: only runtime.ConfigFromEnv reads the
// PARLEY_XMPP_* variables, for whoever calls it, and package config (the
// command's configuration, with .env files).
func TestLibraryReadsNoEnvironment(t *testing.T) {
	dirs := []string{"../runtime", "../serve", "../supervision", "../observe", "../metrics", "../seam", "../seam/memory", "../seam/conformance"}
	for _, pattern := range []string{"../actors/*", "../internal/*"} {
		more, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range more {
			if !isTooling(module + "/" + strings.TrimPrefix(d, "../")) {
				dirs = append(dirs, d)
			}
		}
	}
	readers := map[string]bool{}
	for _, dir := range dirs {
		for _, f := range goFiles(t, dir) {
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok {
					continue
				}
				ast.Inspect(fn, func(n ast.Node) bool {
					if sel, ok := n.(*ast.SelectorExpr); ok {
						if x, ok := sel.X.(*ast.Ident); ok && x.Name == "os" && (sel.Sel.Name == "Getenv" || sel.Sel.Name == "LookupEnv") {
							readers[strings.TrimPrefix(dir, "../")+"."+fn.Name.Name] = true
						}
					}
					return true
				})
			}
		}
	}
	if len(readers) != 1 || !readers["runtime.ConfigFromEnv"] {
		t.Errorf("functions reading the environment: %v, want only runtime.ConfigFromEnv", readers)
	}
}

package runtime_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	goreflect "reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/supervision"
)

// sentinels are the runtime's errors: each is the value declared once in the
// runtime's vocabulary (internal/vocab), or seam's.
var sentinels = []struct {
	name     string // the runtime's name (vocab's too, for vocab's)
	runtime  error
	original error
}{
	{"ErrPostTimeout", runtime.ErrPostTimeout, vocab.ErrPostTimeout},
	{"ErrPostRefused", runtime.ErrPostRefused, vocab.ErrPostRefused},
	{"ErrNoStanzaID", runtime.ErrNoStanzaID, vocab.ErrNoStanzaID},
	{"ErrPostFenced", runtime.ErrPostFenced, vocab.ErrPostFenced},
	{"ErrJoin", runtime.ErrJoin, vocab.ErrJoin},
	{"ErrJoinTimeout", runtime.ErrJoinTimeout, vocab.ErrJoinTimeout},
	{"ErrLeft", runtime.ErrLeft, vocab.ErrLeft},
	{"ErrBanned", runtime.ErrBanned, vocab.ErrBanned},
	{"ErrRoomFailed", runtime.ErrRoomFailed, vocab.ErrRoomFailed},
	{"ErrArchiveGap", runtime.ErrArchiveGap, vocab.ErrArchiveGap},
	{"ErrUnknownTarget", runtime.ErrUnknownTarget, vocab.ErrUnknownTarget},
	{"ErrNotOwnMessage", runtime.ErrNotOwnMessage, vocab.ErrNotOwnMessage},
	{"ErrRoomNotOwned", runtime.ErrRoomNotOwned, vocab.ErrRoomNotOwned},
	{"ErrActorFailed", runtime.ErrActorFailed, vocab.ErrActorFailed},
	{"ErrArchiveStalled", runtime.ErrArchiveStalled, vocab.ErrArchiveStalled},
	{"ErrArchiveRunaway", runtime.ErrArchiveRunaway, vocab.ErrArchiveRunaway},
	{"ErrArchiveRefused", runtime.ErrArchiveRefused, vocab.ErrArchiveRefused},
	{"ErrArchiveGarbled", runtime.ErrArchiveGarbled, vocab.ErrArchiveGarbled},
	{"ErrHandlerPanicked", runtime.ErrHandlerPanicked, vocab.ErrHandlerPanicked},
	{"ErrLinkLost", runtime.ErrLinkLost, vocab.ErrLinkLost},
	{"ErrIQTimeout", runtime.ErrIQTimeout, vocab.ErrIQTimeout},
	{"ErrKeepAlive", runtime.ErrKeepAlive, vocab.ErrKeepAlive},
	{"ErrGaveUp", runtime.ErrGaveUp, vocab.ErrGaveUp},
	{"ErrTLS", runtime.ErrTLS, vocab.ErrTLS},
	{"ErrTLSRequired", runtime.ErrTLSRequired, vocab.ErrTLSRequired},
	{"ErrInboundTooLarge", runtime.ErrInboundTooLarge, vocab.ErrInboundTooLarge},
	{"ErrNegotiationTooLarge", runtime.ErrNegotiationTooLarge, vocab.ErrNegotiationTooLarge},
	{"ErrReaderPanicked", runtime.ErrReaderPanicked, vocab.ErrReaderPanicked},
	{"ErrSendQueueFull", runtime.ErrSendQueueFull, vocab.ErrSendQueueFull},
	{"ErrStanzaTooLarge", runtime.ErrStanzaTooLarge, vocab.ErrStanzaTooLarge},
	{"ErrConnClosed", runtime.ErrConnClosed, vocab.ErrConnClosed},
	{"ErrPostNotSent", runtime.ErrPostNotSent, vocab.ErrPostNotSent},
	{"ErrConfig", runtime.ErrConfig, vocab.ErrConfig},
	{"seam.ErrPostInDoubt", runtime.ErrPostInDoubt, seam.ErrPostInDoubt},
	{"seam.ErrInvalidArgument", runtime.ErrInvalidArgument, seam.ErrInvalidArgument},
}

// notReceivable are the actors' own sentinels, which no caller can receive,
// and why.
var notReceivable = map[string]string{
	"session.ErrDuplicateIQ": "IQ ids are random: only a bug in the runtime repeats one",
	"archive.ErrAbandoned":   "it answers a read whose caller stopped waiting: the caller has its ctx.Err()",
}

// Every sentinel is declared once, in internal/vocab, and the runtime exports
// each under the same name as the same value; the actors declare none of
// their own but those no caller receives (supervision.ErrActorFailed, public,
// names vocab's).
func TestEveryErrorIsDeclaredOnceAndExported(t *testing.T) {
	seen := map[error]string{}
	named := map[string]bool{}
	for _, s := range sentinels {
		if s.runtime == nil || s.runtime != s.original {
			t.Errorf("runtime.%s is not the value it names", s.name)
		}
		if other, dup := seen[s.runtime]; dup {
			t.Errorf("%s and %s are one value", s.name, other)
		}
		seen[s.runtime], named[s.name] = s.name, true
	}
	for _, name := range exportedErrors(t, filepath.Join("..", "internal", "vocab")) {
		if !named[name] {
			t.Errorf("vocab.%s is not exported by package runtime (errors.go)", name)
		}
	}
	if supervision.ErrActorFailed != vocab.ErrActorFailed {
		t.Error("supervision.ErrActorFailed is a value of its own")
	}
	for _, dir := range []string{"actors/room", "actors/session", "actors/archive", "internal/xmppconn"} {
		for _, name := range exportedErrors(t, filepath.Join("..", dir)) {
			if key := filepath.Base(dir) + "." + name; notReceivable[key] == "" {
				t.Errorf("%s is declared outside internal/vocab", key)
			}
		}
	}
}

// exportedErrors lists the package-level exported variables named Err* in dir.
func exportedErrors(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	for _, g := range declarations(t, dir, token.VAR) {
		for _, spec := range g.Specs {
			for _, n := range spec.(*ast.ValueSpec).Names {
				if strings.HasPrefix(n.Name, "Err") && n.IsExported() {
					names = append(names, n.Name)
				}
			}
		}
	}
	return names
}

// declarations returns the top-level declarations of kind tok in dir's
// non-test Go files.
func declarations(t *testing.T, dir string, tok token.Token) []*ast.GenDecl {
	t.Helper()
	var decls []*ast.GenDecl
	for _, f := range goFiles(t, dir) {
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == tok {
				decls = append(decls, g)
			}
		}
	}
	return decls
}

// goFiles parses dir's non-test Go files.
func goFiles(t *testing.T, dir string) []*ast.File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// Package runtime's exported type aliases name the runtime's vocabulary
// (internal/vocab), never an actor's type.
func TestAliasesNameTheVocabulary(t *testing.T) {
	n := 0
	for _, g := range declarations(t, ".", token.TYPE) {
		for _, spec := range g.Specs {
			ts := spec.(*ast.TypeSpec)
			if !ts.Assign.IsValid() || !ts.Name.IsExported() {
				continue
			}
			n++
			if sel, ok := ts.Type.(*ast.SelectorExpr); !ok || sel.X.(*ast.Ident).Name != "vocab" {
				t.Errorf("%s is an alias of something else than the vocabulary", ts.Name.Name)
			}
		}
	}
	if n == 0 {
		t.Error("no alias found: the test reads the wrong files")
	}
}

// sentinelFree are the error paths in the runtime and the actors that wrap no
// sentinel, on purpose, and why.
var sentinelFree = map[string]string{}

// Every error the runtime and its actors make wraps a sentinel (%w): an error
// made in a function with fmt.Errorf without %w, or with errors.New, is one a
// caller can't tell apart with errors.Is.
func TestEveryErrorPathWrapsASentinel(t *testing.T) {
	for _, dir := range []string{".", "../actors/room", "../actors/session", "../actors/archive", "../actors/subscriber", "../actors/notifier", "../supervision"} {
		fset := token.NewFileSet()
		paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, path := range paths {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			require.NoError(t, err)
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					sel, ok := call.Fun.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					pkg, _ := sel.X.(*ast.Ident)
					if pkg == nil {
						return true
					}
					where := fmt.Sprintf("%s:%d", filepath.Base(path), fset.Position(call.Pos()).Line)
					switch {
					case pkg.Name == "errors" && sel.Sel.Name == "New":
						if sentinelFree[where] == "" {
							t.Errorf("%s: errors.New in a function wraps no sentinel", where)
						}
					case pkg.Name == "fmt" && sel.Sel.Name == "Errorf" && len(call.Args) > 0:
						if lit, ok := call.Args[0].(*ast.BasicLit); ok && !strings.Contains(lit.Value, "%w") && sentinelFree[where] == "" {
							t.Errorf("%s: fmt.Errorf(%s) wraps no sentinel", where, lit.Value)
						}
					}
					return true
				})
			}
		}
	}
}

// ProbeConfig shows no internal type but the vocabulary's, which runtime
// names (DialPlan): doctor reads it without reaching into the runtime's
// insides.
func TestProbeConfigExposesNoInternalType(t *testing.T) {
	pt := goreflect.TypeFor[runtime.ProbeConfig]()
	for i := range pt.NumField() {
		f := pt.Field(i)
		if p := f.Type.PkgPath(); strings.Contains(p, "/internal/") && !strings.HasSuffix(p, "/internal/vocab") {
			t.Errorf("ProbeConfig.%s is a %s", f.Name, f.Type)
		}
	}
}

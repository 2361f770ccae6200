package runtime_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/room"
	"github.com/parley-go/parley-xmpp/actors/session"
	"github.com/parley-go/parley-xmpp/internal/xmppconn"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/supervision"
)

// sentinels are the runtime's names for the errors its insides return.
var sentinels = []struct {
	inside   string // package.Name where it is made
	runtime  error
	original error
}{
	{"room.ErrPostTimeout", runtime.ErrPostTimeout, room.ErrPostTimeout},
	{"room.ErrPostRefused", runtime.ErrPostRefused, room.ErrPostRefused},
	{"room.ErrNoStanzaID", runtime.ErrNoStanzaID, room.ErrNoStanzaID},
	{"room.ErrFenced", runtime.ErrPostFenced, room.ErrFenced},
	{"room.ErrJoin", runtime.ErrJoin, room.ErrJoin},
	{"room.ErrJoinTimeout", runtime.ErrJoinTimeout, room.ErrJoinTimeout},
	{"room.ErrLeft", runtime.ErrLeft, room.ErrLeft},
	{"room.ErrBanned", runtime.ErrBanned, room.ErrBanned},
	{"room.ErrFailed", runtime.ErrRoomFailed, room.ErrFailed},
	{"room.ErrArchiveGap", runtime.ErrArchiveGap, room.ErrArchiveGap},
	{"room.ErrUnknownTarget", runtime.ErrUnknownTarget, room.ErrUnknownTarget},
	{"room.ErrNotOwnMessage", runtime.ErrNotOwnMessage, room.ErrNotOwnMessage},
	{"room.ErrNotOwned", runtime.ErrRoomNotOwned, room.ErrNotOwned},
	{"supervision.ErrActorFailed", runtime.ErrActorFailed, supervision.ErrActorFailed},
	{"archive.ErrStalled", runtime.ErrArchiveStalled, archive.ErrStalled},
	{"archive.ErrRunaway", runtime.ErrArchiveRunaway, archive.ErrRunaway},
	{"session.ErrLinkLost", runtime.ErrLinkLost, session.ErrLinkLost},
	{"session.ErrIQTimeout", runtime.ErrIQTimeout, session.ErrIQTimeout},
	{"session.ErrKeepAlive", runtime.ErrKeepAlive, session.ErrKeepAlive},
	{"session.ErrGaveUp", runtime.ErrGaveUp, session.ErrGaveUp},
	{"xmppconn.ErrTLS", runtime.ErrTLS, xmppconn.ErrTLS},
	{"xmppconn.ErrTLSRequired", runtime.ErrTLSRequired, xmppconn.ErrTLSRequired},
	{"xmppconn.ErrInboundTooLarge", runtime.ErrInboundTooLarge, xmppconn.ErrInboundTooLarge},
	{"xmppconn.ErrNegotiationTooLarge", runtime.ErrNegotiationTooLarge, xmppconn.ErrNegotiationTooLarge},
	{"xmppconn.ErrReaderPanicked", runtime.ErrReaderPanicked, xmppconn.ErrReaderPanicked},
	{"xmppconn.ErrSendQueueFull", runtime.ErrSendQueueFull, xmppconn.ErrSendQueueFull},
	{"xmppconn.ErrStanzaTooLarge", runtime.ErrStanzaTooLarge, xmppconn.ErrStanzaTooLarge},
	{"xmppconn.ErrClosed", runtime.ErrConnClosed, xmppconn.ErrClosed},
	{"seam.ErrPostInDoubt", runtime.ErrPostInDoubt, seam.ErrPostInDoubt},
	{"runtime.ErrPostNotSent", runtime.ErrPostNotSent, runtime.ErrPostNotSent},
	{"runtime.ErrConfig", runtime.ErrConfig, runtime.ErrConfig},
	{"seam.ErrInvalidArgument", runtime.ErrInvalidArgument, seam.ErrInvalidArgument},
}

// notReceivable are the insides' sentinels no caller can receive, and why.
var notReceivable = map[string]string{
	"session.ErrDuplicateIQ": "IQ ids are random: only a bug in the runtime repeats one",
	"archive.ErrAbandoned":   "it answers a read whose caller stopped waiting: the caller has its ctx.Err()",
}

// Every error the runtime's insides export is one the runtime exports too, as
// the same value: errors.Is matches it by either name, wrapped either way.
func TestEveryErrorIsExportedByRuntime(t *testing.T) {
	seen := map[error]string{}
	for _, s := range sentinels {
		if s.runtime == nil {
			t.Fatalf("%s: nil", s.inside)
		}
		if other, dup := seen[s.runtime]; dup {
			t.Errorf("%s and %s are one value", s.inside, other)
		}
		seen[s.runtime] = s.inside
		if !errors.Is(fmt.Errorf("call: %w", s.original), s.runtime) || !errors.Is(fmt.Errorf("call: %w", s.runtime), s.original) {
			t.Errorf("%s: errors.Is does not match the runtime's name and the original both ways", s.inside)
		}
	}

	// The insides' exported sentinels, read from their source: a new one must
	// be added above (or to notReceivable, with the reason).
	covered := map[string]bool{}
	for _, s := range sentinels {
		covered[s.inside] = true
	}
	for _, dir := range []string{"actors/room", "actors/session", "actors/archive", "supervision", "internal/xmppconn"} {
		for _, name := range exportedErrors(t, filepath.Join("..", dir)) {
			key := filepath.Base(dir) + "." + name
			if !covered[key] && notReceivable[key] == "" {
				t.Errorf("%s is not exported by package runtime (errors.go)", key)
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
	if len(names) == 0 {
		t.Fatalf("no errors found in %s", dir)
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

// Package runtime declares its own types: no exported alias of another type
// (an actor's, say).
func TestNoExportedAliases(t *testing.T) {
	for _, g := range declarations(t, ".", token.TYPE) {
		for _, spec := range g.Specs {
			if ts := spec.(*ast.TypeSpec); ts.Assign.IsValid() && ts.Name.IsExported() {
				t.Errorf("%s is an alias", ts.Name.Name)
			}
		}
	}
}

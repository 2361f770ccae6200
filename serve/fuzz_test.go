package serve

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/runtime"
)

// FuzzStateFile: a topic's saved state, as the engine reads it at start. A
// file it can't trust is refused with an error naming the file (a guessed
// cursor would skip or repeat messages), never read as a zero state; what it
// accepts holds a cursor the runtime can be given back, and saved again reads
// the same.
func FuzzStateFile(f *testing.F) {
	for _, s := range []string{
		"{\n  \"topic\": \"general\",\n  \"cursor\": \"xmqZTCS2ghgT1Idd2SI5-T20\",\n  \"relay_last\": \"\"\n}\n",
		`{"topic": "alerts", "cursor": "1795235158074921", "relay_last": "1795235158091102"}`,
		`{"cursor": ""}`,
		`{"cursor": null}`,
		`{"topic": "general"}`,
		`{"cursor": "a b"}`,
		`{"cursor": "x"} {"cursor": "y"}`,
		`{"cursor": 5}`,
		`[]`,
		`{"cursor": "`,
		``,
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "t.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		file := stateFile{path: path}
		st, found, err := file.load()
		if err != nil {
			if found || st != (topicState{}) {
				t.Fatalf("refused (%v) with a state", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("the error doesn't name the file: %v", err)
			}
			return
		}
		if !found {
			t.Fatal("an existing file read as no state")
		}
		if !json.Valid(data) {
			t.Fatalf("accepted %q, which is not one JSON value", data)
		}
		if err := runtime.CheckCursor(st.Cursor); err != nil {
			t.Fatalf("accepted cursor %q: %v", st.Cursor, err)
		}
		if st.RelayLast != "" && stanza.CheckID(string(st.RelayLast)) != nil {
			t.Fatalf("accepted relay_last %q", st.RelayLast)
		}
		if err := file.save(st); err != nil {
			t.Fatalf("save: %v", err)
		}
		again, found, err := file.load()
		if err != nil || !found || again != st {
			t.Fatalf("round trip: %+v → %+v (%v)", st, again, err)
		}
	})
}

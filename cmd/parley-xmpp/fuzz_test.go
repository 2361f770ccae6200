package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/parley-go/parley-xmpp/runtime"
)

// FuzzTailState: tail's --state file of saved cursors. A refusal is a usage
// error (exit status 2) and no value; what it accepts holds cursors the
// runtime can be given back, and rewritten reads the same.
func FuzzTailState(f *testing.F) {
	for _, s := range []string{
		"{\n  \"general\": \"xmqZTCS2ghgT1Idd2SI5-T20\",\n  \"Team Chat\": \"1795235158074921\"\n}",
		`{"a": ""}`,
		`{"a": "b c"}`,
		`{"a": 1}`,
		`null`,
		`{}`,
		``,
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "cursors.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := loadCursors(path)
		if err != nil {
			if !errors.Is(err, errUsage) || c != nil {
				t.Fatalf("refused with %v, %v", c, err)
			}
			return
		}
		for _, cur := range c.m {
			if err := runtime.CheckCursor(cur); err != nil {
				t.Fatalf("accepted cursor %q: %v", cur, err)
			}
		}
		// tail saves a cursor after every message printed.
		if err := c.set("a topic", "xmqZTCS2ghgT1Idd2SI5-T20"); err != nil {
			t.Fatalf("set: %v", err)
		}
		again, err := loadCursors(path)
		if err != nil {
			t.Fatalf("rewritten, refused: %v", err)
		}
		if !reflect.DeepEqual(c.m, again.m) {
			t.Fatalf("round trip: %v → %v", c.m, again.m)
		}
	})
}

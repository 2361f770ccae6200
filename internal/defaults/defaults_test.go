package defaults

import (
	"testing"
	"time"
)

type cfg struct {
	N int
	D time.Duration
}

func TestMustBeSet(t *testing.T) {
	MustBeSet(cfg{N: 1, D: time.Second}, "N", "D") // all set: no panic
	for name, c := range map[string]cfg{"zero int": {D: 1}, "negative duration": {N: 1, D: -1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			MustBeSet(c, "N", "D")
		}()
	}
	defer func() {
		if recover() == nil {
			t.Error("a field that doesn't exist: no panic")
		}
	}()
	MustBeSet(cfg{N: 1, D: 1}, "Missing")
}

package vocab

import (
	"strings"
	"testing"
)

// Every state and every kind has a name of its own (logs and metrics labels
// show them); one outside the enum says so.
func TestNames(t *testing.T) {
	seen := map[string]bool{}
	for s := Connecting; s <= Closed; s++ {
		n := s.String()
		if strings.HasPrefix(n, "State(") || seen[n] {
			t.Errorf("state %d is named %q", int(s), n)
		}
		seen[n] = true
	}
	if got := State(99).String(); got != "State(99)" {
		t.Errorf("an unknown state is %q", got)
	}
	seen = map[string]bool{}
	for k := RoomRejoined; k <= RoomResumed; k++ {
		n := k.String()
		if strings.HasPrefix(n, "RoomEventKind(") || seen[n] {
			t.Errorf("kind %d is named %q", int(k), n)
		}
		seen[n] = true
	}
	if got := RoomEventKind(99).String(); got != "RoomEventKind(99)" {
		t.Errorf("an unknown kind is %q", got)
	}
}

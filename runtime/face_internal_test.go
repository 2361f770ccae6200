package runtime

import (
	"testing"

	"github.com/parley-go/parley-xmpp/actors/room"
	"github.com/parley-go/parley-xmpp/actors/session"
)

// The actors' states and event kinds become the runtime's by name.
func TestEventsMapByName(t *testing.T) {
	for s := session.Connecting; s <= session.Closed; s++ {
		if got := stateOf(s); got.String() != s.String() {
			t.Errorf("session state %s became %s", s, got)
		}
		c := stateChangeOf(session.StateChange{From: s, To: s, Attempt: 3})
		if c.From.String() != s.String() || c.To.String() != s.String() || c.Attempt != 3 {
			t.Errorf("state change %s became %+v", s, c)
		}
	}
	for k := room.Rejoined; k <= room.SubjectChanged; k++ {
		e := roomEventOf(room.Event{Topic: "t", Room: "r@muc", Kind: k, Affiliation: "member"})
		if e.Kind.String() != k.String() || e.Topic != "t" || e.Room != "r@muc" || e.Affiliation != "member" {
			t.Errorf("room event %s became %+v (%s)", k, e, e.Kind)
		}
	}
}

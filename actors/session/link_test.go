package session

import (
	"testing"

	"github.com/parley-go/parley-xmpp/observe"
)

// The metrics see each state under its own name, whatever the two enums'
// numbering.
func TestMetricStateMapsByName(t *testing.T) {
	for _, s := range []State{Connecting, Online, Reconnecting, Closed} {
		if got := metricState(s); got.String() != s.String() {
			t.Errorf("state %s reported to the metrics as %s", s, got)
		}
	}
	if metricState(Closed) != observe.Closed {
		t.Errorf("Closed is %v", metricState(Closed))
	}
}

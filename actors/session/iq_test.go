package session

import (
	"errors"
	"testing"
	"time"
)

func pending(id, qid string, timeout time.Duration, sent time.Time) *pendingIQ {
	return &pendingIQ{req: IQ{ID: id, QueryID: qid, Timeout: timeout}, sent: sent}
}

func TestIQTableMatchesByIDAndQuery(t *testing.T) {
	tb := newIQTable()
	t0 := time.Now()
	if err := tb.add(pending("a", "q1", time.Second, t0)); err != nil {
		t.Fatal(err)
	}
	if err := tb.add(pending("a", "", time.Second, t0)); !errors.Is(err, ErrDuplicateIQ) {
		t.Errorf("a second IQ with id a: %v", err)
	}
	if err := tb.add(pending("b", "q1", time.Second, t0)); !errors.Is(err, ErrDuplicateIQ) {
		t.Errorf("a second query q1: %v", err)
	}
	if err := tb.add(pending("c", "", time.Second, t0)); err != nil {
		t.Fatal(err)
	}
	if p, ok := tb.forQuery("q1"); !ok || p.req.ID != "a" {
		t.Errorf("query q1 is %v, %v", p, ok)
	}
	if _, ok := tb.take("a"); !ok {
		t.Fatal("a is not in flight")
	}
	if _, ok := tb.forQuery("q1"); ok {
		t.Error("q1 outlived its IQ")
	}
	if err := tb.add(pending("d", "q1", time.Second, t0)); err != nil {
		t.Errorf("q1 is free again: %v", err)
	}
	if all := tb.takeAll(); len(all) != 2 || len(tb.byID) != 0 || len(tb.byQuery) != 0 {
		t.Errorf("takeAll took %d, left %d and %d", len(all), len(tb.byID), len(tb.byQuery))
	}
}

// A loaded server's IQs get up to four smoothed round trips, never less than
// their timeout nor more than MaxIQStretch of it; a fixed one (the ping) just
// its timeout.
func TestIQDeadlineStretchesWithTheRoundTrip(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		name  string
		srtt  time.Duration
		fixed bool
		want  time.Duration
	}{
		{"prompt server", 10 * time.Millisecond, false, time.Second},
		{"loaded server", 500 * time.Millisecond, false, 2 * time.Second},
		{"capped", 10 * time.Second, false, MaxIQStretch * time.Second},
		{"fixed", 10 * time.Second, true, time.Second},
	} {
		tb := newIQTable()
		tb.srtt = c.srtt
		if got := tb.deadline(pending("x", "", time.Second, t0), c.fixed).Sub(t0); got != c.want {
			t.Errorf("%s: deadline after %s, want %s", c.name, got, c.want)
		}
	}
}

func TestIQTableSmoothsTheRoundTrip(t *testing.T) {
	tb := newIQTable()
	t0 := time.Unix(1000, 0)
	tb.answered(pending("x", "", time.Second, t0), t0.Add(800*time.Millisecond))
	if tb.srtt != 800*time.Millisecond {
		t.Fatalf("first round trip: srtt %s", tb.srtt)
	}
	tb.answered(pending("y", "", time.Second, t0), t0)
	if tb.srtt != 700*time.Millisecond {
		t.Errorf("a prompt answer moves srtt by an eighth: %s", tb.srtt)
	}
	tb.newLink()
	if tb.srtt != 0 {
		t.Error("a new link keeps the old round trips")
	}
}

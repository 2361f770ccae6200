package session

import (
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
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

// The registry finds a room's actor by any full JID in it, whatever the case,
// and forgets it by its actor.
func TestRoomRegistry(t *testing.T) {
	r := newRoomRegistry()
	a := actor.NewPID("local", "room-a")
	sub := actor.NewPID("local", "subscriber")
	r.add("Room@MUC.example", a)
	if pid, ok := r.of("room@muc.example/Alice"); !ok || pid != a {
		t.Errorf("an occupant's JID: %v, %v", pid, ok)
	}
	if !r.isRoom(a) || r.isRoom(sub) || r.len() != 1 {
		t.Error("isRoom or len is wrong")
	}
	r.forget(sub) // not a room: nothing happens
	r.forget(a)
	if _, ok := r.of("room@muc.example"); ok || r.len() != 0 || r.isRoom(a) {
		t.Error("a forgotten room is still there")
	}
}

func testPolicy(max int) linkPolicy {
	return newLinkPolicy(Reconnect{InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, MaxAttempts: max, StableAfter: 30 * time.Second}, 10*time.Second)
}

// A link lost soon after its login counts as the failed attempt it took; one
// that lived reconnects at once; one that lived StableAfter starts the
// backoff over.
func TestLinkPolicyDampsFlaps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		name        string
		up          time.Duration
		wantFlapped bool
		wantAttempt int
	}{
		{"died at once", 200 * time.Millisecond, true, 3},
		{"lived a while", 5 * time.Second, false, 0},
		{"lived long", time.Minute, false, 0},
	} {
		p := testPolicy(0)
		for range 3 {
			p.dialing()
		}
		p.loggedIn(t0)
		flapped, up := p.lost(t0.Add(c.up))
		if flapped != c.wantFlapped || up != c.up || p.attempt != c.wantAttempt {
			t.Errorf("%s: flapped %v, up %s, attempt %d", c.name, flapped, up, p.attempt)
		}
	}
}

func TestLinkPolicyBacksOffThenGivesUp(t *testing.T) {
	p := testPolicy(3)
	p.loggedIn(time.Unix(1000, 0))
	p.lost(time.Unix(2000, 0))
	var waits []time.Duration
	for {
		p.dialing()
		wait, giveUp := p.next()
		if giveUp {
			break
		}
		waits = append(waits, wait)
	}
	if len(waits) != 2 {
		t.Fatalf("gave up after %d waits, want 2 (MaxAttempts 3)", len(waits))
	}
	for _, w := range waits {
		if w < 50*time.Millisecond || w > 1500*time.Millisecond {
			t.Errorf("a wait of %s is outside the backoff (100 ms to 1 s, ±50%%)", w)
		}
	}
}

// A late ping's answer lengthens the next pings' wait, up to four
// KeepAliveTimeouts; a prompt one brings it back.
func TestLinkPolicyStretchesTheKeepalive(t *testing.T) {
	p := testPolicy(0)
	p.loggedIn(time.Unix(1000, 0))
	for _, c := range []struct {
		rtt      time.Duration
		wantWait time.Duration
		wantLate bool
	}{
		{time.Second, 10 * time.Second, false},
		{15 * time.Second, 30 * time.Second, true},
		{25 * time.Second, 40 * time.Second, false},
		{time.Minute, 40 * time.Second, true},
		{time.Second, 10 * time.Second, false},
	} {
		wait, late := p.pinged(c.rtt)
		if wait != c.wantWait || late != c.wantLate {
			t.Errorf("rtt %s: wait %s late %v, want %s %v", c.rtt, wait, late, c.wantWait, c.wantLate)
		}
		if p.pingTimeout() != keepAliveGrace*wait {
			t.Errorf("rtt %s: ping timeout %s", c.rtt, p.pingTimeout())
		}
	}
}

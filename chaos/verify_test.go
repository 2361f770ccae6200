package chaos

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/rawclient"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// archiveOf is a room log holding ids a0..a(n-1), read as the observer would.
func archiveOf(n int) *roomLog {
	l := newRoomLog("room@muc")
	for i := range n {
		l.add(rawclient.Row{ID: fmt.Sprintf("a%d", i), Body: fmt.Sprintf("body %d", i)})
	}
	return l
}

func deliver(r *recorder, ids ...int) {
	for _, i := range ids {
		r.add(seam.Message{BackendMsgID: seam.BackendMsgID(fmt.Sprintf("a%d", i))})
	}
}

// The incremental check finds every kind of fault in a subscriber's
// deliveries, whether the observer has read the archive before or after them.
func TestVerifierFindsLossDuplicatesReorderingPhantoms(t *testing.T) {
	for _, c := range []struct {
		name                                 string
		got                                  []int
		lost, duplicated, reordered, phantom int
	}{
		{name: "all in order", got: []int{0, 1, 2, 3, 4, 5}},
		{name: "one lost", got: []int{0, 1, 3, 4, 5}, lost: 1},
		{name: "the tail lost", got: []int{0, 1, 2}, lost: 3},
		{name: "one twice", got: []int{0, 1, 1, 2, 3, 4, 5}, duplicated: 1},
		{name: "one late", got: []int{0, 2, 1, 3, 4, 5}, reordered: 1},
		{name: "one early and again", got: []int{0, 4, 1, 2, 3, 4, 5}, reordered: 3, duplicated: 1},
		{name: "one the archive lacks", got: []int{0, 1, 2, 3, 4, 5, 9}, phantom: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, observerFirst := range []bool{true, false} {
				l := newRoomLog("room@muc")
				full := archiveOf(6)
				r := &recorder{}
				rep := &Report{}
				if observerFirst {
					l = full
				}
				deliver(r, c.got...)
				r.check(l, rep, false) // before the observer read anything: all wait
				l = full
				r.check(l, rep, false)
				r.check(l, rep, true)
				r.finish(l, rep)
				assert.Equal(t, [4]int{c.lost, c.duplicated, c.reordered, c.phantom},
					[4]int{r.lost, r.duplicated, r.reordered, r.phantom}, "lost, duplicated, reordered, phantom (observer first: %v)", observerFirst)
				if c.lost+c.duplicated+c.reordered+c.phantom > 0 {
					assert.NotEmpty(t, rep.Samples, "a problem is shown")
				}
			}
		})
	}
}

// A delivery the observer hasn't read yet waits, with those after it, and is
// checked in order once read.
func TestVerifierWaitsForTheObserver(t *testing.T) {
	l := archiveOf(3)
	r := &recorder{}
	rep := &Report{}
	deliver(r, 0, 1, 2, 3, 4)
	r.check(l, rep, false)
	assert.Equal(t, 3, r.next)
	assert.False(t, r.caughtUp(l), "two deliveries wait for the archive")
	l.add(rawclient.Row{ID: "a3"})
	l.add(rawclient.Row{ID: "a4"})
	l.add(rawclient.Row{ID: "a3"}) // answered again: left out
	r.check(l, rep, true)
	r.finish(l, rep)
	assert.True(t, r.caughtUp(l))
	assert.Equal(t, 1, l.repeats)
	assert.Zero(t, r.lost+r.duplicated+r.reordered+r.phantom)
}

// Every post has one outcome, and the archive decides the doubtful ones.
func TestPostAccounting(t *testing.T) {
	l := newRoomLog("room@muc")
	for i, body := range []string{"ok", "doubt-landed", "failed-landed", "twice", "twice", "wrong-id"} {
		l.add(rawclient.Row{ID: fmt.Sprintf("id%d", i), Body: body})
	}
	doubt := fmt.Errorf("post: %w", seam.ErrPostInDoubt)
	rep := &Report{}
	for _, p := range []postResult{
		{content: "ok", id: "id0"},
		{content: "doubt-landed", err: doubt},
		{content: "doubt-absent", err: doubt},
		{content: "failed-landed", err: errors.New("refused")},
		{content: "failed-absent", err: errors.New("refused")},
		{content: "twice", id: "id3"},
		{content: "wrong-id", id: "id0"},
		{content: "absent", id: "id9"},
	} {
		rep.account(p, l)
	}
	assert.Equal(t, 1, rep.Resolved)
	assert.Equal(t, 2, rep.InDoubt)
	assert.Equal(t, 1, rep.InDoubtLanded)
	assert.Equal(t, 1, rep.Failed)
	assert.Equal(t, 3, rep.Wrong, "failed yet landed; resolved with another id; resolved but absent")
	assert.Equal(t, 1, rep.ArchiveDuplicates)
	rep.Posts = 8
	assert.False(t, rep.OK())
}

// Recovery runs from the loss until every room of that runtime delivered after
// it was back online; a loss before that interrupts it.
func TestRecoveryNeedsEveryRoom(t *testing.T) {
	restarting := false
	r := newRecovery(2, func() bool { return restarting })
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r.state(0, runtime.StateChange{From: runtime.Online, To: runtime.Reconnecting, At: at(0)})
	r.delivered(0, 0, at(50)) // still down: not a recovery
	r.state(0, runtime.StateChange{From: runtime.Reconnecting, To: runtime.Online, At: at(100)})
	r.delivered(1, 0, at(150)) // another runtime
	r.delivered(0, 0, at(200))
	assert.Empty(t, r.durations, "room 1 has not delivered yet")
	r.delivered(0, 1, at(300))
	require.Equal(t, []time.Duration{300 * time.Millisecond}, r.durations)

	restarting = true
	r.state(0, runtime.StateChange{From: runtime.Online, To: runtime.Reconnecting, At: at(1000), Err: runtime.ErrKeepAlive})
	r.state(0, runtime.StateChange{From: runtime.Reconnecting, To: runtime.Online, At: at(1100)})
	r.state(0, runtime.StateChange{From: runtime.Online, To: runtime.Reconnecting, At: at(1200)})
	r.state(0, runtime.StateChange{From: runtime.Reconnecting, To: runtime.Online, At: at(1300)})
	r.delivered(0, 0, at(1400))
	r.delivered(0, 1, at(1500))
	assert.Equal(t, []time.Duration{300 * time.Millisecond, 300 * time.Millisecond}, r.durations)
	assert.Equal(t, []time.Duration{300 * time.Millisecond}, r.restarts)
	assert.Equal(t, 3, r.losses)
	assert.Equal(t, 1, r.keepalive)
	assert.Equal(t, 1, r.interrupted)
}

// A failed resumption (Reconnecting again, with the loss's error and
// "(resumption: why)") is counted by why; a failed login attempt is not.
func TestFailedResumptionsCounted(t *testing.T) {
	restarting := false
	r := newRecovery(1, func() bool { return restarting })
	again := func(err error) {
		r.state(0, runtime.StateChange{From: runtime.Reconnecting, To: runtime.Reconnecting, At: time.Now(), Err: err})
	}
	r.state(0, runtime.StateChange{From: runtime.Online, To: runtime.Reconnecting, At: time.Now()})
	again(errors.New("EOF (resumption: xmppconn: the server refused to resume the session (item-not-found))"))
	again(errors.New("EOF (resumption: context deadline exceeded)"))
	again(errors.New("xmppconn: login as a@b at c: dial tcp: connection refused"))
	restarting = true
	again(errors.New("read: connection reset by peer (resumption: xmppconn: the server refused to resume the session (item-not-found))"))
	assert.Equal(t, 2, r.refused)
	assert.Equal(t, 1, r.refusedRestart)
	assert.Equal(t, 1, r.windowPassed)
	assert.Equal(t, 1, r.losses)
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i))
	}
	assert.Equal(t, time.Duration(50), percentile(ds, 50))
	assert.Equal(t, time.Duration(99), percentile(ds, 99))
	assert.Equal(t, time.Duration(100), percentile(ds, 100))
	assert.Equal(t, time.Duration(7), percentile([]time.Duration{7}, 99))
	assert.Zero(t, percentile(nil, 50))
}

func TestParseWeights(t *testing.T) {
	w, err := parseWeights("kill=6, cut=2,slice=0")
	require.NoError(t, err)
	assert.Equal(t, map[Fault]int{Kill: 6, Cut: 2, Slice: 0}, w)
	o := Options{Faults: []Fault{Kill, Cut, Slice, Latency, Restart}, Weights: w}
	lf := o.linkFaults()
	assert.Len(t, lf, 9, "6 kills, 2 cuts, no slice, 1 latency, no restart (its own schedule)")
	for _, bad := range []string{"kill", "kill=x", "kill=-1", "restart=1", "nuke=2"} {
		_, err := parseWeights(bad)
		assert.Error(t, err, bad)
	}
}

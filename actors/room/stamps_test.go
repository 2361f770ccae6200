package room

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/seam"
)

func row(id string, stamp time.Time) archive.Entry {
	return archive.Entry{Message: seam.Message{BackendMsgID: seam.BackendMsgID(id), Timestamp: stamp}}
}

// The rule is learned from archive rows: ids that are their stamps in
// microseconds (ejabberd), whole-second stamps (Prosody), anything else; a
// row that contradicts a rule demotes it for good.
func TestStampRuleIsLearnedFromRows(t *testing.T) {
	at := time.Date(2026, 12, 7, 15, 28, 29, 678549000, time.UTC)
	for _, tc := range []struct {
		name string
		rows [][]archive.Entry
		want stampRule
	}{
		{"nothing read", nil, stampsUnknown},
		{"an empty read", [][]archive.Entry{{}}, stampsUnknown},
		{"ejabberd", [][]archive.Entry{{row("1796657309678549", at)}}, stampsFromID},
		{"prosody", [][]archive.Entry{{row("6b3c66ff-a445", at.Truncate(time.Second))}}, stampsSeconds},
		{"sub-second, random ids", [][]archive.Entry{{row("6b3c66ff-a445", at)}}, stampsOther},
		{"a later row contradicts the ids", [][]archive.Entry{{row("1796657309678549", at)}, {row("17", at)}}, stampsOther},
		{"a later row contradicts whole seconds", [][]archive.Entry{{row("x", at.Truncate(time.Second))}, {row("y", at)}}, stampsOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st stamps
			for _, r := range tc.rows {
				st.learn(r)
			}
			assert.Equal(t, tc.want, st.rule)
		})
	}
}

// A live message's stamp under each rule: the id's microseconds; the
// receipt's second, unless the receipt is near a second's boundary; none.
func TestLiveStampFollowsTheRule(t *testing.T) {
	sec := time.Date(2026, 12, 7, 15, 28, 29, 0, time.UTC)
	fromID := stamps{rule: stampsFromID}
	got, ok, _ := fromID.live("1796657309678549", sec)
	require.True(t, ok)
	assert.Equal(t, time.UnixMicro(1796657309678549).UTC(), got)
	_, ok, _ = fromID.live("not-a-number", sec)
	assert.False(t, ok)

	seconds := stamps{rule: stampsSeconds}
	got, ok, _ = seconds.live("x", sec.Add(500*time.Millisecond))
	require.True(t, ok)
	assert.Equal(t, sec, got)
	for _, tc := range []struct{ into, readAfter time.Duration }{
		{0, transitLag},
		{transitLag - 1, 1},
		{time.Second - clockSkew + 1, clockSkew - 1 + transitLag},
	} {
		_, ok, after := seconds.live("x", sec.Add(tc.into))
		assert.False(t, ok, "%v into the second is in doubt", tc.into)
		assert.Equal(t, tc.readAfter, after, "%v into the second: read once the doubt has passed", tc.into)
	}
	for _, r := range []stampRule{stampsUnknown, stampsOther} {
		_, ok, after := (&stamps{rule: r}).live("1796657309678549", sec)
		assert.False(t, ok)
		assert.Zero(t, after, "no doubt to wait out: read at once")
	}
}

// A live message whose stamp only the archive knows is not fanned out live:
// the room reads the archive after its last message (a catch-up); the post
// it answers resolves when the catch-up fans it out, not before (a read
// from the id Post returned relies on the room having fanned it out).
func TestUnknownStampIsReadFromTheArchive(t *testing.T) {
	r := joinedRig(t, nil)
	r.st.stamps = stamps{} // nothing learned
	sub := r.subscribe()
	pid, caller := r.caller()
	r.do(func(ctx actor.Context) { r.st.ledger.onPost(ctx, &Post{Origin: "o1", Content: "hi"}, pid) })
	m := reflection("s1", "me", "hi")
	m.OriginID = "o1"
	r.do(func(ctx actor.Context) { r.st.onMessage(ctx, m) })
	require.Eventually(t, func() bool { return len(r.queries()) == 1 }, time.Second, time.Millisecond)
	assert.Equal(t, catchingUp, r.st.fan.stream)
	assert.Empty(t, sub.all(), "not fanned out live")
	assert.Empty(t, caller.all(), "the post waits for the fan-out")

	// While that read runs, another such message asks for a read after it.
	r.do(func(ctx actor.Context) { r.st.onMessage(ctx, reflection("s2", "alice", "x")) })
	assert.True(t, r.st.fan.overflowed, "read again once the catch-up ends")

	// The archive's answer: the post resolves with the message's id as it is fanned out.
	archived := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	r.do(func(ctx actor.Context) {
		r.st.fan.onGap(ctx, &read{purpose: readGap, epoch: r.st.epoch}, &archive.Result{Entries: []archive.Entry{
			{Message: seam.Message{BackendMsgID: "s1", Cursor: "s1", Content: "hi", SenderHandle: "me", Timestamp: archived}, OriginID: "o1"}}})
	})
	got := caller.wait(t, 1)[0].(*Posted)
	assert.Equal(t, seam.BackendMsgID("s1"), got.ID)
	assert.Equal(t, archived, sub.wait(t, 1)[0].(*subscriber.Deliver).Msg.Timestamp)
}

// The catch-up for a message whose stamp only the archive knows delivers the
// archive's copy, with the archive's stamp, when the read has it; and the
// held live copy, with its best-guess stamp, when the archive never stored
// it: nothing the room saw is lost, nothing is delivered twice.
func TestCatchUpForAStampDeliversOnce(t *testing.T) {
	archived := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		entries []archive.Entry
		want    time.Time // the stamp delivered; zero: the live guess
	}{
		{"the archive has it", []archive.Entry{{Message: seam.Message{BackendMsgID: "s1", Cursor: "s1", Content: "x", Timestamp: archived}}}, archived},
		{"the archive never stored it", nil, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := joinedRig(t, nil)
			r.st.stamps = stamps{}
			sub := r.subscribe()
			r.do(func(ctx actor.Context) { r.st.onMessage(ctx, reflection("s1", "alice", "x")) })
			require.Equal(t, catchingUp, r.st.fan.stream)
			r.do(func(ctx actor.Context) {
				r.st.fan.onGap(ctx, &read{purpose: readGap, epoch: r.st.epoch}, &archive.Result{Entries: tc.entries})
			})
			got := sub.wait(t, 1)
			d := got[0].(*subscriber.Deliver)
			assert.Equal(t, seam.BackendMsgID("s1"), d.Msg.BackendMsgID)
			if !tc.want.IsZero() {
				assert.Equal(t, tc.want, d.Msg.Timestamp)
			}
			time.Sleep(20 * time.Millisecond)
			assert.Len(t, sub.all(), 1, "delivered once")
		})
	}
}

// A long-poll from the cursor of a message the room still holds for its
// stamp (a reader that got it from the archive first) is not answered with
// it, nor with what comes before it, when the catch-up fans them out: only
// with what comes after.
func TestLongPollSkipsWhatTheRoomHeldUpToItsCursor(t *testing.T) {
	r := joinedRig(t, nil)
	r.st.stamps = stamps{} // nothing learned: s1 and s2 are held
	pid, caller := r.caller()
	since := seam.Cursor("s2")
	r.do(func(ctx actor.Context) {
		r.st.onMessage(ctx, reflection("s1", "alice", "one"))
		r.st.onMessage(ctx, reflection("s2", "alice", "two"))
		r.st.reads.startWaiter(ctx, &Fetch{Since: &since, Limit: 5, Block: time.Minute, until: time.Now().Add(time.Minute)}, pid)
		var w *waiter
		for _, w = range r.st.reads.waiters {
		}
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readWaiter, waiter: w, epoch: r.st.epoch}, res: &archive.Result{NextCursor: "s2"}})
		// The catch-up fans out s1 and s2 (the archive's copies).
		at := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
		r.st.fan.onGap(ctx, &read{purpose: readGap, epoch: r.st.epoch}, &archive.Result{Entries: []archive.Entry{
			{Message: seam.Message{BackendMsgID: "s1", Cursor: "s1", Content: "one", Timestamp: at}},
			{Message: seam.Message{BackendMsgID: "s2", Cursor: "s2", Content: "two", Timestamp: at}}}})
		// s2 came during the first read: a second one, which finds nothing more.
		r.st.fan.onGap(ctx, &read{purpose: readGap, epoch: r.st.epoch}, &archive.Result{})
	})
	require.Equal(t, streaming, r.st.fan.stream)
	time.Sleep(20 * time.Millisecond)
	require.Empty(t, caller.all(), "s1 and s2 are not news to a reader from s2")
	r.st.stamps.learn([]archive.Entry{{Message: seam.Message{BackendMsgID: "x", Timestamp: midSecond.Truncate(time.Second)}}})
	r.do(func(ctx actor.Context) { r.st.onMessage(ctx, reflection("s3", "alice", "three")) })
	res := caller.wait(t, 1)[0].(*archive.Result)
	require.Len(t, res.Entries, 1)
	assert.Equal(t, seam.BackendMsgID("s3"), res.Entries[0].Message.BackendMsgID)
}

// Messages in the same doubt (just after a second's boundary, Prosody's
// whole-second stamps) share one archive read, sent once the doubt has
// passed: the first holds the stream and arms the read; the next ones wait
// with it rather than ask for reads of their own.
func TestMessagesInDoubtShareOneRead(t *testing.T) {
	r := joinedRig(t, nil)
	early := midSecond.Truncate(time.Second).Add(5 * time.Millisecond) // just after a boundary
	for _, id := range []string{"s1", "s2", "s3"} {
		m := reflection(id, "alice", id)
		m.Received = early
		r.do(func(ctx actor.Context) { r.st.onMessage(ctx, m) })
	}
	assert.Equal(t, catchingUp, r.st.fan.stream)
	assert.True(t, r.st.fan.stampRead, "one read armed")
	assert.False(t, r.st.fan.overflowed, "no read of their own for the later ones")
	assert.Len(t, r.st.fan.buffered, 3)
	assert.Empty(t, r.queries(), "nothing read before the doubt has passed")
}

// A long-poll from a cursor the room never held (a reader that takes a topic
// over, from a message before the room's join) is answered with what the room
// fans out next, even while a catch-up for a stamp runs. Before, a room
// catching up took any cursor it hadn't fanned out recently for one it held,
// and the long-poll skipped everything until its time ran out (30 s in serve:
// the cluster soak, issue 20).
func TestLongPollFromACursorTheRoomNeverHeld(t *testing.T) {
	r := joinedRig(t, nil)
	r.st.stamps = stamps{} // nothing learned: s5 is held for its stamp
	pid, caller := r.caller()
	since := seam.Cursor("s4") // before the join: never live here
	r.do(func(ctx actor.Context) {
		r.st.onMessage(ctx, reflection("s5", "alice", "five"))
		r.st.reads.startWaiter(ctx, &Fetch{Since: &since, Limit: 5, Block: time.Minute, until: time.Now().Add(time.Minute)}, pid)
		var w *waiter
		for _, w = range r.st.reads.waiters {
		}
		// The waiter's read ran before s5 was archived: nothing after s4.
		r.st.onArchive(ctx, &archiveAnswer{read: &read{purpose: readWaiter, waiter: w, epoch: r.st.epoch}, res: &archive.Result{NextCursor: "s4"}})
		at := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
		r.st.fan.onGap(ctx, &read{purpose: readGap, epoch: r.st.epoch}, &archive.Result{Entries: []archive.Entry{
			{Message: seam.Message{BackendMsgID: "s5", Cursor: "s5", Content: "five", Timestamp: at}}}})
	})
	res := caller.wait(t, 1)[0].(*archive.Result)
	require.Len(t, res.Entries, 1)
	assert.Equal(t, seam.BackendMsgID("s5"), res.Entries[0].Message.BackendMsgID)
}

// After a resumption the room reads the archive after its last message,
// holding live messages back: ejabberd routes what reached the old stream
// late, after newer messages. A message that comes late is delivered in
// archive order (from the read), its late live copy dropped, and a message
// newer than the read after it.
func TestResumptionReadsTheArchive(t *testing.T) {
	r := joinedRig(t, nil)
	sub := r.subscribe()
	r.do(func(ctx actor.Context) { r.st.onMessage(ctx, reflection("s1", "alice", "one")) })
	sub.wait(t, 1)
	r.do(func(ctx actor.Context) { r.st.afterResume(ctx) })
	require.Eventually(t, func() bool { return len(r.queries()) == 1 }, time.Second, time.Millisecond)
	require.Equal(t, catchingUp, r.st.fan.stream)
	// The new stream: s3 routed to it at once, s2 late from the old one.
	r.do(func(ctx actor.Context) {
		r.st.onMessage(ctx, reflection("s3", "alice", "three"))
		r.st.onMessage(ctx, reflection("s2", "alice", "two"))
	})
	time.Sleep(20 * time.Millisecond)
	assert.Len(t, sub.all(), 1, "held while the archive is read")
	at := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	r.do(func(ctx actor.Context) {
		r.st.fan.onGap(ctx, &read{purpose: readGap, epoch: r.st.epoch}, &archive.Result{Entries: []archive.Entry{
			{Message: seam.Message{BackendMsgID: "s2", Cursor: "s2", Content: "two", Timestamp: at}}}})
	})
	var ids []seam.BackendMsgID
	for _, m := range sub.wait(t, 3) {
		ids = append(ids, m.(*subscriber.Deliver).Msg.BackendMsgID)
	}
	assert.Equal(t, []seam.BackendMsgID{"s1", "s2", "s3"}, ids)
	time.Sleep(20 * time.Millisecond)
	assert.Len(t, sub.all(), 3, "each once")
	assert.Equal(t, streaming, r.st.fan.stream)

	// A resumption while a catch-up runs reads again after it.
	r.do(func(ctx actor.Context) { r.st.fan.startCatchUp(ctx); r.st.afterResume(ctx) })
	assert.True(t, r.st.fan.overflowed)
}

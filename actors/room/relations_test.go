package room

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/actors/archive"
	"github.com/parley-go/parley-xmpp/actors/subscriber"
	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/vocab"
	"github.com/parley-go/parley-xmpp/observe"
	"github.com/parley-go/parley-xmpp/seam"
)

// A relation's target older than the room's record (issue 23, item 2) is
// looked for in the archive, live and in FetchRecent alike. These tests run
// the room whole: the rig's host hands the archive's answers to the room, and
// a scripted archive answers its reads.

// roomHost runs the rig's steps and hands every other message to the room,
// as the room's own Receive would get it.
type roomHost struct{ room *Room }

func (h roomHost) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *run:
		m.f(ctx)
		close(m.done)
	case actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		h.room.Receive(ctx)
	}
}

// scriptedArchive holds a room's archive, oldest first, and answers the
// room's reads from it: after Since, before Before, or the newest.
type scriptedArchive struct {
	mu      sync.Mutex
	rows    []archive.Entry
	queries []archive.Query
}

func (a *scriptedArchive) Receive(ctx actor.Context) {
	q, ok := ctx.Message().(*archive.Query)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.queries = append(a.queries, *q)
	at := func(c seam.Cursor) int {
		for i, e := range a.rows {
			if e.Message.Cursor == c {
				return i
			}
		}
		return -1
	}
	var rows []archive.Entry
	switch {
	case q.Since != nil:
		from := 0
		if *q.Since != "" {
			from = at(*q.Since) + 1
		}
		rows = a.rows[from:min(len(a.rows), from+q.Limit)]
	case q.Before != nil:
		end := at(*q.Before)
		rows = a.rows[max(0, end-q.Limit):end]
	default:
		rows = a.rows[max(0, len(a.rows)-q.Limit):]
	}
	res := &archive.Result{Entries: append([]archive.Entry(nil), rows...)}
	if n := len(rows); n > 0 {
		res.NextCursor = rows[n-1].Message.Cursor
	}
	ctx.Respond(res)
}

func (a *scriptedArchive) add(e ...archive.Entry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rows = append(a.rows, e...)
}

func (a *scriptedArchive) asked() []archive.Query {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]archive.Query(nil), a.queries...)
}

var archivedAt = time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)

// archived is the archive's row for m, as the archive actor makes it.
func archived(m stanza.Message) archive.Entry {
	return archive.Entry{Message: stanza.SeamMessage("topic", "room@muc.example", m.From, m.Body, m.StanzaID.ID, m.OriginID, archivedAt),
		OriginID: m.OriginID, From: m.From, ID: m.ID, Body: m.Body, Rel: m.Rel}
}

// said is a message nick sent with id and origin-id sid's "o-" twin.
func said(sid, nick, body string, rel stanza.Relations) stanza.Message {
	m := reflection(sid, nick, body)
	m.ID, m.OriginID, m.Rel = "o-"+sid, "o-"+sid, rel
	return m
}

type unmatchedCounter struct {
	observe.NopRoom
	mu    sync.Mutex
	kinds []string
}

func (u *unmatchedCounter) UnmatchedRelation(kind string) {
	u.mu.Lock()
	u.kinds = append(u.kinds, kind)
	u.mu.Unlock()
}

func (u *unmatchedCounter) counted() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.kinds...)
}

// relRig is a joined room over a scripted archive holding history (the
// messages before the room's join: it has seen none of them), placed after
// its last row.
func relRig(t *testing.T, history []stanza.Message, tune func(*Config)) (*rig, *scriptedArchive, *unmatchedCounter) {
	metrics := &unmatchedCounter{}
	r := joinedRig(t, func(c *Config) {
		c.Metrics = metrics
		if tune != nil {
			tune(c)
		}
	})
	arch := &scriptedArchive{}
	for _, m := range history {
		arch.add(archived(m))
	}
	r.st.archive = r.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return arch }))
	r.host = r.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return roomHost{room: &Room{st: r.st}} }))
	r.st.fan.last = string(history[len(history)-1].StanzaID.ID)
	return r, arch, metrics
}

// history is alice's "the original" (h0) and n messages of bob's after it.
func history(n int) []stanza.Message {
	out := []stanza.Message{said("h0", "alice", "the original", stanza.Relations{})}
	for i := 1; i <= n; i++ {
		out = append(out, said(fmt.Sprintf("h%d", i), "bob", "filler", stanza.Relations{}))
	}
	return out
}

// Each relation a person can make to a message from before the room's join:
// live, it goes out mapped to the target, from the archive's copy, after the
// room read the rows before it; the message that came after it waits for it,
// and each goes out once, in order.
func TestRelationToAMessageBeforeTheJoin(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rel   stanza.Relations
		check func(t *testing.T, m seam.Message)
	}{
		{"a correction", stanza.Relations{Replace: "o-h0"}, func(t *testing.T, m seam.Message) {
			assert.Equal(t, seam.BackendMsgID("h0"), m.Replaces)
			assert.Equal(t, "x", m.Content)
		}},
		{"a retraction", stanza.Relations{Retract: "o-h0"}, func(t *testing.T, m seam.Message) {
			assert.Equal(t, seam.BackendMsgID("h0"), m.Retracts)
			assert.Empty(t, m.Content)
		}},
		{"a reaction", stanza.Relations{ReactTo: "h0", HasReactions: true, Reactions: []string{"👍"}}, func(t *testing.T, m seam.Message) {
			assert.Equal(t, seam.BackendMsgID("h0"), m.ReactsTo)
			assert.Equal(t, []string{"👍"}, m.Reactions)
		}},
		{"a reply", stanza.Relations{ReplyID: "h0", HasReply: true, Fallbacks: []stanza.Fallback{{For: stanza.NSReply, Ranges: [][2]int{{0, 1}}}}}, func(t *testing.T, m seam.Message) {
			assert.Equal(t, seam.BackendMsgID("h0"), m.InReplyTo)
			assert.Empty(t, m.Content, "the fallback is not content")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, arch, metrics := relRig(t, history(3), nil)
			sub := r.subscribe()
			rel := said("s1", "alice", "x", tc.rel)
			after := said("s2", "bob", "after", stanza.Relations{})
			arch.add(archived(rel), archived(after))
			r.do(func(ctx actor.Context) {
				r.st.onMessage(ctx, rel)
				r.st.onMessage(ctx, after)
			})
			got := sub.wait(t, 2)
			assert.Equal(t, []string{"s1", "s2"}, ids(got), "in order")
			tc.check(t, got[0].(*subscriber.Deliver).Msg)
			assert.Empty(t, metrics.counted(), "nothing unmatched")
			q := arch.asked()
			require.GreaterOrEqual(t, len(q), 2)
			require.NotNil(t, q[1].Before, "the second read looks back: %+v", q[1])
			assert.Equal(t, seam.Cursor("s1"), *q[1].Before)
			assert.Equal(t, r.st.cfg.TargetLookback, q[1].Limit)
			time.Sleep(20 * time.Millisecond)
			assert.Len(t, sub.all(), 2, "each once")
			var stream stream
			r.do(func(actor.Context) { stream = r.st.fan.stream })
			assert.Equal(t, streaming, stream)
		})
	}
}

// A target further back than TargetLookback rows is not found: the relation
// goes out as the plain message it is, counted once; live and FetchRecent
// (a fresh room's) agree on it, and on a relation within the bound.
func TestLookbackBoundAndFetchRecentAgree(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fillers int
		found   bool
	}{
		{"within the bound", 4, true}, // h0 is the 5th row before the correction
		{"past the bound", 5, false},  // the 6th
	} {
		t.Run(tc.name, func(t *testing.T) {
			tune := func(c *Config) { c.TargetLookback = 5 }
			r, arch, metrics := relRig(t, history(tc.fillers), tune)
			sub := r.subscribe()
			fix := said("s1", "alice", "the fix", stanza.Relations{Replace: "o-h0"})
			arch.add(archived(fix))
			r.do(func(ctx actor.Context) { r.st.onMessage(ctx, fix) })
			live := sub.wait(t, 1)[0].(*subscriber.Deliver).Msg
			if tc.found {
				assert.Equal(t, seam.BackendMsgID("h0"), live.Replaces)
				assert.Empty(t, metrics.counted())
			} else {
				assert.Empty(t, live.Replaces)
				assert.Equal(t, "the fix", live.Content)
				assert.Equal(t, []string{stanza.RelCorrection}, metrics.counted())
			}

			// A fresh room reads the newest row alone: the correction.
			fresh, farch, fmetrics := relRig(t, history(tc.fillers), tune)
			farch.add(archived(fix))
			pid, caller := fresh.caller()
			fresh.do(func(ctx actor.Context) { fresh.st.reads.fetch(ctx, &Fetch{Limit: 1}, pid) })
			res := caller.wait(t, 1)[0].(*archive.Result)
			require.NoError(t, res.Err)
			require.Len(t, res.Entries, 1)
			read := res.Entries[0].Message
			read.Timestamp, live.Timestamp = time.Time{}, time.Time{}
			assert.Equal(t, live, read, "FetchRecent and live agree")
			assert.Equal(t, metrics.counted(), fmetrics.counted())

			// Read again, it is not looked back for again, nor counted again.
			n := len(farch.asked())
			fresh.do(func(ctx actor.Context) { fresh.st.reads.fetch(ctx, &Fetch{Limit: 1}, pid) })
			caller.wait(t, 2)
			assert.Len(t, farch.asked(), n+1, "one read, no lookback")
			assert.Equal(t, metrics.counted(), fmetrics.counted())
		})
	}
}

// A page whose relation's target is earlier in the same page needs no
// lookback; one that names a message the room forgot (its record is
// bounded) does.
func TestLookbackOnlyForWhatThePageAndRecordLack(t *testing.T) {
	r, arch, metrics := relRig(t, history(2), func(c *Config) { c.DedupWindow = 3 })
	arch.add(archived(said("s1", "alice", "the fix", stanza.Relations{Replace: "o-h0"})))
	pid, caller := r.caller()
	since := seam.Cursor("")
	r.do(func(ctx actor.Context) { r.st.reads.fetch(ctx, &Fetch{Since: &since, Limit: 10}, pid) })
	res := caller.wait(t, 1)[0].(*archive.Result)
	require.Len(t, res.Entries, 4)
	assert.Equal(t, seam.BackendMsgID("h0"), res.Entries[3].Message.Replaces, "the target is in the page")
	assert.Len(t, arch.asked(), 1, "no lookback")

	// The record (3 messages) has forgotten h0 by now: a reaction to it,
	// live, is looked back for.
	sub := r.subscribe()
	r.do(func(actor.Context) { r.st.fan.last = "s1" })
	react := said("s2", "bob", "", stanza.Relations{ReactTo: "h0", HasReactions: true, Reactions: []string{"🎉"}})
	arch.add(archived(react))
	r.do(func(ctx actor.Context) { r.st.onMessage(ctx, react) })
	m := sub.wait(t, 1)[0].(*subscriber.Deliver).Msg
	assert.Equal(t, seam.BackendMsgID("h0"), m.ReactsTo)
	assert.Empty(t, metrics.counted())
}

// A relation held for its target whose archive copy the catch-up doesn't
// find (the archive never stored it) goes out as it was held, once, its
// relations applied with what the room knows.
func TestHeldRelationTheArchiveLacksGoesOutOnce(t *testing.T) {
	r, _, metrics := relRig(t, history(1), nil)
	sub := r.subscribe()
	r.do(func(ctx actor.Context) {
		r.st.onMessage(ctx, said("s1", "alice", "the fix", stanza.Relations{Replace: "o-h0"}))
	})
	m := sub.wait(t, 1)[0].(*subscriber.Deliver).Msg
	assert.Equal(t, seam.BackendMsgID("s1"), m.BackendMsgID)
	assert.Empty(t, m.Replaces, "no lookback for a message the archive lacks")
	assert.Equal(t, "the fix", m.Content)
	assert.Equal(t, []string{stanza.RelCorrection}, metrics.counted())
	time.Sleep(20 * time.Millisecond)
	assert.Len(t, sub.all(), 1)
}

// The room's subject is reported when it differs from the one last reported:
// the subject a first join shows (none: nothing), a change while in the
// room, and on a rejoin only a subject changed while the room was away.
func TestSubjectAtJoinAndAfter(t *testing.T) {
	r := newRig(t, nil)
	pid, events := r.caller()
	r.st.cfg.Notify = pid
	subject := func(phase phase, nick, text string) {
		r.do(func(ctx actor.Context) {
			r.st.occ.phase = phase
			r.st.onMessage(ctx, stanza.Message{Type: "groupchat", From: "room@muc.example/" + nick, Subject: text, HasSubject: true})
		})
	}
	reported := func() []string {
		var out []string
		for _, m := range events.all() {
			if e, ok := m.(*vocab.RoomEvent); ok && e.Kind == vocab.RoomSubjectChanged {
				out = append(out, e.By+": "+e.Subject)
			}
		}
		return out
	}
	subject(verifying, "alice", "the topic")    // the first join shows it
	subject(joined, "bob", "a new topic")       // a change
	subject(joined, "bob", "a new topic")       // the same again: no change
	subject(replaying, "bob", "a new topic")    // a rejoin shows the same
	subject(replaying, "carol", "changed away") // a rejoin shows a change
	subject(joined, "carol", "changed away")    // nothing new
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, []string{"alice: the topic", "bob: a new topic", "carol: changed away"}, reported())

	// A room without a subject shows an empty one at the first join: no event.
	r2 := newRig(t, nil)
	pid2, events2 := r2.caller()
	r2.st.cfg.Notify = pid2
	r2.do(func(ctx actor.Context) {
		r2.st.occ.phase = verifying
		r2.st.onMessage(ctx, stanza.Message{Type: "groupchat", From: "room@muc.example", HasSubject: true})
	})
	time.Sleep(20 * time.Millisecond)
	assert.Empty(t, events2.all())
}

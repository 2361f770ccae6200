package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// runDemo shows the runtime's promise end to end on a live server: two sessions
// sharing one account, topics joined on first use, posts resolved with the
// room's stanza-id, live delivery in order, a late reader catching up from the
// archive with the same ids, a long-poll, and a clean disconnect.
func runDemo(ctx context.Context, args []string, _ io.Reader, out, errOut io.Writer) error {
	fs := newFlags("demo", errOut)
	nTopics := fs.Int("topics", 3, "topics to use")
	nMsgs := fs.Int("messages", 5, "messages to post per topic")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *nTopics < 1 || *nMsgs < 1 {
		return fmt.Errorf("%w: -topics and -messages must be at least 1", errUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	d := &demo{out: out}
	return d.run(ctx, *nTopics, *nMsgs)
}

type demo struct {
	out  io.Writer
	step int
}

func (d *demo) say(what, detail string, took time.Duration) {
	d.step++
	t := ""
	if took > 0 {
		t = fmt.Sprintf("%8s", took.Round(100*time.Microsecond))
	}
	fmt.Fprintf(d.out, "%d. %-14s %-66s %s\n", d.step, what, detail, t)
}

func (d *demo) more(format string, a ...any) {
	fmt.Fprintf(d.out, "   %-14s %s\n", "", fmt.Sprintf(format, a...))
}

func (d *demo) run(ctx context.Context, nTopics, nMsgs int) error {
	fmt.Fprintf(d.out, "parley-xmpp demo: Parley topics as XMPP MUC rooms, on a live server\n\n")

	start := time.Now()
	a, err := connect(ctx)
	if err != nil {
		return fmt.Errorf("%w\n(is the server running? `make demo` starts a local one; or set PARLEY_XMPP_SERVICE)", err)
	}
	defer disconnect(a)
	b, err := connect(ctx)
	if err != nil {
		return err
	}
	defer disconnect(b)
	d.say("connect", fmt.Sprintf("sessions A (%s) and B (%s) share one account", a.Nick(), b.Nick()), time.Since(start))

	run := strings.ToLower(rand.Text()[:6])
	topics := make([]seam.Topic, nTopics)
	names := []string{"alpha", "Beta Team", "γάμμα", "delta", "echo", "foxtrot"}
	for i := range topics {
		topics[i] = seam.Topic(fmt.Sprintf("demo-%s/%s", run, names[i%len(names)]))
		if i >= len(names) {
			topics[i] += seam.Topic(fmt.Sprint(i))
		}
	}
	d.say("topics", fmt.Sprintf("%d topics, each its own MUC room, joined on first use:", nTopics), 0)
	for _, t := range topics {
		local, err := runtime.RoomLocalpart(t)
		if err != nil {
			return err
		}
		d.more("%-22q → %s@…", string(t), local)
	}

	// B subscribes to every topic.
	start = time.Now()
	var mu sync.Mutex
	got := map[seam.Topic][]seam.Message{}
	all := make(chan struct{})
	want := nTopics * nMsgs
	count := 0
	for _, t := range topics {
		sub, err := b.Subscribe(ctx, t, func(m seam.Message) {
			mu.Lock()
			defer mu.Unlock()
			got[m.Topic] = append(got[m.Topic], m)
			if count++; count == want {
				close(all)
			}
		})
		if err != nil {
			return err
		}
		defer sub.Close()
	}
	d.say("subscribe", fmt.Sprintf("B subscribes to all %d topics (joins the rooms; no history replayed)", nTopics), time.Since(start))

	// A posts to every topic, concurrently across topics.
	start = time.Now()
	posted := map[seam.Topic][]seam.BackendMsgID{}
	var lat []time.Duration
	var wg sync.WaitGroup
	var postErr error
	for _, t := range topics {
		wg.Go(func() {
			for i := range nMsgs {
				t0 := time.Now()
				id, err := a.Post(ctx, t, "demo", fmt.Sprintf("message %d to %s, hi @%s", i+1, t, b.Nick()), seam.PostOptions{})
				mu.Lock()
				if err != nil {
					postErr = errors.Join(postErr, err)
				} else {
					posted[t] = append(posted[t], id)
					lat = append(lat, time.Since(t0))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if postErr != nil {
		return postErr
	}
	slices.Sort(lat)
	d.say("post", fmt.Sprintf("A posts %d messages (%d per topic), each resolved by its reflection", want, nMsgs), time.Since(start))
	d.more("post → stanza-id: p50 %s, max %s", lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))

	start = time.Now()
	select {
	case <-all:
	case <-ctx.Done():
		return fmt.Errorf("live delivery: only %d of %d messages arrived", count, want)
	}
	mu.Lock()
	lost, dup, reord := compare(topics, posted, got)
	mu.Unlock()
	d.say("live", fmt.Sprintf("B received %d/%d: %d lost, %d duplicated, %d out of order", count, want, lost, dup, reord), time.Since(start))
	sample := got[topics[0]][0]
	d.more("e.g. %q from %s, id %s, mentions %v", sample.Content, sample.SenderHandle, sample.BackendMsgID, sample.Mentions)

	// A late third session catches up from the archive.
	start = time.Now()
	c, err := connect(ctx)
	if err != nil {
		return err
	}
	defer disconnect(c)
	caught := map[seam.Topic][]seam.Message{}
	for _, t := range topics {
		from := seam.Cursor("")
		for {
			res, err := c.FetchRecent(ctx, seam.FetchRecentArgs{Topic: t, Since: &from, Limit: 2})
			if err != nil {
				return err
			}
			caught[t] = append(caught[t], res.Messages...)
			if len(res.Messages) == 0 {
				break
			}
			from = res.NextCursor
		}
	}
	cl, cd, cr := compare(topics, posted, caught)
	same := 0
	for _, t := range topics {
		for i, m := range caught[t] {
			if i < len(got[t]) && got[t][i].BackendMsgID == m.BackendMsgID && got[t][i].Cursor == m.Cursor {
				same++
			}
		}
	}
	d.say("catch-up", "late session C pages every topic from the start (MAM, 2 per page)", time.Since(start))
	d.more("%d/%d messages, %d lost, %d duplicated, %d out of order; %d/%d with the same id and cursor as live", len(flatten(caught)), want, cl, cd, cr, same, want)

	// A long-poll at the tail wakes on the next post.
	start = time.Now()
	tail, err := c.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topics[0], Limit: 1})
	if err != nil {
		return err
	}
	woke := make(chan time.Duration, 1)
	var wakeErr error
	go func() {
		t0 := time.Now()
		res, err := c.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topics[0], Since: &tail.NextCursor, Block: 10 * time.Second})
		if err == nil && len(res.Messages) != 1 {
			err = fmt.Errorf("long-poll woke with %d messages", len(res.Messages))
		}
		wakeErr = err
		woke <- time.Since(t0)
	}()
	time.Sleep(50 * time.Millisecond)
	if _, err := a.Post(ctx, topics[0], "demo", "wake up", seam.PostOptions{}); err != nil {
		return err
	}
	w := <-woke
	if wakeErr != nil {
		return wakeErr
	}
	d.say("long-poll", fmt.Sprintf("C blocks at the tail of %q; A posts 50 ms later; C wakes after %s", topics[0], w.Round(100*time.Microsecond)), time.Since(start))

	start = time.Now()
	disconnect(a)
	_, err = a.Post(ctx, topics[0], "demo", "too late", seam.PostOptions{})
	d.say("disconnect", fmt.Sprintf("A disconnects; a post after it fails with %q", errText(err)), time.Since(start))

	fmt.Fprintln(d.out)
	if lost+dup+reord+cl+cd+cr == 0 && same == want && errors.Is(err, seam.ErrDisconnected) {
		fmt.Fprintf(d.out, "ok: %d messages on %d topics, none lost, duplicated or reordered, live or caught up.\n", want, nTopics)
		return nil
	}
	return errors.New("the demo found a problem (see above)")
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()[strings.LastIndex(err.Error(), ": ")+2:]
}

func flatten(m map[seam.Topic][]seam.Message) []seam.Message {
	var out []seam.Message
	for _, v := range m {
		out = append(out, v...)
	}
	return out
}

// compare counts, per topic, messages posted but not seen, seen more than once,
// and seen out of posting order.
func compare(topics []seam.Topic, posted map[seam.Topic][]seam.BackendMsgID, seen map[seam.Topic][]seam.Message) (lost, dup, reordered int) {
	for _, t := range topics {
		pos := map[seam.BackendMsgID]int{}
		for i, id := range posted[t] {
			pos[id] = i
		}
		count := map[seam.BackendMsgID]int{}
		last := -1
		for _, m := range seen[t] {
			count[m.BackendMsgID]++
			if count[m.BackendMsgID] > 1 {
				dup++
				continue
			}
			if p, ok := pos[m.BackendMsgID]; ok {
				if p < last {
					reordered++
				}
				last = p
			}
		}
		for _, id := range posted[t] {
			if count[id] == 0 {
				lost++
			}
		}
	}
	return lost, dup, reordered
}

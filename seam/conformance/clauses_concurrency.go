package conformance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

// Concurrency: clauses 23-24.

// writeConcurrently posts perWriter messages from each of writers independent
// connections at once: Fixture.ConcurrentPost, or NewBackend connections. It
// returns each writer's contents in posting order.
func (s *suite) writeConcurrently(t *testing.T, topic seam.Topic, writers, perWriter int) [][]string {
	t.Helper()
	plan := make([][]string, writers)
	for i := range plan {
		for j := range perWriter {
			plan[i] = append(plan[i], fmt.Sprintf("writer %d post %02d", i, j))
		}
	}
	if s.f.ConcurrentPost != nil {
		require.NoError(t, s.f.ConcurrentPost(opCtx(t, 0), topic, plan), "ConcurrentPost")
		return plan
	}
	backends := make([]seam.Backend, writers)
	for i := range backends {
		backends[i] = s.newBackend(t)
	}
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for i, b := range backends {
		wg.Go(func() {
			for _, c := range plan[i] {
				if _, err := b.Post(opCtx(t, 0), topic, identity, c, seam.PostOptions{}); err != nil {
					errs <- fmt.Errorf("writer %d: %q: %w", i, c, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return plan
}

// requireWritersInOrder checks that every writer's posts appear in its own order.
func requireWritersInOrder(t *testing.T, plan [][]string, got []seam.Message) {
	t.Helper()
	for i, want := range plan {
		var mine []string
		for _, m := range got {
			if strings.HasPrefix(m.Content, fmt.Sprintf("writer %d post ", i)) {
				mine = append(mine, m.Content)
			}
		}
		require.Equal(t, want, mine, "writer %d's posts, each once, in its order", i)
	}
}

// 23. A reader running alongside 4 writers x 25 posts loses, duplicates and
// reorders nothing.
func clause23(s *suite, t *testing.T) {
	const writers, perWriter = 4, 25
	total := writers * perWriter
	topic := s.topic()
	start := s.tail(t, topic, "seed")

	// The reader long-polls (or polls) from the seed until it has read as many
	// messages as were written; once the writers are done, stopBlocking ends its
	// wait and it drains what is left without blocking. However the test ends,
	// the reader is stopped and waited for.
	stopBlocking, cancelBlocking := context.WithCancel(context.Background())
	quit, stopReader := context.WithCancel(context.Background())
	type reading struct {
		msgs []seam.Message
		err  error
	}
	readerDone, readerExited, readerStarted := make(chan reading, 1), make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { cancelBlocking(); stopReader(); <-readerExited })
	go func() {
		defer close(readerExited)
		var got []seam.Message
		cur := start
		close(readerStarted)
		for len(got) < total && quit.Err() == nil {
			args := seam.FetchRecentArgs{Topic: topic, Since: &cur}
			c := quit
			if s.f.Capabilities.BlockingFetch && stopBlocking.Err() == nil {
				args.Block, c = 2*time.Second, stopBlocking
			}
			c, cancel := context.WithTimeout(c, opTimeout+args.Block)
			r, err := s.f.Backend.FetchRecent(c, args)
			cancel()
			switch {
			case err != nil && args.Block > 0 && stopBlocking.Err() != nil:
				continue // the wait was cut short on purpose: drain without blocking
			case err != nil:
				readerDone <- reading{got, fmt.Errorf("FetchRecent(%s): %w", describe(args), err)}
				return
			case len(r.Messages) == 0 && args.Block == 0:
				if stopBlocking.Err() != nil {
					readerDone <- reading{got, nil} // writers done and nothing left: caught up
					return
				}
				time.Sleep(10 * time.Millisecond) // polling interval of a backend without long-poll
			}
			got = append(got, r.Messages...)
			if len(r.Messages) > 0 {
				cur = r.NextCursor
			}
		}
		readerDone <- reading{got, quit.Err()}
	}()

	<-readerStarted
	plan := s.writeConcurrently(t, topic, writers, perWriter)
	cancelBlocking()
	var read reading
	select {
	case read = <-readerDone:
	case <-time.After(opTimeout):
		require.FailNow(t, "the reader did not catch up with the writers")
	}
	require.NoError(t, read.err, "reader")

	archive := fetchAllSince(t, s.f.Backend, topic, start)
	require.Len(t, archive, total, "the archive holds every post once")
	requireUnique(t, ids(archive), "ids")
	require.Equal(t, ids(archive), ids(read.msgs), "the reader saw the archive: nothing lost, duplicated or reordered")
	requireWritersInOrder(t, plan, archive)
}

// 24. After concurrent writes all ids and cursors are unique, and fetching since
// the k-th cursor returns exactly the messages after it.
func clause24(s *suite, t *testing.T) {
	const writers, perWriter = 4, 10
	topic := s.topic()
	start := s.tail(t, topic, "seed")
	plan := s.writeConcurrently(t, topic, writers, perWriter)

	all := fetchAllSince(t, s.f.Backend, topic, start)
	require.Len(t, all, writers*perWriter, "every post once")
	requireUnique(t, ids(all), "ids")
	requireUnique(t, cursors(all), "cursors")
	requireWritersInOrder(t, plan, all)
	n := len(all)
	ks := slices.Compact([]int{0, 1, 2, n / 3, n / 2, 2 * n / 3, n - 2, n - 1})
	for _, k := range ks {
		after := fetchAllSince(t, s.f.Backend, topic, all[k].Cursor)
		require.Equal(t, ids(all[k+1:]), ids(after), "since the cursor of message %d", k)
	}
}

package runtime_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// A subscriber whose queue filled catches up from the room's ring and, for what
// the ring no longer holds in memory (a ring of one byte holds only the newest
// message's content), from the archive. When a read for it returns less than
// the room has meanwhile received (the next message came in while the server
// answered), it must go on at once: waiting for the subscriber's next
// acknowledgement would wait forever, because a subscriber acknowledges in
// batches and one message short of a batch says nothing.
func TestLaggingSubscriberReadsOnWhenTheRoomMovedDuringItsRead(t *testing.T) {
	laggingSubscriber(t, false)
}

// The same when the archive trails the room (ejabberd reflects a message before
// it commits it): reading on finds nothing at first, and the subscriber looks
// again instead of skipping to the room's newest message.
func TestLaggingSubscriberWaitsForAnArchiveThatTrailsTheRoom(t *testing.T) {
	laggingSubscriber(t, true)
}

func laggingSubscriber(t *testing.T, trailing bool) {
	var mu sync.Mutex
	var archived []string // ids, oldest first
	archive := func(id string) { mu.Lock(); archived = append(archived, id); mu.Unlock() }
	rows := func(st *xmpptest.Stream, q mamQuery, ids []string) {
		for _, id := range ids {
			row(st, hostileRoom, q.queryID, id, "alice", "<body>"+id+"</body>")
		}
		if len(ids) == 0 {
			fin(st, q, true, "", "")
			return
		}
		fin(st, q, true, ids[0], ids[len(ids)-1])
	}
	var live *xmpptest.Stream
	send := func(id string) {
		live.Send(`<message type='groupchat' from='%s/alice' to='%s'><body>%s</body><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='%s'/></message>`, hostileRoom, live.JID, id, hostileRoom, id)
	}
	f := &fakeMUC{onMAM: func(st *xmpptest.Stream, q mamQuery) {
		mu.Lock()
		ids := slices.Clone(archived)
		mu.Unlock()
		switch {
		case q.last: // the tail, while joining: an empty room
			rows(st, q, nil)
		case q.before != "": // the check that a cursor exists: the row before
			i := slices.Index(ids, q.before)
			if i <= 0 {
				rows(st, q, nil)
				return
			}
			rows(st, q, ids[i-1:i])
		case q.after == "m8":
			// The first read for the lagging subscriber: m11 reaches the room
			// while the server answers with part of what it had, m9.
			send("m11")
			if trailing {
				time.AfterFunc(500*time.Millisecond, func() { archive("m11") })
			} else {
				archive("m11")
			}
			time.Sleep(300 * time.Millisecond)
			rows(st, q, []string{"m9"})
		default:
			i := slices.Index(ids, q.after)
			rest := ids[i+1:]
			rows(st, q, rest[:min(len(rest), q.max)])
		}
	}}
	rt := hostileRuntime(t, f, func(c *runtime.Config) { c.SubscriberBuffer = 8; c.RingBytes = 1 })
	release := make(chan struct{}, 100)
	got := make(chan string, 100)
	sub, err := rt.Subscribe(ctx5(t), hostileTopic, func(m seam.Message) {
		got <- string(m.BackendMsgID)
		<-release
	})
	require.NoError(t, err)
	defer sub.Close()
	live = f.stream()

	// m1…m8 fill the subscriber's queue (it holds on to m1); m9 finds it full,
	// and the ring keeps m9's id but only m10's content.
	for i := 1; i <= 10; i++ {
		id := fmt.Sprintf("m%d", i)
		archive(id)
		send(id)
	}
	time.Sleep(300 * time.Millisecond) // the room has them all
	for range 10 {
		release <- struct{}{}
	}
	var ids []string
	for len(ids) < 11 {
		select {
		case id := <-got:
			ids = append(ids, id)
		case <-time.After(5 * time.Second):
			t.Fatalf("delivered so far: %v", ids)
		}
	}
	require.Equal(t, []string{"m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10", "m11"}, ids)
	close(release)
}

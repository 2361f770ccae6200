package runtime_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Server-side behaviour that differs between Prosody and ejabberd, made the
// same at the seam. Every test here runs against each dev server (make test runs
// the package once per server).

// With PersistentRooms, a room the runtime creates keeps its history after
// every occupant has left, on a service whose rooms are not persistent by
// default; the control, without the option, loses it.
func TestPersistentRoomsKeepHistory(t *testing.T) {
	s := xmpptest.Require(t)
	for _, persistent := range []bool{true, false} {
		name := map[bool]string{true: "persistent", false: "control"}[persistent]
		t.Run(name, func(t *testing.T) {
			topic := freshTopic()
			writer := connected(t, newRuntime(t, s, 0, func(c *runtime.Config) {
				c.MUCService, c.PersistentRooms = s.Transient, persistent
			}))
			id, err := writer.Post(ctx5(t), topic, "me", "will it last?", seam.PostOptions{})
			require.NoError(t, err)
			require.NoError(t, writer.Disconnect(ctx5(t))) // the last occupant leaves
			time.Sleep(300 * time.Millisecond)

			reader := connected(t, newRuntime(t, s, 1, func(c *runtime.Config) { c.MUCService = s.Transient }))
			res, err := reader.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic})
			require.NoError(t, err)
			if persistent {
				require.Len(t, res.Messages, 1, "the history survived")
				assert.Equal(t, id, res.Messages[0].BackendMsgID)
			} else {
				assert.Empty(t, res.Messages, "the control: the room and its history went with its last occupant")
			}
		})
	}
}

// Cold creation with different accounts: 20 runtimes over four accounts join
// one brand-new room at the same instant; all succeed, and the room ends up
// unlocked and archiving.
func TestColdCreationAcrossAccounts(t *testing.T) {
	s := xmpptest.Require(t)
	rts := make([]*runtime.Runtime, 20)
	for i := range rts {
		rts[i] = connected(t, newRuntime(t, s, i%len(s.Accounts), nil))
	}
	topic := freshTopic()
	start := make(chan struct{})
	errs := make([]error, len(rts))
	var wg sync.WaitGroup
	for i, rt := range rts {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, errs[i] = rt.Subscribe(ctx, topic, func(seam.Message) {})
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "runtime %d (account %s)", i, s.Accounts[i%len(s.Accounts)][0])
	}
	t.Logf("%d cold joins over %d accounts took %s", len(rts), len(s.Accounts), time.Since(t0))
	id, err := rts[3].Post(ctx5(t), topic, "me", "after the race", seam.PostOptions{})
	require.NoError(t, err)
	res, err := rts[6].FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic})
	require.NoError(t, err)
	require.Len(t, res.Messages, 1)
	assert.Equal(t, id, res.Messages[0].BackendMsgID)
}

// An unknown cursor is an error on both servers (Prosody answers item-not-found;
// ejabberd answers with another page, which the runtime catches), for a cursor
// shaped like each server's ids.
func TestUnknownCursorOnEveryServer(t *testing.T) {
	s := xmpptest.Require(t)
	rt := connected(t, newRuntime(t, s, 0, nil))
	topic := freshTopic()
	for range 3 {
		_, err := rt.Post(ctx5(t), topic, "me", "history", seam.PostOptions{})
		require.NoError(t, err)
	}
	for _, bogus := range []seam.Cursor{"1795243368850213", "A_qYeFZOuHEmrRiOmxADtfe3", "not-a-cursor"} {
		res, err := rt.FetchRecent(ctx5(t), seam.FetchRecentArgs{Topic: topic, Since: &bogus})
		assert.ErrorIs(t, err, seam.ErrUnknownCursor, "%q gave %d messages", bogus, len(res.Messages))
		assert.Empty(t, res.Messages)
	}
}

package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/etcdtest"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/serve"
)

// EditCursor excludes the nodes both ways: while a node holds a topic's lock
// it waits, then fails (ErrLockHeld) writing nothing; while it holds the lock
// a node's acquire waits; the node that takes the lock after it reads the
// edited cursor. The cursor keeps its node and relay_last; ReadCursors reads
// it back.
func TestEditCursorTakesTheNodesLock(t *testing.T) {
	e := etcdtest.Start(t)
	c := &config.Cluster{Name: "edit-test", Etcd: config.Etcd{Endpoints: []string{e.ClientURL}}, LeaseTTL: config.Duration(2 * time.Second)}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.ClientURL}, DialTimeout: 5 * time.Second, Logger: quietZap()})
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := keysOf(c.Name)
	topic := serve.Topic{Route: "r/1", Topic: "room a"}
	other := serve.Topic{Route: "r/1", Topic: "b"}
	ident := identity(topic)

	// A node delivers the topic: it holds the lock and wrote a cursor.
	node, err := concurrency.NewSession(cli, concurrency.WithTTL(2))
	require.NoError(t, err)
	defer node.Close()
	l, err := acquire(ctx, cli, node, k.lock(ident), "node-1", time.Second, nil)
	require.NoError(t, err)
	require.NoError(t, (&etcdStore{l: l, cursorKey: k.cursor(ident), t: topic, refused: func() {}}).
		Save(ctx, serve.State{Cursor: "c1", RelayLast: "d1"}))

	got, err := ReadCursors(ctx, c, []serve.Topic{topic, other})
	require.NoError(t, err)
	assert.Equal(t, []Cursor{{State: serve.State{Cursor: "c1", RelayLast: "d1"}, Found: true, Node: "node-1"}, {}}, got)

	edits, waits := 0, 0
	setTo := func(cursor string) func(context.Context, serve.State, bool) (serve.State, error) {
		return func(_ context.Context, st serve.State, _ bool) (serve.State, error) {
			edits++
			st.Cursor = seam.Cursor(cursor)
			return st, nil
		}
	}
	start := time.Now()
	err = EditCursor(ctx, c, topic, EditOptions{Owner: "cmd", Wait: 700 * time.Millisecond, Waiting: func() { waits++ }}, setTo("c2"))
	require.ErrorIs(t, err, ErrLockHeld)
	assert.Contains(t, err.Error(), "held by node node-1")
	assert.Contains(t, err.Error(), "stop the node delivering it, or retry")
	assert.GreaterOrEqual(t, time.Since(start), 700*time.Millisecond, "it waited")
	assert.Equal(t, 0, edits, "edit not called without the lock")
	assert.Equal(t, 1, waits)
	got, err = ReadCursors(ctx, c, []serve.Topic{topic})
	require.NoError(t, err)
	assert.Equal(t, serve.State{Cursor: "c1", RelayLast: "d1"}, got[0].State, "unchanged")
	resp, err := cli.Get(ctx, k.lock(ident))
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	assert.Equal(t, l.rev, resp.Kvs[0].CreateRevision, "the node's lock is untouched")

	// The node releases: the edit goes through, and while it holds the lock
	// the node can't take it back.
	l.release()
	err = EditCursor(ctx, c, topic, EditOptions{Owner: "cmd", Wait: time.Second}, func(ctx context.Context, st serve.State, found bool) (serve.State, error) {
		assert.True(t, found)
		assert.Equal(t, serve.State{Cursor: "c1", RelayLast: "d1"}, st)
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		_, err := acquire(short, cli, node, k.lock(ident), "node-1", time.Second, nil)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "a node can't take the lock during the edit")
		return setTo("c2")(ctx, st, found)
	})
	require.NoError(t, err)
	l2, err := acquire(ctx, cli, node, k.lock(ident), "node-1", time.Second, nil)
	require.NoError(t, err, "released")
	defer l2.release()
	resp, err = cli.Get(ctx, k.cursor(ident))
	require.NoError(t, err)
	var saved map[string]any
	require.NoError(t, json.Unmarshal(resp.Kvs[0].Value, &saved))
	assert.Equal(t, "c2", saved["cursor"])
	assert.Equal(t, "d1", saved["relay_last"], "relay_last kept")
	assert.Equal(t, "node-1", saved["node"], "the node that wrote it last")
	assert.Equal(t, "cmd", saved["edited_by"])
	assert.Equal(t, "r/1", saved["route"])
	assert.Equal(t, "room a", saved["topic"])

	// An edit that fails writes nothing (and frees the lock: l2 is the
	// node's again, so release it first).
	l2.release()
	boom := errors.New("boom")
	err = EditCursor(ctx, c, topic, EditOptions{Owner: "cmd", Wait: time.Second}, func(context.Context, serve.State, bool) (serve.State, error) {
		return serve.State{Cursor: "c3"}, boom
	})
	require.ErrorIs(t, err, boom)
	got, err = ReadCursors(ctx, c, []serve.Topic{topic})
	require.NoError(t, err)
	assert.Equal(t, serve.State{Cursor: "c2", RelayLast: "d1"}, got[0].State)
	resp, err = cli.Get(ctx, k.lock(ident))
	require.NoError(t, err)
	assert.Empty(t, resp.Kvs, "the lock is released")

	// A topic with no cursor yet: found false, the cursor is created.
	err = EditCursor(ctx, c, other, EditOptions{Owner: "cmd", Wait: time.Second}, func(_ context.Context, st serve.State, found bool) (serve.State, error) {
		assert.False(t, found)
		st.Cursor = ""
		return st, nil
	})
	require.NoError(t, err)
	got, err = ReadCursors(ctx, c, []serve.Topic{other})
	require.NoError(t, err)
	assert.Equal(t, Cursor{Found: true}, got[0])
}

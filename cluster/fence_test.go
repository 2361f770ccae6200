package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/parley-go/parley-xmpp/internal/etcdtest"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/serve"
)

// The lock is exclusive, and a holder whose lease ended (a paused or cut-off
// node) can neither deliver (Check) nor write its cursor (Save) once another
// node took the lock: its late writes are refused and the cursor stays the
// new owner's.
func TestLateWritesAreRefused(t *testing.T) {
	e := etcdtest.Start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.ClientURL}, DialTimeout: 5 * time.Second, Logger: quietZap()})
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := keysOf("fence-test")
	topic := serve.Topic{Route: "r/1", Topic: "room a"}
	ident := identity(topic)
	refused := 0
	store := func(l *lock) *etcdStore {
		return &etcdStore{l: l, cursorKey: k.cursor(ident), t: topic, refused: func() { refused++ }}
	}
	cursor := func() savedCursor {
		resp, err := cli.Get(ctx, k.cursor(ident))
		require.NoError(t, err)
		require.Len(t, resp.Kvs, 1)
		c, err := decodeCursor(k.cursor(ident), resp.Kvs[0].Value)
		require.NoError(t, err)
		return c
	}

	s1, err := concurrency.NewSession(cli, concurrency.WithTTL(2))
	require.NoError(t, err)
	l1, err := acquire(ctx, cli, s1, k.lock(ident), "node-1", time.Second, nil)
	require.NoError(t, err)
	st1 := store(l1)
	require.NoError(t, st1.Check(ctx))
	require.NoError(t, st1.Save(ctx, serve.State{Cursor: "c1"}))

	// Held: another session waits.
	s2, err := concurrency.NewSession(cli, concurrency.WithTTL(2))
	require.NoError(t, err)
	defer s2.Close()
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	helds := 0
	_, err = acquire(short, cli, s2, k.lock(ident), "node-2", time.Second, func() { helds++ })
	cancelShort()
	require.ErrorIs(t, err, context.DeadlineExceeded, "the lock is exclusive")
	assert.Positive(t, helds, "the waiter was told the lock is held (a takeover warms its topic meanwhile)")

	// Node 1 stops renewing its lease (paused): node 2 gets the lock once it
	// expires.
	s1.Orphan()
	l2, err := acquire(ctx, cli, s2, k.lock(ident), "node-2", time.Second, nil)
	require.NoError(t, err)
	st2 := store(l2)

	err = st1.Check(ctx)
	assert.ErrorIs(t, err, serve.ErrFenced, "the old holder may not deliver")
	err = st1.Save(ctx, serve.State{Cursor: "late"})
	assert.ErrorIs(t, err, serve.ErrFenced, "the old holder's cursor write is refused")
	assert.Equal(t, 1, refused)
	assert.Equal(t, seam.Cursor("c1"), cursor().Cursor, "the refused write changed nothing")

	require.NoError(t, st2.Check(ctx))
	require.NoError(t, st2.Save(ctx, serve.State{Cursor: "c2"}))
	assert.Equal(t, "node-2", cursor().Node)
	assert.Equal(t, seam.Cursor("c2"), cursor().Cursor)

	// Released, the lock is free at once.
	l2.release()
	s3, err := concurrency.NewSession(cli, concurrency.WithTTL(2))
	require.NoError(t, err)
	defer s3.Close()
	quick, cancelQuick := context.WithTimeout(ctx, time.Second)
	defer cancelQuick()
	_, err = acquire(quick, cli, s3, k.lock(ident), "node-3", time.Second, nil)
	require.NoError(t, err)
	assert.True(t, errors.Is(st2.Check(ctx), serve.ErrFenced), "after its release the holder is fenced too")
}

func TestIdentityRoundTrip(t *testing.T) {
	for _, tp := range []serve.Topic{{Route: "r", Topic: "t"}, {Route: "a/b", Topic: "c/d e%"}, {Route: "x", Topic: ""}} {
		got, err := parseIdentity(identity(tp))
		require.NoError(t, err)
		assert.Equal(t, tp, got)
	}
	_, err := parseIdentity("no-slash")
	assert.Error(t, err)
}

// Every node gets the same relay secret: the first creates it, the others
// read it; a corrupt one is an error that says what to do.
func TestRelaySecretIsShared(t *testing.T) {
	e := etcdtest.Start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.ClientURL}, DialTimeout: 5 * time.Second, Logger: quietZap()})
	require.NoError(t, err)
	defer cli.Close()
	ctx := context.Background()
	s1, err := RelaySecret(ctx, cli, "c1")
	require.NoError(t, err)
	require.Len(t, s1, 32)
	s2, err := RelaySecret(ctx, cli, "c1")
	require.NoError(t, err)
	assert.Equal(t, s1, s2, "the second node reads the first one's secret")
	other, err := RelaySecret(ctx, cli, "c2")
	require.NoError(t, err)
	assert.NotEqual(t, s1, other, "each cluster has its own")
	_, err = cli.Put(ctx, keysOf("c1").relaySecret(), "not hex")
	require.NoError(t, err)
	_, err = RelaySecret(ctx, cli, "c1")
	assert.ErrorContains(t, err, "corrupt")
}

package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/serve"
)

// ErrLockHeld is what EditCursor answers when a (route, topic)'s lock stayed
// held by another (the node delivering it) for as long as it waited.
var ErrLockHeld = errors.New("the topic's lock is held")

// ErrLockLost is what EditCursor answers when its lock ended (its lease
// expired: etcd unreachable for a lease TTL) before it wrote the cursor:
// nothing was written.
var ErrLockLost = errors.New("the topic's lock was lost before the cursor was written")

// Cursor is a (route, topic)'s cursor as the cluster's etcd keeps it.
type Cursor struct {
	serve.State
	Found bool   // false: none saved yet
	Node  string // the node that wrote it last
}

// ReadCursors reads the cursors of topics from the cluster's etcd in one read
// (a consistent snapshot), without their locks. An unreachable etcd answers
// ErrEtcdUnreachable; a corrupt cursor, an error naming its key.
func ReadCursors(ctx context.Context, c *config.Cluster, topics []serve.Topic) ([]Cursor, error) {
	cli, err := NewEtcdClient(c)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	k := keysOf(c.Name)
	cctx, cancel := context.WithTimeout(ctx, time.Duration(max(c.Etcd.DialTimeout, config.Duration(5*time.Second))))
	defer cancel()
	resp, err := cli.Get(cctx, k.prefix+"cursors/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEtcdUnreachable, err)
	}
	values := map[string][]byte{}
	for _, kv := range resp.Kvs {
		values[string(kv.Key)] = kv.Value
	}
	out := make([]Cursor, len(topics))
	for i, t := range topics {
		key := k.cursor(identity(t))
		data, ok := values[key]
		if !ok {
			continue
		}
		sc, err := decodeCursor(key, data)
		if err != nil {
			return nil, err
		}
		out[i] = Cursor{State: sc.State, Found: true, Node: sc.Node}
	}
	return out, nil
}

// EditOptions tune EditCursor.
type EditOptions struct {
	// Owner is the lock's value while EditCursor holds it (what `cluster
	// status` shows as its holder) and the cursor's edited_by.
	Owner string
	// Wait bounds the wait for a lock another holds: past it, ErrLockHeld.
	Wait time.Duration
	// Waiting (nil: none) is called once if the lock is found held, before
	// waiting for it.
	Waiting func()
}

// EditCursor changes a (route, topic)'s cursor in the cluster's etcd as a node
// would: it takes the topic's lock (the same key, the same acquire) for a
// lease of its own, so that no node delivers the topic meanwhile, calls edit
// with the saved cursor (found false: none yet), writes what edit answers in a
// transaction that checks the lock is still its own and that the cursor is
// the one it read, and releases the lock. edit's error, a lock held past
// o.Wait (ErrLockHeld), a lock lost (ErrLockLost) or an unreachable etcd
// (ErrEtcdUnreachable) leave the cursor as it was.
func EditCursor(ctx context.Context, c *config.Cluster, t serve.Topic, o EditOptions,
	edit func(ctx context.Context, st serve.State, found bool) (serve.State, error)) error {
	cli, err := Dial(ctx, c)
	if err != nil {
		return err
	}
	defer cli.Close()
	k := keysOf(c.Name)
	ident := identity(t)
	lockKey, cursorKey := k.lock(ident), k.cursor(ident)
	// The nodes' call bound; a lease of the cluster's TTL, at most 5s: should
	// the command die holding the lock, the node waits that long at most.
	call := min(c.TTL()/2, 5*time.Second)
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(min(c.TTL(), 5*time.Second)/time.Second)),
		concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: taking a lease: %v", ErrEtcdUnreachable, err)
	}
	defer sess.Close() // revokes the lease: the lock goes with it, should release fail
	wctx, cancel := context.WithTimeout(ctx, o.Wait)
	waiting := func() {}
	if o.Waiting != nil {
		waiting = sync.OnceFunc(o.Waiting)
	}
	l, err := acquire(wctx, cli, sess, lockKey, o.Owner, call, waiting)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errSessionLost) {
			return fmt.Errorf("%w: the command's lease ended", ErrEtcdUnreachable)
		}
		// Timed out: held all along, or etcd stopped answering.
		gctx, gcancel := context.WithTimeout(ctx, call)
		resp, gerr := cli.Get(gctx, lockKey)
		gcancel()
		if gerr != nil {
			return fmt.Errorf("%w: %v", ErrEtcdUnreachable, gerr)
		}
		holder := "another process"
		if len(resp.Kvs) == 1 {
			holder = "node " + string(resp.Kvs[0].Value)
		}
		return fmt.Errorf("%w: route %s: topic %s: still held by %s after waiting %s: stop the node delivering it, or retry",
			ErrLockHeld, t.Route, t.Topic, holder, o.Wait)
	}
	defer l.release()

	gctx, gcancel := context.WithTimeout(ctx, call)
	resp, err := cli.Get(gctx, cursorKey)
	gcancel()
	if err != nil {
		return fmt.Errorf("%w: reading the cursor: %v", ErrEtcdUnreachable, err)
	}
	var (
		saved savedCursor
		found = len(resp.Kvs) == 1
		rev   int64 // the cursor's mod revision (0: none)
	)
	if found {
		if saved, err = decodeCursor(cursorKey, resp.Kvs[0].Value); err != nil {
			return err
		}
		rev = resp.Kvs[0].ModRevision
	}
	st, err := edit(ctx, saved.State, found)
	if err != nil {
		return err
	}
	if err := runtime.CheckCursor(st.Cursor); err != nil {
		return fmt.Errorf("cursor %q: %w", st.Cursor, err)
	}
	if err := runtime.CheckCursor(seam.Cursor(st.RelayLast)); err != nil {
		return fmt.Errorf("relay_last %q: %w", st.RelayLast, err)
	}
	// Node stays the last node that wrote it (a node taking the topic next
	// sees no handover); edited_by says who changed it.
	data, err := json.Marshal(editedCursor{savedCursor: savedCursor{State: st, Route: t.Route, Topic: t.Topic, Node: saved.Node,
		At: time.Now().UTC().Format(time.RFC3339Nano)}, EditedBy: o.Owner})
	if err != nil {
		return err
	}
	pctx, pcancel := context.WithTimeout(ctx, call)
	defer pcancel()
	put, err := cli.Txn(pctx).
		If(l.held(), clientv3.Compare(clientv3.ModRevision(cursorKey), "=", rev)).
		Then(clientv3.OpPut(cursorKey, string(data))).
		Commit()
	if err != nil {
		// Unknown whether it was written: the read before tells.
		return fmt.Errorf("%w: writing the cursor (read it again with state show): %v", ErrEtcdUnreachable, err)
	}
	if !put.Succeeded {
		return fmt.Errorf("%w: route %s: topic %s", ErrLockLost, t.Route, t.Topic)
	}
	return nil
}

// editedCursor is a cursor written by EditCursor: who edited it rides along
// (a node's next write drops it).
type editedCursor struct {
	savedCursor
	EditedBy string `json:"edited_by"`
}

package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/parley-go/parley-xmpp/internal/ctxtime"
	"github.com/parley-go/parley-xmpp/serve"
)

func quietZap() *zap.Logger { return zap.NewNop() }

// lock is a held (route, topic) lock: its key was created by this node's
// session, at revision rev. Every write of the holder compares the key's create
// revision with rev, so a write after the lock was lost (the lease expired,
// someone else created the key since) is refused: rev is the fencing token.
type lock struct {
	cli   *clientv3.Client
	sess  *concurrency.Session
	key   string
	rev   int64
	owner string // this node's id
	call  time.Duration
}

func (l *lock) held() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev)
}

// acquire takes the lock at key for sess's lease, waiting while another holds
// it (until its holder releases it or its lease expires), or until ctx ends.
// held (nil: none) is called when it finds the lock held, before it waits.
func acquire(ctx context.Context, cli *clientv3.Client, sess *concurrency.Session, key, owner string, call time.Duration, held func()) (*lock, error) {
	for {
		select {
		case <-sess.Done():
			return nil, errSessionLost
		default:
		}
		// Not cancelled with ctx: a create that etcd applied but whose
		// answer was dropped would leave a lock nobody releases until the
		// lease ends (issue 20: a node that stopped an owner right after
		// starting it, as a second node registered, kept that topic's lock,
		// and the topic stayed undelivered).
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), call)
		resp, err := cli.Txn(cctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, owner, clientv3.WithLease(sess.Lease()))).
			Else(clientv3.OpGet(key)).
			Commit()
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !sleep(ctx, call/4) {
				return nil, ctx.Err()
			}
			continue
		}
		if resp.Succeeded {
			l := &lock{cli: cli, sess: sess, key: key, rev: resp.Header.Revision, owner: owner, call: call}
			if ctx.Err() != nil {
				l.release()
				return nil, ctx.Err()
			}
			return l, nil
		}
		// Held under this very lease: an earlier attempt of this owner whose
		// answer was lost (a timeout). The node runs one owner per topic at a
		// time, so it is this owner's: take it.
		if rs := resp.Responses; len(rs) == 1 {
			if kvs := rs[0].GetResponseRange().GetKvs(); len(kvs) == 1 && clientv3.LeaseID(kvs[0].Lease) == sess.Lease() && string(kvs[0].Value) == owner {
				return &lock{cli: cli, sess: sess, key: key, rev: kvs[0].CreateRevision, owner: owner, call: call}, nil
			}
		}
		// Held: wait for its deletion (a release or an expired lease), but
		// look again now and then should the watch miss it.
		if held != nil {
			held()
		}
		wctx, wcancel := context.WithTimeout(ctx, 2*call)
		wch := cli.Watch(clientv3.WithRequireLeader(wctx), key, clientv3.WithRev(resp.Header.Revision+1), clientv3.WithFilterPut())
	wait:
		for {
			select {
			case <-sess.Done():
				wcancel()
				return nil, errSessionLost
			case wr, ok := <-wch:
				if !ok || wr.Err() != nil || len(wr.Events) > 0 {
					break wait
				}
			}
		}
		wcancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// release deletes the lock if it is still ours.
func (l *lock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), l.call)
	defer cancel()
	_, _ = l.cli.Txn(ctx).If(l.held()).Then(clientv3.OpDelete(l.key)).Commit()
}

// etcdStore is a topic's serve.Store in etcd, fenced by its lock.
type etcdStore struct {
	l         *lock
	cursorKey string
	t         serve.Topic
	refused   func()      // counts a refused write
	clock     *leaseClock // the lease's local validity (nil: not checked)
}

var _ serve.Store = (*etcdStore)(nil)

func (s *etcdStore) lost() bool {
	select {
	case <-s.l.sess.Done():
		return true
	default:
		return false
	}
}

func (s *etcdStore) Check(ctx context.Context) error {
	if s.lost() {
		return fmt.Errorf("%w: the node's etcd lease ended", serve.ErrFenced)
	}
	cctx, cancel := context.WithTimeout(ctx, s.l.call)
	defer cancel()
	resp, err := s.l.cli.Txn(cctx).If(s.l.held()).Commit()
	if err != nil {
		return fmt.Errorf("checking the lock of %s/%s in etcd: %w", s.t.Route, s.t.Topic, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: the lock of %s/%s is no longer this node's", serve.ErrFenced, s.t.Route, s.t.Topic)
	}
	// etcd's answer may have waited (a pause, a slow link) until after the
	// lease expired: deliver only while it surely lives. Not a fence: the
	// next check retries, and a renewal lets it through.
	if s.clock != nil {
		if err := s.clock.check(0); err != nil {
			return fmt.Errorf("checking the lock of %s/%s: %w", s.t.Route, s.t.Topic, err)
		}
	}
	return nil
}

func (s *etcdStore) Save(ctx context.Context, st serve.State) error {
	data, err := json.Marshal(savedCursor{State: st, Route: s.t.Route, Topic: s.t.Topic, Node: s.l.owner,
		At: time.Now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return err
	}
	// Tried even when ctx has ended (the delivery happened: record it), but
	// bounded.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.l.call)
	defer cancel()
	resp, err := s.l.cli.Txn(cctx).If(s.l.held()).Then(clientv3.OpPut(s.cursorKey, string(data))).Commit()
	if err != nil {
		return fmt.Errorf("saving the cursor of %s/%s in etcd: %w", s.t.Route, s.t.Topic, err)
	}
	if !resp.Succeeded {
		s.refused()
		return fmt.Errorf("%w: the cursor write of %s/%s was refused (the lock is no longer this node's)", serve.ErrFenced, s.t.Route, s.t.Topic)
	}
	return nil
}

// sleep is ctxtime.Sleep.
var sleep = ctxtime.Sleep

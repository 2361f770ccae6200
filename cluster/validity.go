package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// errLeaseLapsing: this node can no longer be sure that its etcd lease is
// alive, so it writes nothing an owner writes (a relay's post, a delivery).
var errLeaseLapsing = errors.New("this node's etcd lease may have ended (no renewal confirmed in time)")

// leaseClock is a lease's local validity: a deadline on this process's
// monotonic clock before which etcd cannot have expired the lease. etcd
// expires a lease TTL after its last renewal reached the leader, and that is
// after the renewal was sent: so sentAt + TTL of the last confirmed renewal is
// a lower bound of the expiry, whatever the latency (on the assumption that
// the leader's clock runs no faster than ours). Go's monotonic clock is
// CLOCK_MONOTONIC, which runs while the process is stopped (SIGSTOP): a node
// that resumes after a pause past its lease finds the deadline passed at once,
// before any of its goroutines hears from etcd.
//
// (The etcd client's own deadline, after which a concurrency.Session's Done
// closes, counts from the renewal's answer and is checked once a second: up to
// a latency plus a second later than etcd's expiry.)
type leaseClock struct {
	base  time.Time    // the origin of until, with its monotonic reading
	until atomic.Int64 // nanoseconds after base
}

// newLeaseClock is the clock of a lease granted (with ttl) after asked.
func newLeaseClock(asked time.Time, ttl time.Duration) *leaseClock {
	c := &leaseClock{base: asked}
	c.until.Store(int64(ttl))
	return c
}

// renewed records a renewal sent at sentAt and confirmed with ttl.
func (c *leaseClock) renewed(sentAt time.Time, ttl time.Duration) {
	until := int64(sentAt.Sub(c.base) + ttl)
	for {
		old := c.until.Load()
		if until <= old || c.until.CompareAndSwap(old, until) {
			return
		}
	}
}

// left is how long the lease is surely alive from now (<= 0: maybe not).
func (c *leaseClock) left() time.Duration {
	return time.Duration(c.until.Load()) - time.Since(c.base)
}

// check answers nil while the lease is surely alive for margin more.
func (c *leaseClock) check(margin time.Duration) error {
	if left := c.left(); left <= margin {
		return fmt.Errorf("%w: %s left, under the %s margin", errLeaseLapsing, max(left, 0).Round(time.Millisecond), margin)
	}
	return nil
}

// fence is check as a runtime post fence (runtime.WithPostFence): quick, and
// never blocking; refused counts each refusal.
func (c *leaseClock) fence(margin time.Duration, refused func()) func() error {
	return func() error {
		err := c.check(margin)
		if err != nil {
			refused()
		}
		return err
	}
}

// keep renews the session's lease every ttl/3 (the etcd client renews it too,
// but doesn't say when a renewal was sent) and records each confirmed renewal,
// until the session ends (the lease gone) or ctx does.
func (c *leaseClock) keep(ctx context.Context, cli *clientv3.Client, s *concurrency.Session, ttl, call time.Duration) {
	every := ttl / 3
	for {
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, call)
		resp, err := cli.KeepAliveOnce(rctx, s.Lease())
		cancel()
		wait := every
		if err == nil {
			c.renewed(sent, time.Duration(resp.TTL)*time.Second)
		} else {
			// etcd slow or away, or the lease gone (then the session ends):
			// try again soon.
			wait = min(every, 200*time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.Done():
			return
		case <-time.After(wait):
		}
	}
}

// postMargin is how long a node's lease must surely live on for it to write a
// post: room for the post to reach the XMPP server and its archive before the
// lease can expire and another node look the post up there.
func postMargin(ttl time.Duration) time.Duration { return min(time.Second, ttl/4) }

package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/ctxtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// worker forwards one topic of one route: it owns the topic's saved state.
type worker struct {
	route  config.Route // with defaults applied
	topic  seam.Topic
	source Backend
	sink   sink
	// deadLetter takes what the sink gave up on (on_exhausted: dead_letter).
	deadLetter sink
	store      Store // where the state is saved: a state file, or a cluster's etcd
	state      State
	resumed    bool // state was read from the store

	wait     time.Duration
	metrics  Recorder
	progress func(string)
	log      *slog.Logger
	guard    *loopGuard // a relay route's; nil for the others

	started    bool // the first page since Run started was read
	catchingUp bool // a progress line said the route is behind
	caughtUp   int  // messages delivered since it said so
	phase      phase
}

// phase is where a worker is in its life.
type phase int

const (
	delivering phase = iota // delivering (or waiting for messages)
	halted                  // stopped on a message its sink refused (on_exhausted: stop)
)

// run forwards messages until ctx ends.
func (w *worker) run(ctx context.Context) {
	if w.resumed {
		w.say("resuming after %s", describeCursor(w.state.Cursor))
	} else if !w.startFresh(ctx) {
		return
	}
	retry, attempt := w.newBackOff(), 0
	for ctx.Err() == nil {
		since := w.state.Cursor
		page, err := w.source.FetchRecent(ctx, seam.FetchRecentArgs{
			Topic: w.topic, Since: &since, Limit: w.route.Batch, Block: w.wait,
		})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if since != "" && errors.Is(err, seam.ErrUnknownCursor) {
				w.log.Error("the saved cursor is no longer in the archive (expired, or the room was recreated): "+
					"continuing from the archive's start; messages in between may have been lost",
					slog.String("cursor", string(since)), slog.Any("err", err))
				w.state.Cursor = ""
				if !w.save(ctx) {
					return
				}
				continue
			}
			wait := retry.NextBackOff()
			attempt++
			w.log.Warn("reading the archive failed; retrying", slog.Any("err", err), slog.Int("attempt", attempt), slog.Duration("retry_in", wait))
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		retry.Reset()
		attempt = 0
		if !w.forward(ctx, page) {
			return
		}
	}
}

// startFresh sets the cursor of a topic without saved state, as route.Start
// says, and saves it at once, so a restart doesn't move it.
func (w *worker) startFresh(ctx context.Context) bool {
	if w.route.Start == "start" {
		w.state.Cursor = ""
		w.say("starting from the archive's start")
		return w.save(ctx)
	}
	retry := w.newBackOff()
	for attempt := 1; ; attempt++ {
		// The newest message's cursor: everything after it is new. A
		// never-posted topic answers "", the start, which is as new.
		page, err := w.source.FetchRecent(ctx, seam.FetchRecentArgs{Topic: w.topic, Limit: 1})
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			w.state.Cursor = page.NextCursor
			if page.NextCursor == "" {
				w.say("starting from the archive's start (no messages yet)")
			} else {
				w.say("starting after the newest message (cursor %s)", page.NextCursor)
			}
			return w.save(ctx)
		}
		wait := retry.NextBackOff()
		w.log.Warn("reading the newest message failed; retrying", slog.Any("err", err), slog.Int("attempt", attempt), slog.Duration("retry_in", wait))
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// forward delivers a page in order, saving the cursor after each message. It
// returns false when ctx ended.
func (w *worker) forward(ctx context.Context, page seam.FetchRecentResult) bool {
	name, topic := w.route.Name, string(w.topic)
	n := len(page.Messages)
	w.metrics.Backlog(name, topic, n)
	// Say how far behind the route is when it resumes with a backlog, or falls
	// behind by a whole page; not for every message of a live topic.
	full := n >= w.route.Batch
	resuming := !w.started && (w.resumed || w.route.Start == "start")
	w.started = true
	switch {
	case w.catchingUp:
	case full:
		w.catchingUp, w.caughtUp = true, 0
		w.say("%d+ messages behind", n)
	case resuming && n > 0:
		w.catchingUp, w.caughtUp = true, 0
		w.say("%s behind", messages(n))
	}
	for i, m := range page.Messages {
		if ctx.Err() != nil || !w.mayDeliver(ctx) {
			return false
		}
		if w.guard != nil && w.guard.refuses(m) {
			// Passed over, not delivered: the cursor moves past it.
			w.refuseLoop(m)
			w.state.Cursor = m.Cursor
			if !w.save(ctx) {
				return false
			}
			w.metrics.Backlog(name, topic, n-i-1)
			continue
		}
		relayed, out := w.deliver(ctx, m)
		switch out {
		case cancelled:
			return false
		case stopped:
			w.phase = halted
			return false
		}
		w.state.Cursor = m.Cursor
		if relayed != "" {
			w.state.RelayLast = relayed
		}
		if !w.save(ctx) {
			return false
		}
		if out == delivered {
			w.metrics.Delivered(name, topic)
			w.caughtUp++
			w.log.Debug("delivered", slog.String("id", string(m.BackendMsgID)))
		}
		w.metrics.Backlog(name, topic, n-i-1)
	}
	// The archive may have skipped rows without a body after the last message:
	// step past them too, or the next read would return them again.
	if next := page.After(w.state.Cursor); next != w.state.Cursor {
		w.state.Cursor = next
		if !w.save(ctx) {
			return false
		}
	}
	if w.catchingUp && !full {
		w.catchingUp = false
		w.say("caught up (%s delivered)", messages(w.caughtUp))
	}
	return true
}

// save writes the state, retrying until it succeeds: the next delivery must
// not start before this one is recorded. The first attempt is made even when
// ctx has ended, so a delivery that just succeeded is not repeated needlessly.
func (w *worker) save(ctx context.Context) bool {
	retry := w.newBackOff()
	for {
		err := w.store.Save(ctx, w.state)
		if err == nil {
			return true
		}
		if errors.Is(err, ErrFenced) {
			w.log.Warn("stopping: this node no longer owns the topic (its cursor write was refused)", slog.Any("err", err))
			return false
		}
		wait := retry.NextBackOff()
		w.log.Error("saving the cursor failed; retrying before the next delivery", slog.Any("err", err), slog.Duration("retry_in", wait))
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// mayDeliver asks the store whether this worker may deliver now, retrying
// while the store can't tell; false when it may never (fenced) or ctx ended.
func (w *worker) mayDeliver(ctx context.Context) bool {
	retry := w.newBackOff()
	for {
		err := w.store.Check(ctx)
		if err == nil {
			return true
		}
		if errors.Is(err, ErrFenced) {
			w.log.Warn("stopping: this node no longer owns the topic", slog.Any("err", err))
			return false
		}
		wait := retry.NextBackOff()
		w.log.Warn("can't confirm this node still owns the topic; holding deliveries", slog.Any("err", err), slog.Duration("retry_in", wait))
		if !sleep(ctx, wait) {
			return false
		}
	}
}

func (w *worker) newBackOff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(time.Duration(w.route.RetryWait)),
		backoff.WithMaxInterval(time.Duration(w.route.MaxRetryWait)),
		backoff.WithMaxElapsedTime(0), // forever: only ctx stops a route
	)
}

func (w *worker) say(format string, a ...any) {
	if w.progress == nil {
		w.log.Info(fmt.Sprintf(format, a...))
		return
	}
	w.progress(fmt.Sprintf("route %s: %s: ", w.route.Name, w.topic) + fmt.Sprintf(format, a...))
}

func messages(n int) string {
	if n == 1 {
		return "1 message"
	}
	return fmt.Sprintf("%d messages", n)
}

func describeCursor(c seam.Cursor) string {
	if c == "" {
		return "the archive's start"
	}
	return "cursor " + string(c)
}

// sleep is ctxtime.Sleep.
var sleep = ctxtime.Sleep

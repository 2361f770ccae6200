package serve

import (
	"context"
	"errors"
	"log/slog"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/seam"
)

// ErrRefused marks a sink's answer that no retry can mend: the sink refuses
// this message itself (a webhook's 400, 413, 415 or 422; an exec handler's
// exit status 65, EX_DATAERR; content a relay's destination can't take). Such a
// message goes to the route's on_exhausted at once, without retries.
var ErrRefused = errors.New("serve: the sink refuses this message for good")

// ErrStopped is what RunTopic answers when the topic stopped on a message its
// sink would not take (on_exhausted: stop, or a dead-letter sink that refused
// it too): it delivers no more until an operator steps in (`parley-xmpp state
// skip`, or a fixed sink and a restart).
var ErrStopped = errors.New("serve: the topic stopped on a message its sink refused")

// refusedForGood says whether err is one that no retry can mend.
func refusedForGood(err error) bool {
	return errors.Is(err, ErrRefused) || errors.Is(err, seam.ErrInvalidContent) || errors.Is(err, seam.ErrPoisonMessage)
}

// Why a message was passed over: the reason label of
// parley_xmpp_route_skipped_total and the logs.
const (
	reasonRefused  = "refused"      // refused for good (refusedForGood)
	reasonAttempts = "max_attempts" // refused max_attempts times
)

// outcome is how one message's delivery ended.
type outcome int

const (
	cancelled  outcome = iota // ctx ended first: nothing recorded
	delivered                 // the sink took it
	passedOver                // skipped or dead-lettered: the cursor moves past it
	stopped                   // on_exhausted stop: the topic delivers no more
)

// stage is where a message is in its delivery.
type stage int

const (
	toSink       stage = iota // attempts at the route's sink
	toDeadLetter              // the route's sink gave up on it: to the dead-letter sink
)

// deliver hands m to the sink until it takes it, ctx ends, or the route's
// max_attempts and on_exhausted decide otherwise; relayed is a relay's post.
func (w *worker) deliver(ctx context.Context, m seam.Message) (relayed seam.BackendMsgID, out outcome) {
	// Encode keeps every field encodable; were it not, the message would go
	// to on_exhausted as refused.
	line, encodeErr := marshalLine(m)
	d := delivery{route: w.route.Name, msg: m, line: line, relayLast: w.state.RelayLast}
	id := slog.String("id", string(m.BackendMsgID))
	st, target := toSink, w.sink
	retry := w.newBackOff()
	for attempt := 1; ; attempt++ {
		relayed, err := seam.BackendMsgID(""), encodeErr
		if err == nil {
			relayed, err = target.deliver(ctx, d)
		}
		if err == nil {
			if st == toDeadLetter {
				w.metrics.DeadLettered(w.route.Name)
				w.log.Warn("dead-lettered: the message went to the dead-letter sink and is passed over", id)
				return "", passedOver
			}
			return relayed, delivered
		}
		if ctx.Err() != nil {
			return "", cancelled
		}
		w.metrics.SinkFailure(w.route.Name)
		reason := ""
		switch {
		case refusedForGood(err) || encodeErr != nil:
			reason = reasonRefused
		case st == toSink && w.route.MaxAttempts > 0 && attempt >= w.route.MaxAttempts:
			reason = reasonAttempts
		}
		switch {
		case reason != "" && st == toDeadLetter:
			// The dead letter is where nothing gets lost: one it refuses
			// stops the topic rather than vanish.
			return "", w.stop(m, "the dead-letter sink refused it too", err)
		case reason != "":
			switch w.route.OnExhausted.Action {
			case config.ExhaustedSkip:
				w.metrics.Skipped(w.route.Name, reason)
				w.log.Error("skipped: the sink refused the message; passing over it (on_exhausted: skip)", id,
					slog.String("reason", reason), slog.Int("attempts", attempt), slog.Any("err", err))
				return "", passedOver
			case config.ExhaustedDeadLetter:
				w.log.Error("the sink refused the message; handing it to the dead-letter sink", id,
					slog.String("reason", reason), slog.Int("attempts", attempt), slog.Any("err", err))
				dl, derr := marshalDeadLetter(m, DeadLetter{Route: w.route.Name, Reason: reason, Attempts: attempt, Error: err.Error()})
				if derr != nil {
					return "", w.stop(m, "it can't be encoded for the dead-letter sink", derr)
				}
				st, target, d.line = toDeadLetter, w.deadLetter, dl
				attempt = 0 // the dead-letter sink's attempts are counted afresh
				retry.Reset()
				continue
			default:
				return "", w.stop(m, reason, err)
			}
		}
		wait := retry.NextBackOff()
		msg := "delivery failed; retrying"
		if st == toDeadLetter {
			msg = "delivery to the dead-letter sink failed; retrying"
		}
		w.log.Warn(msg, id, slog.Int("attempt", attempt), slog.Duration("retry_in", wait), slog.Any("err", err))
		if !sleep(ctx, wait) {
			return "", cancelled
		}
	}
}

// stop reports that the topic stops on m: logged, counted, and said.
func (w *worker) stop(m seam.Message, why string, err error) outcome {
	w.metrics.Stopped(w.route.Name, string(w.topic))
	w.log.Error("stopped: this topic delivers no more; the other topics go on. Fix the sink and restart serve, or stop serve and pass over the message with `parley-xmpp state skip --route ROUTE --topic TOPIC`",
		slog.String("id", string(m.BackendMsgID)), slog.String("reason", why), slog.Any("err", err))
	w.say("stopped at message %s (%s): see the log; `parley-xmpp state skip` passes over it", m.BackendMsgID, why)
	return stopped
}

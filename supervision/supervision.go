// Package supervision holds the restart policies of parley-xmpp's actors, written
// out rather than taken from protoactor's defaults: protoactor's
// ExponentialBackoffStrategy is linear and uncapped, and its default strategy
// restarts forever.
package supervision

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Children returns the strategy a parent applies to its children: the failing
// child alone is restarted, at most maxRestarts times within window; past that it
// is stopped, so a crash loop ends instead of spinning. Every failure is logged
// with the message that caused it.
func Children(logger *slog.Logger, maxRestarts int, window time.Duration) actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(maxRestarts, window, func(reason any) actor.Directive {
		logger.Error("actor failed; restarting it", slog.Any("reason", reason))
		return actor.RestartDirective
	})
}

package runtime

import (
	"context"
	"log/slog"
)

// quiet routes protoactor's own logs (actor started, dead letters, restarts)
// into the embedder's logger at debug level: they describe the runtime's
// plumbing, not events an embedder acts on. Failures the runtime reports itself.
func quiet(l *slog.Logger) *slog.Logger {
	return slog.New(debugOnly{l.Handler()}).With(slog.String("lib", "protoactor"))
}

type debugOnly struct{ h slog.Handler }

func (d debugOnly) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d debugOnly) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return d.h.Handle(ctx, r)
}

func (d debugOnly) WithAttrs(as []slog.Attr) slog.Handler { return debugOnly{d.h.WithAttrs(as)} }
func (d debugOnly) WithGroup(n string) slog.Handler       { return debugOnly{d.h.WithGroup(n)} }

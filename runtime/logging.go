package runtime

import (
	"context"
	"fmt"
	"log/slog"
)

// quiet routes protoactor's own logs (actor started, dead letters, restarts)
// into the embedder's logger at debug level: they describe the runtime's
// plumbing, not events an embedder acts on. Failures the runtime reports itself.
// A "message" attribute (dead letters, supervision) shows only the message's
// type: messages carry posts' content, and content is the users', not the log's.
func quiet(l *slog.Logger) *slog.Logger {
	return slog.New(debugOnly{l.Handler()}).With(slog.String("lib", "protoactor"))
}

type debugOnly struct{ h slog.Handler }

func (d debugOnly) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d debugOnly) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(withoutPayload(a))
		return true
	})
	return d.h.Handle(ctx, out)
}

// withoutPayload replaces a message attribute's value by the message's type.
func withoutPayload(a slog.Attr) slog.Attr {
	if a.Key != "message" {
		return a
	}
	return slog.String("message_type", fmt.Sprintf("%T", a.Value.Any()))
}

func (d debugOnly) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = withoutPayload(a)
	}
	return debugOnly{d.h.WithAttrs(clean)}
}
func (d debugOnly) WithGroup(n string) slog.Handler { return debugOnly{d.h.WithGroup(n)} }

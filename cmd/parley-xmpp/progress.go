package main

import (
	"io"
	"log/slog"
)

// progress reports how long work goes (a route starting and catching up, a
// cluster node joining, a benchmark's steps): each line is an Info record of
// the command's logger, so it has a time and a level, honours --log-level, and
// is a JSON object in JSON mode.
type progress struct{ log *slog.Logger }

// newProgress reports through the logger w carries (logStderr), or, for a
// bare writer, a text logger on it.
func newProgress(w io.Writer) *progress {
	if l, ok := w.(logStderr); ok {
		return &progress{log: l.log}
	}
	return &progress{log: slog.New(slog.NewTextHandler(w, nil))}
}

// line reports s (a bench or chaos step, already worded).
func (p *progress) line(s string) { p.log.Info(s) }

// info reports msg with attributes (slog's key-value pairs or Attrs).
func (p *progress) info(msg string, args ...any) { p.log.Info(msg, args...) }

// done marks the end of the work. Every line is a whole record: there is no
// status line to end.
func (p *progress) done() {}

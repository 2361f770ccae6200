package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// newLogger is the logger of --log-format, --log-level and -v (a shorthand
// for --log-level debug). Bad values are usage errors naming the flag.
func newLogger(w io.Writer, format, level string, verbose bool) (*slog.Logger, error) {
	lv := slog.LevelWarn
	switch strings.ToLower(level) {
	case "":
		if verbose {
			lv = slog.LevelDebug
		}
	case "debug":
		lv = slog.LevelDebug
	case "info":
		lv = slog.LevelInfo
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, level)
	}
	if verbose && lv != slog.LevelDebug {
		return nil, fmt.Errorf("%w: -v means --log-level debug, and --log-level says %s: give one of them", errUsage, level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("%w: --log-format %q: want text or json", errUsage, format)
	}
}

// jsonLogs reports whether the logs are JSON lines: then nothing else may go
// to standard error as free text (progress lines become log records).
func (a *app) jsonLogs() bool { return strings.EqualFold(a.logFormat, "json") }

// serverName labels a configured server in logs: its name, or "default".
func serverName(name string) string {
	if name == "" {
		return "default"
	}
	return name
}

// jsonStderr is standard error in JSON mode: writes pass through, and
// progress lines written through newProgress become log records.
type jsonStderr struct {
	io.Writer
	log *slog.Logger
}

// routeProgress is serve's Progress: the progress lines, or, in JSON mode,
// nil, so that serve logs each route's progress with its route and topic.
func (a *app) routeProgress(p *progress) func(string) {
	if a.jsonLogs() {
		return nil
	}
	return p.line
}

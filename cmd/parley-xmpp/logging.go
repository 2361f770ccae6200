package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
)

// newLogger is the logger of --log-format, --log-level and -v (a shorthand
// for --log-level debug); without either, the level is def. Bad values are
// usage errors naming the flag.
func newLogger(w io.Writer, format, level string, verbose bool, def slog.Level) (*slog.Logger, error) {
	lv := def
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

// defaultLevel is a command's log level without --log-level or -v: Info for
// the commands that run for long (serve, tail, demo, bench), whose progress
// (a route starting, catching up; the link lost, a login attempt failed and
// when the next comes, the link back and why it went) is Info records; Warn
// for the others, whose output is their answer.
func defaultLevel(cmd *cobra.Command) slog.Level {
	switch cmd.Name() {
	case "serve", "tail", "demo", "bench":
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// jsonLogs reports whether the logs are JSON lines: then nothing else may go
// to standard error as free text.
func (a *app) jsonLogs() bool { return strings.EqualFold(a.logFormat, "json") }

// serverName labels a configured server in logs: its name, or "default".
func serverName(name string) string {
	if name == "" {
		return "default"
	}
	return name
}

// logStderr is standard error once the logger is set up: writes pass through,
// and newProgress finds the logger in it.
type logStderr struct {
	io.Writer
	log *slog.Logger
}

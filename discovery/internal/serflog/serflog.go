// Package serflog routes the log lines of Serf and memberlist into a *slog.Logger.
//
// Both libraries log through a *log.Logger with lines of the form "[LEVEL] component: message". They are
// chatty: every join, refute and probe shows up at INFO. Writer keeps their own level but maps INFO to
// slog's Debug, so a service logging at Info sees only Serf's warnings and errors.
package serflog

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// New returns a *log.Logger, for Serf's and memberlist's configs, that writes into logger.
func New(logger *slog.Logger) *log.Logger {
	return log.New(&Writer{Logger: logger}, "", 0)
}

// Writer is an io.Writer that turns each line written to it into one slog record.
type Writer struct {
	Logger *slog.Logger
}

// Write logs p, which *log.Logger hands over one whole line at a time. It never fails.
func (w *Writer) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		level, msg := Parse(line)
		if len(msg) > 0 && w.Logger.Enabled(context.Background(), level) {
			w.Logger.Log(context.Background(), level, string(msg))
		}
	}
	return len(p), nil
}

// Parse splits a line into the slog level its "[LEVEL]" prefix maps to and the message after it. A line
// with no known prefix is logged at Info, as it is: Serf never writes one, so it is worth seeing.
func Parse(line []byte) (slog.Level, []byte) {
	line = bytes.TrimRight(line, "\r\n")
	prefixes := []struct {
		tag   string
		level slog.Level
	}{
		{"[TRACE]", slog.LevelDebug - 4},
		{"[DEBUG]", slog.LevelDebug},
		{"[INFO]", slog.LevelDebug},
		{"[WARN]", slog.LevelWarn},
		{"[ERR]", slog.LevelError},
		{"[ERROR]", slog.LevelError},
	}
	for _, p := range prefixes {
		if rest, ok := bytes.CutPrefix(line, []byte(p.tag)); ok {
			return p.level, bytes.TrimLeft(rest, " ")
		}
	}
	return slog.LevelInfo, line
}

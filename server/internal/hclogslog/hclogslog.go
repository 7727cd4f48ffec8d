// Package hclogslog is an hclog.Logger that writes into a *slog.Logger, for hashicorp/raft: each of
// Raft's log calls becomes one structured slog record at Raft's own level, with its key-value
// pairs as attributes and a "component" attribute naming the logger ("raft",
// "raft.snapshot"...), rather than a line of hclog text, with its own time stamp and level, nested
// in a slog message.
package hclogslog

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// New returns an hclog.Logger named name that logs into l. Raft's levels map to slog's: Trace to
// Debug-4, Debug to Debug, Info to Info, Warn to Warn, Error to Error; l's handler decides what is
// written.
func New(l *slog.Logger, name string) hclog.Logger {
	return (&logger{base: l, level: new(atomic.Int32)}).named(name, nil)
}

type logger struct {
	// base is the logger New was given; l is base with the component and the With arguments.
	base, l *slog.Logger
	name    string
	args    []any
	level   *atomic.Int32 // an hclog.Level; NoLevel (0) leaves the filtering to slog
}

// named returns a copy of g with the name and arguments given.
func (g *logger) named(name string, args []any) *logger {
	c := *g
	c.name, c.args = name, args
	c.l = g.base.With(slog.String("component", name)).With(args...)
	return &c
}

// Level maps an hclog level to slog's.
func Level(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (g *logger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || !g.enabled(level) {
		return
	}
	g.l.Log(context.Background(), Level(level), msg, args...)
}

func (g *logger) enabled(level hclog.Level) bool {
	if min := hclog.Level(g.level.Load()); min != hclog.NoLevel && level < min {
		return false
	}
	return g.l.Enabled(context.Background(), Level(level))
}

func (g *logger) Trace(msg string, args ...any) { g.Log(hclog.Trace, msg, args...) }
func (g *logger) Debug(msg string, args ...any) { g.Log(hclog.Debug, msg, args...) }
func (g *logger) Info(msg string, args ...any)  { g.Log(hclog.Info, msg, args...) }
func (g *logger) Warn(msg string, args ...any)  { g.Log(hclog.Warn, msg, args...) }
func (g *logger) Error(msg string, args ...any) { g.Log(hclog.Error, msg, args...) }

func (g *logger) IsTrace() bool { return g.enabled(hclog.Trace) }
func (g *logger) IsDebug() bool { return g.enabled(hclog.Debug) }
func (g *logger) IsInfo() bool  { return g.enabled(hclog.Info) }
func (g *logger) IsWarn() bool  { return g.enabled(hclog.Warn) }
func (g *logger) IsError() bool { return g.enabled(hclog.Error) }

func (g *logger) ImpliedArgs() []any { return g.args }

func (g *logger) With(args ...any) hclog.Logger {
	return g.named(g.name, append(append([]any(nil), g.args...), args...))
}

func (g *logger) Name() string { return g.name }

func (g *logger) Named(name string) hclog.Logger {
	if g.name != "" {
		name = g.name + "." + name
	}
	return g.ResetNamed(name)
}

func (g *logger) ResetNamed(name string) hclog.Logger { return g.named(name, g.args) }

func (g *logger) SetLevel(level hclog.Level) { g.level.Store(int32(level)) }
func (g *logger) GetLevel() hclog.Level      { return hclog.Level(g.level.Load()) }

// StandardLogger and StandardWriter serve code that wants a *log.Logger: each line it writes is
// logged at the level its "[LEVEL]" prefix names, or Info.
func (g *logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(g.StandardWriter(opts), "", 0)
}

func (g *logger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer { return writer{g} }

type writer struct{ g *logger }

func (w writer) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := hclog.Info
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if rest, ok := strings.CutPrefix(line, "["+strings.ToUpper(l.String())+"]"); ok {
			level, line = l, strings.TrimSpace(rest)
			break
		}
	}
	w.g.Log(level, line)
	return len(p), nil
}

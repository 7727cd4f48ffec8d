package serflog_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/dislog/dislog/discovery/internal/serflog"
	"github.com/matryer/is"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		level slog.Level
		msg   string
	}{
		{"serf info is demoted to debug", "[INFO] serf: EventMemberJoin: a 127.0.0.1\n", slog.LevelDebug, "serf: EventMemberJoin: a 127.0.0.1"},
		{"memberlist debug stays debug", "[DEBUG] memberlist: Stream connection from=127.0.0.1:1", slog.LevelDebug, "memberlist: Stream connection from=127.0.0.1:1"},
		{"warnings stay warnings", "[WARN] serf: Shutdown without a Leave", slog.LevelWarn, "serf: Shutdown without a Leave"},
		{"ERR maps to error", "[ERR] memberlist: Conflicting address for b", slog.LevelError, "memberlist: Conflicting address for b"},
		{"an unknown prefix is kept whole at info", "something else", slog.LevelInfo, "something else"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			level, msg := serflog.Parse([]byte(tt.line))
			is.Equal(level, tt.level)
			is.Equal(string(msg), tt.msg)
		})
	}
}

func TestInfoLinesAreHiddenFromAnInfoLogger(t *testing.T) {
	is := is.New(t)
	var buf bytes.Buffer
	logger := serflog.New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	logger.Printf("[INFO] serf: EventMemberJoin: a 127.0.0.1")
	logger.Printf("[WARN] memberlist: Refuting a suspect message (from: b)")
	out := buf.String()
	is.True(!strings.Contains(out, "EventMemberJoin"))
	is.True(strings.Contains(out, "level=WARN"))
	is.True(strings.Contains(out, "Refuting a suspect message"))
}

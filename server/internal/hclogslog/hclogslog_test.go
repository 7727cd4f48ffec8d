package hclogslog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Each of Raft's calls is one slog record at its own level, with its arguments as attributes and
// its logger's name as the component; nothing of hclog's own text format is left in the message.
func TestRaftLinesBecomeStructuredRecordsAtTheirLevel(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "raft")
	for _, tc := range []struct {
		log  func()
		want string
	}{
		{func() { l.Warn("heartbeat timeout reached, starting election", "last-leader-id", "node1") },
			`level=WARN msg="heartbeat timeout reached, starting election" component=raft last-leader-id=node1`},
		{func() { l.Info("entering follower state", "follower", 3) }, `level=INFO msg="entering follower state" component=raft follower=3`},
		{func() { l.Error("failed to contact", "server-id", "node2") }, `level=ERROR msg="failed to contact" component=raft server-id=node2`},
		{func() { l.Named("snapshot").With("path", "/d").Debug("creating") }, `level=DEBUG msg=creating component=raft.snapshot path=/d`},
		{func() { l.Trace("not shown") }, ""},
		{func() { l.StandardLogger(nil).Print("[WARN] from a std logger") }, `level=WARN msg="from a std logger" component=raft`},
	} {
		buf.Reset()
		tc.log()
		got := strings.TrimSpace(buf.String())
		if i := strings.Index(got, "level="); i >= 0 {
			got = got[i:] // drop the time
		}
		if got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
	l.SetLevel(hclog.Error)
	if l.IsWarn() || !l.IsError() {
		t.Errorf("after SetLevel(Error): IsWarn %v, IsError %v; want false, true", l.IsWarn(), l.IsError())
	}
}

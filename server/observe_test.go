package server_test

import (
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/server"
	"github.com/dislog/dislog/server/servertest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Refused handshakes and denied calls are counted by reason and action and logged with the peer's
// address and subject; Raft's own metrics are exported; /livez and /readyz answer beside /healthz.
func TestRefusalsAndRaftShowInMetricsAndLogs(t *testing.T) {
	ctx := ctxT(t)
	logs := &syncBuffer{}
	n := servertest.Start(t, "p, alice, *, *\n", server.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	alice, bob := n.Client(t, "alice"), n.Client(t, "bob", client.WithProduceRetries(0))
	if _, err := alice.CreateTopic(ctx, "m", client.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Produce(ctx, "m", client.Record{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := bob.Produce(ctx, "m", client.Record{Value: []byte("x")}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("bob's produce: %v; want PermissionDenied", err)
		}
	}
	// A TLS client without a certificate, and a peer that does not speak TLS.
	conn, err := tls.Dial("tcp", n.Server.Addr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err == nil {
		// TLS 1.3 refuses a missing client certificate after the client's side of the handshake.
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Read(make([]byte, 1))
		conn.Close()
	}
	plain, err := net.Dial("tcp", n.Server.Addr())
	if err != nil {
		t.Fatal(err)
	}
	plain.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = plain.Read(make([]byte, 1))
	plain.Close()

	admin := "http://" + n.Server.AdminAddr()
	want := []string{
		`dislog_authz_denied_total{action="produce"} 2`,
		`dislog_tls_handshake_failures_total{reason="no_certificate"} 1`,
		`dislog_tls_handshake_failures_total{reason="not_tls"} 1`,
		`dislog_raft_apply`, // raft's own counter of applied commands, through go-metrics
		`dislog_raft_commitTime`,
	}
	var metrics string
	servertest.WaitFor(t, 10*time.Second, "the refusals and Raft's metrics in /metrics", func() bool {
		metrics = httpGet(t, admin+"/metrics")
		for _, w := range want {
			if !strings.Contains(metrics, w) {
				return false
			}
		}
		return true
	})
	for _, w := range []string{`msg="denied a call"`, `subject=bob`, `action=produce`, `msg="refused a TLS handshake"`, `reason=no_certificate`, `reason=not_tls`, `remote=127.0.0.1:`} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("the log lacks %s:\n%s", w, logs.String())
		}
	}
	for _, path := range []string{"/livez", "/readyz", "/healthz"} {
		if got := httpGet(t, admin+path); got != "ok\n" {
			t.Errorf("GET %s: %q, want ok", path, got)
		}
	}
}

// syncBuffer is a log destination the server writes from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

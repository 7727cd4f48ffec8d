// Package servertest runs a Dislog server in a test: a CA, a server certificate for 127.0.0.1, a
// policy, a server on a free loopback port, and clients with certificates of any name.
package servertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/authz/authztest"
	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/server"
)

// Node is a running server.
type Node struct {
	Server     *server.Server
	Dir        string // the data directory
	PolicyFile string
	CA         *authztest.CA

	certDir string
	cancel  context.CancelFunc
	done    chan error
}

// DefaultPolicy lets the subject "alice" do everything.
const DefaultPolicy = "p, alice, *, *\n"

// Start starts a server with policy as its ACL (DefaultPolicy if empty) and stops it when the test
// ends. opts come after the ones Start sets, so they may replace them.
func Start(t testing.TB, policy string, opts ...server.Option) *Node {
	t.Helper()
	if policy == "" {
		policy = DefaultPolicy
	}
	n := &Node{Dir: t.TempDir(), CA: authztest.NewCA(t, "test CA"), certDir: t.TempDir()}
	n.PolicyFile = filepath.Join(n.certDir, "policy.csv")
	authztest.WriteFile(t, n.PolicyFile, []byte(policy))
	files := n.CA.WriteFiles(t, mkdir(t, n.certDir, "server"), "server", authztest.Cert{CommonName: "node1", Role: authz.RoleServer})
	base := []server.Option{
		server.WithDataDir(n.Dir),
		server.WithListenAddr("127.0.0.1:0"),
		server.WithAdminAddr("127.0.0.1:0"),
		server.WithNodeID("node1"),
		server.WithTLS(files),
		server.WithPolicyFile(n.PolicyFile),
		server.WithPolicyReloadInterval(-1),
		server.WithShutdownTimeout(5 * time.Second),
	}
	srv, err := server.New(append(base, opts...)...)
	if err != nil {
		t.Fatalf("servertest: start: %v", err)
	}
	n.Server = srv
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Errorf("servertest: stop: %v", err)
		}
	})
	return n
}

// Stop shuts the server down gracefully and returns what Serve returned. Calling it again returns
// nil.
func (n *Node) Stop() error {
	if n.cancel == nil {
		return nil
	}
	n.cancel()
	n.cancel = nil
	return <-n.done
}

// ClientFiles issues a client certificate named cn by the node's CA and returns its files.
func (n *Node) ClientFiles(t testing.TB, cn string) authz.TLSOptions {
	t.Helper()
	dir := filepath.Join(n.certDir, "clients", cn)
	if _, err := os.Stat(dir); err == nil {
		return authz.TLSOptions{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, cn+".pem"), KeyFile: filepath.Join(dir, cn+"-key.pem")}
	}
	return n.CA.WriteFiles(t, mkdir(t, dir), cn, authztest.Cert{CommonName: cn, Role: authz.RoleClient})
}

// Client dials the node as cn, with a certificate from the node's CA, and closes the client when
// the test ends.
func (n *Node) Client(t testing.TB, cn string, opts ...client.Option) *client.Client {
	t.Helper()
	f := n.ClientFiles(t, cn)
	c, err := client.Dial(n.Server.Addr(), append([]client.Option{client.WithTLSFiles(f.CAFile, f.CertFile, f.KeyFile)}, opts...)...)
	if err != nil {
		t.Fatalf("servertest: dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mkdir(t testing.TB, elem ...string) string {
	t.Helper()
	dir := filepath.Join(elem...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

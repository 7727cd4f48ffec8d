// Package servertest runs Dislog servers in a test: a CA, server certificates for 127.0.0.1, a
// policy, servers on free loopback ports (one, or a cluster joined through Serf), and clients with
// certificates of any name.
package servertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/authz/authztest"
	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/discovery/discoverytest"
	"github.com/dislog/dislog/server"
)

// Node is a running server.
type Node struct {
	Server     *server.Server
	ID         string
	Dir        string // the data directory
	PolicyFile string
	CA         *authztest.CA

	files   authz.TLSOptions
	base    []server.Option
	opts    []server.Option
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
	return StartNode(t, authztest.NewCA(t, "test CA"), "node1", policy, opts...)
}

// StartNode starts a server named id with a server certificate from ca, as Start does. Nodes of one
// cluster share a CA.
func StartNode(t testing.TB, ca *authztest.CA, id, policy string, opts ...server.Option) *Node {
	t.Helper()
	if policy == "" {
		policy = DefaultPolicy
	}
	n := &Node{Dir: t.TempDir(), CA: ca, certDir: t.TempDir(), ID: id}
	n.PolicyFile = filepath.Join(n.certDir, "policy.csv")
	authztest.WriteFile(t, n.PolicyFile, []byte(policy))
	n.files = n.CA.WriteFiles(t, mkdir(t, n.certDir, "server"), "server", authztest.Cert{CommonName: id, Role: authz.RoleServer})
	n.base = []server.Option{
		server.WithListenAddr("127.0.0.1:0"),
		server.WithAdminAddr("127.0.0.1:0"),
		server.WithNodeID(id),
		server.WithTLS(n.files),
		server.WithPolicyFile(n.PolicyFile),
		server.WithPolicyReloadInterval(-1),
		server.WithShutdownTimeout(5 * time.Second),
	}
	n.opts = opts
	n.start(t)
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Errorf("servertest: stop %s: %v", n.ID, err)
		}
	})
	return n
}

func (n *Node) start(t testing.TB, extra ...server.Option) {
	t.Helper()
	if err := n.TryRestart(extra...); err != nil {
		t.Fatalf("servertest: start %s: %v", n.ID, err)
	}
}

// TryRestart is Restart that returns the error of a server that does not start, for tests of
// what stops a server.
func (n *Node) TryRestart(extra ...server.Option) error {
	opts := append([]server.Option{server.WithDataDir(n.Dir)}, n.base...)
	srv, err := server.New(append(append(opts, n.opts...), extra...)...)
	if err != nil {
		return err
	}
	n.Server = srv
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- srv.Serve(ctx) }()
	return nil
}

// Restart starts a stopped node again on its data directory, with extra options after its own
// (the same listening address, for one: WithListenAddr(addr)).
func (n *Node) Restart(t testing.TB, extra ...server.Option) {
	t.Helper()
	n.start(t, extra...)
}

// StartCluster starts size servers, node1 to nodeN, sharing a CA: node1 bootstraps the cluster and
// the others join it through Serf with fast failure detection. It waits until node1 leads and
// every server is a voter.
func StartCluster(t testing.TB, size int, opts ...server.Option) []*Node {
	t.Helper()
	ca := authztest.NewCA(t, "test CA")
	serf := ClusterOptions()
	first := StartNode(t, ca, "node1", "", append(append(serf, server.WithBootstrap(true)), opts...)...)
	nodes := []*Node{first}
	WaitFor(t, 10*time.Second, "node1 to lead", func() bool { return first.Server.IsLeader() })
	for i := 2; i <= size; i++ {
		join := append(append(serf, server.WithJoin(first.Server.SerfAddr())), opts...)
		nodes = append(nodes, StartNode(t, ca, fmt.Sprintf("node%d", i), "", join...))
	}
	WaitFor(t, 20*time.Second, "every server to be a voter", func() bool { return first.Server.Voters() == size })
	return nodes
}

// ClusterOptions are the options StartCluster gives every node (Serf on a free port, fast failure
// detection and reconciliation), for a node that joins a cluster later: add WithJoin.
func ClusterOptions() []server.Option {
	return []server.Option{
		server.WithSerfAddr("127.0.0.1:0"), server.WithSerfTimings(discoverytest.Timings()),
		server.WithReconcileInterval(200 * time.Millisecond),
	}
}

// WaitFor polls cond every 10 ms until it holds, and fails the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("servertest: timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// ServerFiles are the node's server certificate, key and CA.
func (n *Node) ServerFiles() authz.TLSOptions { return n.files }

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

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/authz/authztest"
	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/server/servertest"
	"github.com/matryer/is"
)

// node is one server of a cluster of dislog processes.
type node struct {
	id     string
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (n *node) kill() {
	_ = n.cmd.Process.Kill()
	<-n.exited
}

// processCluster is a cluster of dislog processes on loopback and a client certificate for "alice",
// whom the policy allows everything.
type processCluster struct {
	nodes  []*node
	client authz.TLSOptions
}

// target is the cluster as a client's target, naming every node.
func (c *processCluster) target() string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.addr
	}
	return "dislog:///" + strings.Join(addrs, ",")
}

func (c *processCluster) dial(t *testing.T, target string, opts ...client.Option) *client.Client {
	t.Helper()
	cl, err := client.Dial(target, append([]client.Option{client.WithTLSFiles(c.client.CAFile, c.client.CertFile, c.client.KeyFile)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// startProcessCluster runs size dislog processes: node1 bootstraps the cluster, the others join it
// through Serf. It returns once every node is a voter. The nodes' output is logged if the test
// fails; the nodes still running are stopped with SIGTERM when it ends.
func startProcessCluster(t *testing.T, size int) *processCluster {
	t.Helper()
	dislog := build(t, "server/cmd/dislog")
	dir := t.TempDir()
	ca := authztest.NewCA(t, "e2e CA")
	policy := filepath.Join(dir, "policy.csv")
	authztest.WriteFile(t, policy, []byte(servertest.DefaultPolicy))
	c := &processCluster{client: ca.WriteFiles(t, mkdirAll(t, dir, "alice"), "alice", authztest.Cert{CommonName: "alice", Role: authz.RoleClient})}

	var logMu sync.Mutex
	var logs bytes.Buffer
	t.Cleanup(func() {
		for _, n := range c.nodes {
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, n := range c.nodes {
			select {
			case <-n.exited:
			case <-time.After(15 * time.Second):
				n.kill()
			}
		}
		if t.Failed() {
			logMu.Lock()
			defer logMu.Unlock()
			t.Logf("the nodes' output:\n%s", logs.String())
		}
	})

	var firstSerf string
	for i := 1; i <= size; i++ {
		id := fmt.Sprintf("node%d", i)
		files := ca.WriteFiles(t, mkdirAll(t, dir, id, "pki"), id, authztest.Cert{CommonName: id, Role: authz.RoleServer})
		serf := freeAddr(t)
		args := []string{
			"--node-id", id,
			"--data-dir", filepath.Join(dir, id, "data"),
			"--addr", "127.0.0.1:0",
			"--admin-addr", "",
			"--serf-addr", serf,
			"--tls-ca-file", files.CAFile, "--tls-cert-file", files.CertFile, "--tls-key-file", files.KeyFile,
			"--policy-file", policy,
		}
		if i == 1 {
			args, firstSerf = append(args, "--bootstrap"), serf
		} else {
			args = append(args, "--join", firstSerf)
		}
		cmd := exec.Command(dislog, args...)
		out := &lineWriter{mu: &logMu, w: &logs, prefix: id + ": "}
		cmd.Stderr = out
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		n := &node{id: id, cmd: cmd, exited: make(chan struct{})}
		c.nodes = append(c.nodes, n)
		serving := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if addr, ok := strings.CutPrefix(sc.Text(), "dislog: serving on "); ok {
					serving <- addr
				}
				fmt.Fprintln(out, sc.Text())
			}
			// The pipe is done: Wait may close it.
			_ = cmd.Wait()
			close(n.exited)
		}()
		select {
		case n.addr = <-serving:
		case <-n.exited:
			t.Fatalf("%s exited before serving", id)
		case <-time.After(60 * time.Second):
			t.Fatalf("%s did not serve within 60 s", id)
		}
	}

	cl := c.dial(t, c.nodes[0].addr)
	servertest.WaitFor(t, 60*time.Second, "every node to be a voter", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		servers, err := cl.GetServers(ctx)
		voters := 0
		for _, s := range servers {
			if s.IsVoter {
				voters++
			}
		}
		return err == nil && voters == size
	})
	return c
}

// leader returns the node that leads, as the cluster says.
func (c *processCluster) leader(t *testing.T, cl *client.Client) *node {
	t.Helper()
	var leader *node
	servertest.WaitFor(t, 30*time.Second, "a leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		servers, err := cl.GetServers(ctx)
		if err != nil {
			return false
		}
		for _, s := range servers {
			for _, n := range c.nodes {
				if s.IsLeader && s.RPCAddr == n.addr {
					leader = n
					return true
				}
			}
		}
		return false
	})
	return leader
}

func TestProduceThroughALeaderKillWritesEachRecordOnce(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	c := startProcessCluster(t, 3)
	cl := c.dial(t, c.target())
	_, err := cl.CreateTopic(ctx, "orders", client.TopicConfig{})
	is.NoErr(err)
	leader := c.leader(t, cl)

	// Retries well beyond the default, so that a slow election on a loaded machine does not fail
	// the test: what it checks is that no record is lost or written twice.
	p, err := client.NewProducer(cl, "orders", client.ProducerOptions{MaxBatchRecords: 20, MaxInFlight: 4, MaxRetries: 100, DeliveryTimeout: 50 * time.Second})
	is.NoErr(err)
	const n, killAt = 6000, 1500
	results := make([]client.Result, n)
	var killed time.Time
	for i := range n {
		results[i] = p.Send(ctx, client.Record{Value: value(i)})
		if i == killAt {
			// Wait until some records are acknowledged, so the kill cuts a stream in full flow.
			_, err := results[killAt/2].Wait(ctx)
			is.NoErr(err)
			leader.kill()
			killed = time.Now()
		}
	}
	is.NoErr(p.Close())
	t.Logf("killed the leader %s at record %d; the producer had every result %v later", leader.id, killAt, time.Since(killed).Round(time.Millisecond))
	for i, r := range results {
		off, err := r.Wait(ctx)
		is.NoErr(err)
		is.Equal(off, uint64(i)) // offsets dense and in the order sent: nothing lost, nothing twice
	}

	// The synchronous produce retries through the new leader too.
	off, err := cl.Produce(ctx, "orders", client.Record{Value: value(n)})
	is.NoErr(err)
	is.Equal(off, uint64(n))

	// Every survivor holds every record once, in order.
	for _, nd := range c.nodes {
		if nd == leader {
			continue
		}
		one := c.dial(t, nd.addr)
		servertest.WaitFor(t, 30*time.Second, nd.id+" to hold every record", func() bool {
			info, err := one.DescribeTopic(ctx, "orders")
			return err == nil && info.NextOffset == n+1
		})
		i := 0
		for rec, err := range one.Subscribe(ctx, "orders", client.AtOffset(0), client.StopAtEnd()) {
			is.NoErr(err)
			is.Equal(rec.Offset, uint64(i))
			is.Equal(rec.Value, value(i))
			i++
		}
		is.Equal(i, n+1)
	}
}

func mkdirAll(t *testing.T, elem ...string) string {
	t.Helper()
	dir := filepath.Join(elem...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// lineWriter writes each line with a prefix to a shared writer.
type lineWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf[:i])
		l.buf = l.buf[i+1:]
	}
}

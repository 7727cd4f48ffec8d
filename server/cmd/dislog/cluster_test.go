package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cflog "github.com/cloudflare/cfssl/log"
	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/tools/certs"
	"github.com/matryer/is"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// freePort returns a port of 127.0.0.1 that is free for TCP and UDP (Serf needs both), for a node
// that must come back on the address the others know it by.
func freePort(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no port of 127.0.0.1 free for both TCP and UDP")
	return ""
}

// node is one server of a cluster of dislog processes.
type node struct {
	id, addr, serf string
	args           []string
	proc           *process
	client         *client.Client
}

// localCluster is a cluster of dislog processes on 127.0.0.1, with its own CA and a client
// certificate allowed everything.
type localCluster struct {
	t      *testing.T
	bin    string
	nodes  []*node
	client certs.Files
}

// startLocalCluster starts n dislog processes: the first bootstraps the cluster, the others join it.
func startLocalCluster(t *testing.T, n int) *localCluster {
	t.Helper()
	cflog.Level = cflog.LevelError
	c := &localCluster{t: t, bin: buildDislog(t)}
	root := t.TempDir()
	ca, _, err := certs.EnsureCA(filepath.Join(root, "pki", "ca"))
	if err != nil {
		t.Fatal(err)
	}
	if c.client, err = ca.Issue(filepath.Join(root, "pki", "dev"), certs.IssueRequest{Role: certs.RoleClient, CommonName: devClientName}); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(root, "policy.csv")
	if err := os.WriteFile(policy, []byte(devPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		nd := &node{id: fmt.Sprintf("node%d", i+1), addr: freePort(t), serf: freePort(t)}
		tlsFiles, err := ca.Issue(filepath.Join(root, "pki", nd.id), certs.IssueRequest{
			Role: certs.RoleServer, CommonName: nd.id, Hosts: []string{"127.0.0.1", "localhost"},
		})
		if err != nil {
			t.Fatal(err)
		}
		nd.args = []string{
			"--node-id", nd.id, "--data-dir", filepath.Join(root, nd.id), "--addr", nd.addr, "--admin-addr=",
			"--serf-addr", nd.serf, "--log-level", "warn", "--policy-file", policy,
			"--tls-ca-file", tlsFiles.CAFile, "--tls-cert-file", tlsFiles.CertFile, "--tls-key-file", tlsFiles.KeyFile,
		}
		if i == 0 {
			nd.args = append(nd.args, "--bootstrap")
		} else {
			nd.args = append(nd.args, "--join", c.nodes[0].serf)
		}
		c.nodes = append(c.nodes, nd)
		c.start(nd)
	}
	c.waitFor("every node to see all servers and a leader", func() bool {
		for _, nd := range c.nodes {
			if servers, _ := c.servers(nd); len(servers) != n || leaderOf(servers) == "" {
				return false
			}
		}
		return true
	})
	return c
}

func (c *localCluster) start(nd *node) {
	c.t.Helper()
	nd.proc = startWith(c.t, c.bin, nd.args...)
	cl, err := client.Dial(nd.addr, client.WithTLSFiles(c.client.CAFile, c.client.CertFile, c.client.KeyFile), client.WithProduceRetries(0))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	nd.client = cl
}

// kill ends a node with SIGKILL.
func (c *localCluster) kill(nd *node) {
	c.t.Helper()
	if err := nd.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	nd.proc.cmd.Wait()
	nd.client.Close()
}

// restart starts a killed node again, joining the others' Serf addresses.
func (c *localCluster) restart(nd *node) {
	c.t.Helper()
	var seeds []string
	for _, o := range c.nodes {
		if o != nd {
			seeds = append(seeds, o.serf)
		}
	}
	args := append([]string(nil), nd.args...)
	if i := indexOf(args, "--join"); i >= 0 {
		args = args[:i]
	}
	nd.args = append(args, "--join", strings.Join(seeds, ","))
	c.start(nd)
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func (c *localCluster) servers(nd *node) ([]*dislogv1.Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := nd.client.API().GetServers(ctx, &dislogv1.GetServersRequest{})
	return resp.GetServers(), err
}

func leaderOf(servers []*dislogv1.Server) string {
	for _, s := range servers {
		if s.GetIsLeader() {
			return s.GetId()
		}
	}
	return ""
}

func (c *localCluster) node(id string) *node {
	for _, nd := range c.nodes {
		if nd.id == id {
			return nd
		}
	}
	c.t.Fatalf("no node %q", id)
	return nil
}

// waitFor polls cond until it holds, for at most 30 s.
func (c *localCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, nd := range c.nodes {
				fmt.Fprintf(&logs, "--- %s:\n%s", nd.id, nd.proc.logs.String())
			}
			c.t.Fatalf("timed out waiting for %s\n%s", what, logs.String())
		}
		<-tick.C
	}
}

// readAll reads a topic from one node's own log.
func readAll(nd *node, topic string) ([]*dislogv1.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := nd.client.API().ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{Topic: topic})
	if err != nil {
		return nil, err
	}
	var recs []*dislogv1.Record
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return nil, err
		}
		recs = append(recs, resp.GetRecords()...)
	}
}

// TestAcknowledgedRecordsSurviveSIGKILLOfTheLeader (issue 7, point 8) runs three dislog processes,
// produces with idempotent producers that retry a failed batch on any node with its sequence, kills
// the leader with SIGKILL mid-stream, goes on producing under the new leader, and restarts the killed
// node. Every acknowledged record must then be at its offset, once, on every node, and the nodes'
// logs must be identical.
func TestAcknowledgedRecordsSurviveSIGKILLOfTheLeader(t *testing.T) {
	is := is.New(t)
	c := startLocalCluster(t, 3)
	const topic = "replicated"
	c.waitFor("the topic to be created", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.nodes[0].client.API().CreateTopic(ctx, &dislogv1.CreateTopicRequest{Topic: topic})
		return err == nil || status.Code(err) == codes.AlreadyExists
	})

	var (
		mu     sync.Mutex
		acked  = map[uint64]string{} // offset → value
		nodeMu sync.Mutex            // guards the nodes' clients, which restart replaces
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for producer := uint64(1); producer <= 2; producer++ {
		wg.Go(func() {
			for seq, attempt := uint64(0), 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				req := &dislogv1.ProduceRequest{Topic: topic, ProducerId: producer, Sequence: seq}
				for i := range 1 + int(seq%4) {
					req.Records = append(req.Records, &dislogv1.Record{Value: fmt.Appendf(nil, "p%d-s%d-%d", producer, seq, i)})
				}
				deadline := time.Now().Add(30 * time.Second)
				for {
					nodeMu.Lock()
					api := c.nodes[attempt%len(c.nodes)].client.API()
					nodeMu.Unlock()
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					resp, err := api.Produce(ctx, req)
					cancel()
					if err == nil {
						mu.Lock()
						for i, r := range req.Records {
							acked[resp.GetBaseOffset()+uint64(i)] = string(r.GetValue())
						}
						mu.Unlock()
						break
					}
					if status.Code(err) == codes.FailedPrecondition || time.Now().After(deadline) {
						t.Errorf("producer %d, sequence %d: %v", producer, seq, err)
						return
					}
					attempt++ // the same batch again, on the next node
				}
			}
		})
	}
	stopProducers := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopProducers()

	c.waitFor("records acknowledged before the kill", func() bool { return ackedCount() >= 200 })
	servers, err := c.servers(c.nodes[0])
	is.NoErr(err)
	leader := c.node(leaderOf(servers))
	nodeMu.Lock()
	c.kill(leader)
	nodeMu.Unlock()
	before := ackedCount()
	c.waitFor("a new leader", func() bool {
		for _, nd := range c.nodes {
			if nd != leader {
				if servers, _ := c.servers(nd); leaderOf(servers) != "" && leaderOf(servers) != leader.id {
					return true
				}
			}
		}
		return false
	})
	c.waitFor("records acknowledged under the new leader", func() bool { return ackedCount() >= before+200 })
	nodeMu.Lock()
	c.restart(leader)
	nodeMu.Unlock()
	before = ackedCount()
	c.waitFor("records acknowledged after the restart", func() bool { return ackedCount() >= before+200 })
	stopProducers()
	if t.Failed() {
		return
	}

	total := ackedCount()
	logs := make([][]*dislogv1.Record, len(c.nodes))
	for i, nd := range c.nodes {
		c.waitFor(nd.id+" to hold every record", func() bool {
			recs, err := readAll(nd, topic)
			logs[i] = recs
			return err == nil && len(recs) >= total
		})
	}
	for i, nd := range c.nodes {
		seen := map[string]uint64{}
		for off, r := range logs[i] {
			is.Equal(r.GetOffset(), uint64(off))
			v := string(r.GetValue())
			if first, dup := seen[v]; dup {
				t.Fatalf("%s: record %q at offsets %d and %d", nd.id, v, first, off)
			}
			seen[v] = uint64(off)
		}
		mu.Lock()
		for off, v := range acked {
			if off >= uint64(len(logs[i])) || string(logs[i][off].GetValue()) != v {
				t.Fatalf("%s: acknowledged record %q is not at offset %d", nd.id, v, off)
			}
		}
		mu.Unlock()
		is.Equal(len(logs[i]), total) // every record stored was acknowledged
		for off, r := range logs[i] {
			l := logs[0][off]
			if string(r.GetValue()) != string(l.GetValue()) || !r.GetAppendTime().AsTime().Equal(l.GetAppendTime().AsTime()) {
				t.Fatalf("offset %d: %s holds %q at %v, %s %q at %v", off, nd.id, r.GetValue(), r.GetAppendTime().AsTime(),
					c.nodes[0].id, l.GetValue(), l.GetAppendTime().AsTime())
			}
		}
	}
	t.Logf("%d records acknowledged across a SIGKILL of leader %s; all %d nodes identical", total, leader.id, len(c.nodes))
}

// A leader whose followers died can no longer confirm that it leads, so it answers a read it
// could otherwise answer from stale state (a new leader may be taking writes elsewhere) with an
// error, not with "out of range" or an old offset.
func TestALeaderWithoutAMajorityRefusesALinearizableRead(t *testing.T) {
	is := is.New(t)
	c := startLocalCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	servers, err := c.servers(c.nodes[0])
	is.NoErr(err)
	leader := c.node(leaderOf(servers))
	_, err = leader.client.CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)
	is.NoErr(leader.client.CommitOffset(ctx, "g", "t", 0))
	for _, nd := range c.nodes {
		if nd != leader {
			c.kill(nd)
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
	defer rcancel()
	_, err = leader.client.API().Consume(rctx, &dislogv1.ConsumeRequest{Topic: "t", Offset: 0, ReadYourWrites: true})
	t.Logf("consume: %v", err)
	code := status.Code(err)
	is.True(code == codes.DeadlineExceeded || code == codes.Unavailable) // not OutOfRange
	fctx, fcancel := context.WithTimeout(ctx, 3*time.Second)
	defer fcancel()
	_, _, err = leader.client.FetchOffset(fctx, "g", "t")
	t.Logf("fetch offset: %v", err)
	code = status.Code(err)
	is.True(code == codes.DeadlineExceeded || code == codes.Unavailable)
}

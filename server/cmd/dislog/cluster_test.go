package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/localcluster"
	"github.com/matryer/is"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// cluster is a cluster of dislog processes on 127.0.0.1 (localcluster's), with a client of each
// node.
type cluster struct {
	t       *testing.T
	lc      *localcluster.Cluster
	clients []*client.Client // node i's; restart replaces it
	logs    *syncBuffer      // every node's output
}

// startCluster builds this command and starts n processes of it: the first bootstraps the cluster,
// the others join it. It returns once every node sees all n servers and a leader.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("runs dislog processes: skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := localcluster.BuildDislog(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, logs: &syncBuffer{}, clients: make([]*client.Client, n)}
	if c.lc, err = localcluster.StartProcesses(ctx, localcluster.Options{Bin: bin, Nodes: n, Log: c.logs, Args: []string{"--log-level", "warn"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.lc.Close() })
	for i := range n {
		c.dial(i)
	}
	c.waitFor("every node to see all servers and a leader", func() bool {
		for i := range n {
			if servers, _ := c.servers(i); len(servers) != n || leaderOf(servers) < 0 {
				return false
			}
		}
		return true
	})
	return c
}

func (c *cluster) dial(i int) {
	c.t.Helper()
	cl, err := c.lc.Dial(c.lc.Addrs[i], client.WithProduceRetries(0))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	c.clients[i] = cl
}

// kill ends node i with SIGKILL.
func (c *cluster) kill(i int) {
	c.t.Helper()
	if err := c.lc.Kill(i); err != nil {
		c.t.Fatal(err)
	}
	c.clients[i].Close()
}

// restart starts killed node i again, joining the others.
func (c *cluster) restart(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.lc.Restart(ctx, i); err != nil {
		c.t.Fatal(err)
	}
	c.dial(i)
}

func (c *cluster) servers(i int) ([]*dislogv1.Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := c.clients[i].API().GetServers(ctx, &dislogv1.GetServersRequest{})
	return resp.GetServers(), err
}

// leaderOf returns the index of the node servers name as leader, or -1.
func leaderOf(servers []*dislogv1.Server) int {
	for _, s := range servers {
		if s.GetIsLeader() {
			for i := range len(servers) {
				if s.GetId() == localcluster.NodeName(i) {
					return i
				}
			}
		}
	}
	return -1
}

// waitFor polls cond until it holds, for at most 30 s.
func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s\nthe nodes' output:\n%s", what, c.logs.String())
		}
		<-tick.C
	}
}

// readAll reads a topic from one node's own log.
func readAll(cl *client.Client, topic string) ([]*dislogv1.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := cl.API().ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{Topic: topic})
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
	c := startCluster(t, 3)
	const topic = "replicated"
	c.waitFor("the topic to be created", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.clients[0].API().CreateTopic(ctx, &dislogv1.CreateTopicRequest{Topic: topic})
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
					api := c.clients[attempt%len(c.clients)].API()
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
	servers, err := c.servers(0)
	is.NoErr(err)
	leader := leaderOf(servers)
	is.True(leader >= 0)
	nodeMu.Lock()
	c.kill(leader)
	nodeMu.Unlock()
	before := ackedCount()
	c.waitFor("a new leader", func() bool {
		for i := range c.clients {
			if i != leader {
				if servers, _ := c.servers(i); leaderOf(servers) >= 0 && leaderOf(servers) != leader {
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
	logs := make([][]*dislogv1.Record, len(c.clients))
	for i, cl := range c.clients {
		c.waitFor(localcluster.NodeName(i)+" to hold every record", func() bool {
			recs, err := readAll(cl, topic)
			logs[i] = recs
			return err == nil && len(recs) >= total
		})
	}
	for i := range c.clients {
		nd := localcluster.NodeName(i)
		seen := map[string]uint64{}
		for off, r := range logs[i] {
			is.Equal(r.GetOffset(), uint64(off))
			v := string(r.GetValue())
			if first, dup := seen[v]; dup {
				t.Fatalf("%s: record %q at offsets %d and %d", nd, v, first, off)
			}
			seen[v] = uint64(off)
		}
		mu.Lock()
		for off, v := range acked {
			if off >= uint64(len(logs[i])) || string(logs[i][off].GetValue()) != v {
				t.Fatalf("%s: acknowledged record %q is not at offset %d", nd, v, off)
			}
		}
		mu.Unlock()
		is.Equal(len(logs[i]), total) // every record stored was acknowledged
		for off, r := range logs[i] {
			l := logs[0][off]
			if string(r.GetValue()) != string(l.GetValue()) || !r.GetAppendTime().AsTime().Equal(l.GetAppendTime().AsTime()) {
				t.Fatalf("offset %d: %s holds %q at %v, %s %q at %v", off, nd, r.GetValue(), r.GetAppendTime().AsTime(),
					localcluster.NodeName(0), l.GetValue(), l.GetAppendTime().AsTime())
			}
		}
	}
	t.Logf("%d records acknowledged across a SIGKILL of leader %s; all %d nodes identical", total, localcluster.NodeName(leader), len(c.clients))
}

// A leader whose followers died can no longer confirm that it leads, so it answers a read it
// could otherwise answer from stale state (a new leader may be taking writes elsewhere) with an
// error, not with "out of range" or an old offset.
func TestALeaderWithoutAMajorityRefusesALinearizableRead(t *testing.T) {
	is := is.New(t)
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	servers, err := c.servers(0)
	is.NoErr(err)
	leader := leaderOf(servers)
	is.True(leader >= 0)
	lc := c.clients[leader]
	_, err = lc.CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)
	is.NoErr(lc.CommitOffset(ctx, "g", "t", 0))
	for i := range c.clients {
		if i != leader {
			c.kill(i)
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
	defer rcancel()
	_, err = lc.API().Consume(rctx, &dislogv1.ConsumeRequest{Topic: "t", Offset: 0, ReadYourWrites: true})
	t.Logf("consume: %v", err)
	code := status.Code(err)
	is.True(code == codes.DeadlineExceeded || code == codes.Unavailable) // not OutOfRange
	fctx, fcancel := context.WithTimeout(ctx, 3*time.Second)
	defer fcancel()
	_, _, err = lc.FetchOffset(fctx, "g", "t")
	t.Logf("fetch offset: %v", err)
	code = status.Code(err)
	is.True(code == codes.DeadlineExceeded || code == codes.Unavailable)
}

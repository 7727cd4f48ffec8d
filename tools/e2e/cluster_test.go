package e2e

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/server/localcluster"
	"github.com/dislog/dislog/server/servertest"
	"github.com/matryer/is"
)

// processCluster is a cluster of dislog processes on loopback (localcluster's), with a client
// certificate its policy allows everything.
type processCluster struct {
	t    *testing.T
	lc   *localcluster.Cluster
	logs *lockedBuffer // the nodes' output, logged if the test fails
}

// target is the cluster as a client's target, naming every node.
func (c *processCluster) target() string {
	return "dislog:///" + strings.Join(c.lc.Addrs, ",")
}

func (c *processCluster) dial(target string, opts ...client.Option) *client.Client {
	c.t.Helper()
	cl, err := c.lc.Dial(target, opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// startProcessCluster runs size dislog processes: node1 bootstraps the cluster, the others join it
// through Serf. It returns once every node is a voter; the nodes are stopped when the test ends.
func startProcessCluster(t *testing.T, size int) *processCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("runs dislog processes: skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &processCluster{t: t, logs: &lockedBuffer{}}
	lc, err := localcluster.StartProcesses(ctx, localcluster.Options{Bin: build(t, "server/cmd/dislog"), Nodes: size, Log: c.logs})
	if err != nil {
		t.Fatal(err)
	}
	c.lc = lc
	t.Cleanup(func() {
		lc.Close()
		if t.Failed() {
			t.Logf("the nodes' output:\n%s", c.logs.String())
		}
	})
	cl := c.dial(lc.Addrs[0])
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

// leader returns the index of the node that leads, as the cluster says.
func (c *processCluster) leader(cl *client.Client) int {
	c.t.Helper()
	leader := -1
	servertest.WaitFor(c.t, 30*time.Second, "a leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		servers, err := cl.GetServers(ctx)
		if err != nil {
			return false
		}
		for _, s := range servers {
			if i := slices.Index(c.lc.Addrs, s.RPCAddr); s.IsLeader && i >= 0 {
				leader = i
				return true
			}
		}
		return false
	})
	return leader
}

// lockedBuffer is a buffer safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestProduceThroughALeaderKillWritesEachRecordOnce(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	c := startProcessCluster(t, 3)
	cl := c.dial(c.target())
	_, err := cl.CreateTopic(ctx, "orders", client.TopicConfig{})
	is.NoErr(err)
	leader := c.leader(cl)

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
			is.NoErr(c.lc.Kill(leader))
			killed = time.Now()
		}
	}
	is.NoErr(p.Close())
	t.Logf("killed the leader %s at record %d; the producer had every result %v later", localcluster.NodeName(leader), killAt, time.Since(killed).Round(time.Millisecond))
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
	for i, addr := range c.lc.Addrs {
		if i == leader {
			continue
		}
		one := c.dial(addr)
		servertest.WaitFor(t, 30*time.Second, localcluster.NodeName(i)+" to hold every record", func() bool {
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

package partition

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// testRaft is a Raft configuration with short timings, for groups in one process.
func testRaft() *raft.Config {
	c := raft.DefaultConfig()
	c.HeartbeatTimeout = 150 * time.Millisecond
	c.ElectionTimeout = 150 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	return c
}

// gate decides what happens to AppendEntries calls that carry entries, per target.
type gateMode int

const (
	gateOpen gateMode = iota
	// gateBlock holds the call before it reaches the target.
	gateBlock
	// gateHoldReply delivers the call (the target stores the entries) and holds the reply, so
	// the leader cannot count the target's acknowledgement.
	gateHoldReply
)

// gatedTransport is an in-memory transport whose AppendEntries carrying entries can be held, per
// target, while heartbeats (which carry none) go through, so a leader keeps its lease.
type gatedTransport struct {
	*raft.InmemTransport
	mu      sync.Mutex
	changed chan struct{}
	modes   map[raft.ServerAddress]gateMode
}

func newGatedTransport(addr raft.ServerAddress) *gatedTransport {
	_, tr := raft.NewInmemTransport(addr)
	return &gatedTransport{InmemTransport: tr, changed: make(chan struct{}), modes: map[raft.ServerAddress]gateMode{}}
}

func (g *gatedTransport) set(target raft.ServerAddress, m gateMode) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.modes[target] = m
	close(g.changed)
	g.changed = make(chan struct{})
}

// openAll opens every gate.
func (g *gatedTransport) openAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.modes)
	close(g.changed)
	g.changed = make(chan struct{})
}

// waitWhile blocks while target's mode is m.
func (g *gatedTransport) waitWhile(target raft.ServerAddress, m gateMode) {
	for {
		g.mu.Lock()
		mode, ch := g.modes[target], g.changed
		g.mu.Unlock()
		if mode != m {
			return
		}
		<-ch
	}
}

// AppendEntriesPipeline is refused, so that every AppendEntries passes the gate.
func (g *gatedTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

func (g *gatedTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if len(args.Entries) == 0 {
		return g.InmemTransport.AppendEntries(id, target, args, resp)
	}
	g.waitWhile(target, gateBlock)
	err := g.InmemTransport.AppendEntries(id, target, args, resp)
	g.waitWhile(target, gateHoldReply)
	return err
}

// testCluster is the replicas of one partition, in one process.
type testCluster struct {
	t        testing.TB
	root     string
	ids      []raft.ServerID
	mu       sync.Mutex
	replicas map[raft.ServerID]*Replica
	trans    map[raft.ServerID]*gatedTransport
	// configure adjusts each replica's Config before Open.
	configure func(*Config)
}

func addrOf(id raft.ServerID) raft.ServerAddress { return raft.ServerAddress("addr-" + id) }

// newTestCluster opens n replicas and bootstraps them all with the same servers.
func newTestCluster(t testing.TB, n int, configure func(*Config)) *testCluster {
	c := &testCluster{
		t: t, root: t.TempDir(), replicas: map[raft.ServerID]*Replica{}, trans: map[raft.ServerID]*gatedTransport{},
		configure: configure,
	}
	var servers []raft.Server
	for i := range n {
		id := raft.ServerID(fmt.Sprintf("r%d", i))
		c.ids = append(c.ids, id)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: addrOf(id)})
	}
	for _, id := range c.ids {
		c.start(id)
	}
	for _, id := range c.ids {
		if err := c.replica(id).Bootstrap(servers); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.closeAll)
	return c
}

// start opens the replica id (again) on a new transport connected to every running replica.
func (c *testCluster) start(id raft.ServerID) *Replica {
	c.t.Helper()
	tr := newGatedTransport(addrOf(id))
	c.mu.Lock()
	for other, o := range c.trans {
		tr.Connect(addrOf(other), o.InmemTransport)
		o.Connect(addrOf(id), tr.InmemTransport)
	}
	c.mu.Unlock()
	cfg := Config{Topic: "t", Partition: 3, Dir: filepath.Join(c.root, string(id)), LocalID: id, Transport: tr, Raft: testRaft()}
	if c.configure != nil {
		c.configure(&cfg)
	}
	r, err := Open(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.replicas[id], c.trans[id] = r, tr
	c.mu.Unlock()
	return r
}

// stop closes the replica id and cuts it off.
func (c *testCluster) stop(id raft.ServerID) {
	c.t.Helper()
	c.mu.Lock()
	r := c.replicas[id]
	// Every gate opens, so that no replication call holds raft's shutdown (a failed test stops
	// its replicas with gates closed).
	c.trans[id].openAll()
	delete(c.replicas, id)
	delete(c.trans, id)
	for _, o := range c.trans {
		o.Disconnect(addrOf(id))
	}
	c.mu.Unlock()
	if err := r.Close(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testCluster) closeAll() {
	c.mu.Lock()
	ids := make([]raft.ServerID, 0, len(c.replicas))
	for id := range c.replicas {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.stop(id)
	}
}

func (c *testCluster) replica(id raft.ServerID) *Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replicas[id]
}

func (c *testCluster) running() []*Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	var rs []*Replica
	for _, id := range c.ids {
		if r := c.replicas[id]; r != nil {
			rs = append(rs, r)
		}
	}
	return rs
}

// leader waits for a running replica to lead, and for its producers' table to be ready.
func (c *testCluster) leader() *Replica {
	c.t.Helper()
	var leader *Replica
	waitFor(c.t, 10*time.Second, "a leader", func() bool {
		for _, r := range c.running() {
			if r.IsLeader() && r.Barrier(context.Background()) == nil {
				leader = r
				return true
			}
		}
		return false
	})
	return leader
}

// followers returns the running replicas but r.
func (c *testCluster) followers(r *Replica) []*Replica {
	var fs []*Replica
	for _, o := range c.running() {
		if o != r {
			fs = append(fs, o)
		}
	}
	return fs
}

// waitApplied waits until every running replica has applied up to next.
func (c *testCluster) waitApplied(next uint64) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range c.running() {
		if next > 0 {
			if err := r.Wait(ctx, next-1); err != nil {
				c.t.Fatalf("%s waiting for offset %d: %v", r.cfg.LocalID, next-1, err)
			}
		}
	}
}

// produce sends a batch to whichever replica leads, retrying (the same batch) through leader
// changes, as an idempotent producer does. Only the test's goroutine may call it.
func (c *testCluster) produce(b Batch) Result {
	c.t.Helper()
	res, err := c.tryProduce(b)
	if err != nil {
		c.t.Fatal(err)
	}
	return res
}

// tryProduce is produce for any goroutine: it returns what would fail the test.
func (c *testCluster) tryProduce(b Batch) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		for _, r := range c.running() {
			if !r.IsLeader() {
				continue
			}
			res, err := r.Produce(ctx, b)
			if err == nil {
				return res, nil
			}
			if errors.Is(err, ErrSequence) || errors.Is(err, ErrBatchTooLarge) {
				return Result{}, fmt.Errorf("produce: %w", err)
			}
		}
		select {
		case <-time.After(5 * time.Millisecond): // a retry's backoff, as a client's
		case <-ctx.Done():
			return Result{}, errors.New("produce: no leader took the batch before the deadline")
		}
	}
}

// readAll reads every record a replica serves.
func readAll(t *testing.T, r *Replica) []Record {
	t.Helper()
	lowest, next := r.Offsets()
	var all []Record
	for off := lowest; off < next; {
		recs, err := r.ReadBatch(off, 7, 0)
		if err != nil {
			t.Fatalf("%s: read %d: %v", r.cfg.LocalID, off, err)
		}
		for _, rec := range recs {
			if rec.Offset != off {
				t.Fatalf("%s: record at %d says offset %d", r.cfg.LocalID, off, rec.Offset)
			}
			off++
		}
		all = append(all, recs...)
	}
	return all
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func records(prefix string, n int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = fmt.Appendf(nil, "%s-%d", prefix, i)
	}
	return recs
}

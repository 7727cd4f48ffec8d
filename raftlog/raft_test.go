package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

// hashFSM folds every command it applies, in order, into a checksum: two FSMs with equal counts and
// sums applied the same commands in the same order. It also counts the partition offsets of the
// records commands carry (recordsOf), as a partition's state machine does, so that it can answer
// Options.BaseAt from the snapshot it restored.
type hashFSM struct {
	mu      sync.Mutex
	count   uint64
	sum     uint32
	offsets uint64 // the next record's partition offset
}

func (f *hashFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	f.sum = crc32.Update(f.sum, crc32.IEEETable, l.Data)
	f.offsets += recordsOf(l)
	return nil
}

func (f *hashFSM) state() (uint64, uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count, f.sum
}

// nextOffset is the partition offset of the next record: the base of the entry after the last one
// applied or restored.
func (f *hashFSM) nextOffset() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.offsets
}

func (f *hashFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fsmSnapshot{f.count, f.sum, f.offsets}, nil
}

func (f *hashFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [20]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count, f.sum, f.offsets = binary.BigEndian.Uint64(b[:]), binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint64(b[12:])
	return nil
}

type fsmSnapshot struct {
	count   uint64
	sum     uint32
	offsets uint64
}

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	b := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, s.count), s.sum)
	b = binary.BigEndian.AppendUint64(b, s.offsets)
	if _, err := sink.Write(b); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (fsmSnapshot) Release() {}

// node is one raft server on raftlog stores in its own directory.
type node struct {
	id    raft.ServerID
	dir   string
	store *Store
	fsm   *hashFSM
	trans *raft.InmemTransport
	raft  *raft.Raft
}

type cluster struct {
	t     *testing.T
	nodes []*node
	// restoreCommitted sets raft.Config.RestoreCommittedLogs, without which raft neither stages
	// commit indexes nor replays from them. raft v1.8.0 replays from NewRaft into a channel of 128 batches that nothing drains until NewRaft
	// returns, so it blocks for good when more than 128*MaxAppendEntries entries are to be replayed:
	// the tests use it only on logs shorter than that.
	restoreCommitted bool
	// translate opens the stores with the offset translation (recordsOf), with BaseAt answered by
	// the node's FSM.
	translate bool
}

func newCluster(t *testing.T, n int, restoreCommitted, translate bool) *cluster {
	c := &cluster{t: t, restoreCommitted: restoreCommitted, translate: translate}
	dir := t.TempDir()
	var servers []raft.Server
	for i := range n {
		id := raft.ServerID(fmt.Sprintf("node-%d", i))
		c.nodes = append(c.nodes, &node{id: id, dir: filepath.Join(dir, string(id))})
		servers = append(servers, raft.Server{ID: id, Address: raft.ServerAddress(id)})
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
	for _, nd := range c.nodes {
		// A node that a leader (bootstrapped by the others) reached first has the configuration
		// already: ErrCantBootstrap then says it is where bootstrapping would have put it.
		err := nd.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			t.Fatalf("bootstrap %s: %v", nd.id, err)
		}
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.raft != nil {
				c.stop(nd)
			}
		}
	})
	return c
}

// start opens a node's stores and starts its raft, connected to every other running node.
func (c *cluster) start(nd *node) {
	c.t.Helper()
	var err error
	nd.fsm = &hashFSM{}
	var opts Options
	if c.translate {
		fsm := nd.fsm
		opts.Records = recordsOf
		opts.BaseAt = func(uint64) uint64 { return fsm.nextOffset() }
	}
	if nd.store, err = Open(nd.dir, opts); err != nil {
		c.t.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStore(nd.dir, 2, io.Discard)
	if err != nil {
		c.t.Fatal(err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = nd.id
	// The server's timings: shorter ones lose the lead mid-test when the race detector and other
	// tests load the two cores (an fsync can take milliseconds then), and apply fails with
	// ErrLeadershipLost.
	conf.HeartbeatTimeout = 500 * time.Millisecond
	conf.ElectionTimeout = 500 * time.Millisecond
	conf.LeaderLeaseTimeout = 250 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotThreshold = 1 << 40 // snapshots only when the test asks
	conf.TrailingLogs = 100
	conf.RestoreCommittedLogs = c.restoreCommitted
	conf.LogOutput = io.Discard
	_, nd.trans = raft.NewInmemTransport(raft.ServerAddress(nd.id))
	if nd.raft, err = raft.NewRaft(conf, nd.fsm, nd.store, nd.store, snaps, nd.trans); err != nil {
		c.t.Fatalf("start %s: %v", nd.id, err)
	}
	for _, other := range c.nodes {
		if other != nd && other.raft != nil {
			nd.trans.Connect(raft.ServerAddress(other.id), other.trans)
			other.trans.Connect(raft.ServerAddress(nd.id), nd.trans)
		}
	}
}

// stop shuts a node's raft down and closes its stores.
func (c *cluster) stop(nd *node) {
	c.t.Helper()
	if err := nd.raft.Shutdown().Error(); err != nil {
		c.t.Fatalf("shut down %s: %v", nd.id, err)
	}
	nd.raft = nil
	for _, other := range c.nodes {
		if other.raft != nil {
			other.trans.Disconnect(raft.ServerAddress(nd.id))
		}
	}
	if err := nd.store.Close(); err != nil {
		c.t.Fatalf("close %s: %v", nd.id, err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(5 * time.Millisecond)
	}
}

func (c *cluster) leader() *node {
	c.t.Helper()
	var leader *node
	c.waitFor("a leader", func() bool {
		for _, nd := range c.nodes {
			if nd.raft != nil && nd.raft.State() == raft.Leader {
				leader = nd
				return true
			}
		}
		return false
	})
	return leader
}

// apply applies commands [from, to) on the leader, many in flight at once, as a busy client would.
func (c *cluster) apply(from, to int) {
	c.t.Helper()
	c.applyData(from, to, func(i int) []byte { return fmt.Appendf(nil, "command %d", i) })
}

// applyData is apply with the data of command i given by data.
func (c *cluster) applyData(from, to int, data func(i int) []byte) {
	c.t.Helper()
	leader := c.leader()
	futures := make([]raft.ApplyFuture, 0, to-from)
	for i := from; i < to; i++ {
		futures = append(futures, leader.raft.Apply(data(i), 10*time.Second))
	}
	for i, f := range futures {
		if err := f.Error(); err != nil {
			c.t.Fatalf("apply command %d: %v", from+i, err)
		}
	}
}

// waitApplied waits until every running node's FSM has applied count commands, the same ones.
func (c *cluster) waitApplied(count uint64) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("every FSM to apply %d commands", count), func() bool {
		var sums []uint32
		for _, nd := range c.nodes {
			if nd.raft == nil {
				continue
			}
			n, sum := nd.fsm.state()
			if n != count {
				return false
			}
			sums = append(sums, sum)
		}
		for _, s := range sums {
			if s != sums[0] {
				c.t.Fatalf("FSMs applied %d commands with different checksums %v", count, sums)
			}
		}
		return true
	})
}

// checkLogsMatch asserts that running nodes hold the same last index and the same entries wherever
// their logs overlap.
func (c *cluster) checkLogsMatch() {
	c.t.Helper()
	var running []*node
	for _, nd := range c.nodes {
		if nd.raft != nil {
			running = append(running, nd)
		}
	}
	c.waitFor("every log to reach the same last index", func() bool {
		want, _ := running[0].store.LastIndex()
		for _, nd := range running[1:] {
			if last, _ := nd.store.LastIndex(); last != want {
				return false
			}
		}
		return true
	})
	a := running[0].store
	for _, nd := range running[1:] {
		b := nd.store
		fa, _ := a.FirstIndex()
		fb, _ := b.FirstIndex()
		last, _ := a.LastIndex()
		var la, lb raft.Log
		for i := max(fa, fb); i <= last; i++ {
			if err := a.GetLog(i, &la); err != nil {
				c.t.Fatalf("%s GetLog(%d): %v", running[0].id, i, err)
			}
			if err := b.GetLog(i, &lb); err != nil {
				c.t.Fatalf("%s GetLog(%d): %v", nd.id, i, err)
			}
			if la.Term != lb.Term || la.Type != lb.Type || !bytes.Equal(la.Data, lb.Data) {
				c.t.Fatalf("index %d differs: %s has term %d %q, %s has term %d %q", i, running[0].id, la.Term, la.Data, nd.id, lb.Term, lb.Data)
			}
		}
	}
}

func TestRaftClusterOnRaftlog(t *testing.T) {
	is := is.New(t)
	c := newCluster(t, 3, false, false)

	c.apply(0, 10_000)
	c.waitApplied(10_000)
	c.checkLogsMatch()

	t.Log("restarting every node")
	for _, nd := range c.nodes {
		c.stop(nd)
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
	c.waitApplied(10_000)
	c.apply(10_000, 10_100)
	c.waitApplied(10_100)
	c.checkLogsMatch()

	t.Log("snapshotting and compacting every node")
	for _, nd := range c.nodes {
		is.NoErr(nd.raft.Snapshot().Error())
		first, err := nd.store.FirstIndex()
		is.NoErr(err)
		last, err := nd.store.LastIndex()
		is.NoErr(err)
		if first <= 1 || last-first+1 > 200 {
			t.Fatalf("%s holds [%d, %d] after a snapshot with 100 trailing logs", nd.id, first, last)
		}
	}
	c.checkLogsMatch()

	t.Log("bringing a far-behind follower back through a snapshot")
	leader := c.leader()
	var behind *node
	for _, nd := range c.nodes {
		if nd != leader {
			behind = nd
			break
		}
	}
	c.stop(behind)
	c.apply(10_100, 12_000)
	is.NoErr(leader.raft.Snapshot().Error())
	leaderFirst, err := leader.store.FirstIndex()
	is.NoErr(err)
	before, err := OpenLogStore(filepath.Join(behind.dir, "log"), Options{})
	is.NoErr(err)
	behindLast, err := before.LastIndex()
	is.NoErr(err)
	is.NoErr(before.Close())
	if leaderFirst <= behindLast+1 {
		t.Fatalf("the leader's log starts at %d, the stopped follower's ends at %d: it is not behind the compaction", leaderFirst, behindLast)
	}
	c.start(behind)
	c.waitApplied(12_000)
	c.apply(12_000, 12_010) // the follower's log, emptied by the snapshot, starts again after it
	c.waitApplied(12_010)
	c.checkLogsMatch()
	first, err := behind.store.FirstIndex()
	is.NoErr(err)
	if first <= behindLast {
		t.Fatalf("the follower's log starts at %d, not past its old end %d: it was not reset by a snapshot", first, behindLast)
	}
}

func TestRaftReplaysCommittedLogsFromTheStoredCommitIndex(t *testing.T) {
	c := newCluster(t, 3, true, false)
	c.apply(0, 500)
	c.waitApplied(500)
	c.apply(500, 501) // stored with a commit index that covers the first 500
	c.waitApplied(501)
	for _, nd := range c.nodes {
		c.stop(nd)
	}

	// Alone, a node has no quorum: it can neither elect a leader nor learn a commit index, so
	// whatever its FSM applies comes from the commit index raftlog stored.
	lone := c.nodes[0]
	c.start(lone)
	c.waitFor("the lone node to replay its committed entries", func() bool {
		n, _ := lone.fsm.state()
		return n >= 500
	})
	if n, _ := lone.fsm.state(); n > 501 || lone.raft.State() == raft.Leader {
		t.Fatalf("lone node applied %d commands in state %v", n, lone.raft.State())
	}
}

// recordCount is how many records command i of TestRaftTranslationAgreesAcrossNodes carries: 0 to 3.
func recordCount(i int) uint64 { return uint64(i*7%11) % 4 }

func recordCommand(i int) []byte { return recordsData(recordCount(i), fmt.Sprintf("command %d", i)) }

// checkTranslationsAgree asserts that every running node translates every offset of [0, total) it
// holds to the same entry and base, that the entry is a command whose records cover the offset (so
// no-ops and configuration entries are never an offset's entry), that each node's NextOffset is
// total, and that the logs hold raft's own entries for the translation to skip.
func (c *cluster) checkTranslationsAgree(total uint64) {
	c.t.Helper()
	c.checkLogsMatch()
	type found struct{ index, base uint64 }
	want := map[uint64]found{}
	own := map[raft.LogType]int{}
	for _, nd := range c.nodes {
		if nd.raft == nil {
			continue
		}
		s := nd.store
		if next := s.NextOffset(); next != total {
			c.t.Fatalf("%s: NextOffset = %d, want %d", nd.id, next, total)
		}
		var l raft.Log
		for off := s.FirstOffset(); off < total; off++ {
			index, base, err := s.EntryOf(off)
			if err != nil {
				c.t.Fatalf("%s: EntryOf(%d): %v", nd.id, off, err)
			}
			if w, ok := want[off]; ok && (w.index != index || w.base != base) {
				c.t.Fatalf("%s: EntryOf(%d) = %d, %d; another node says %d, %d", nd.id, off, index, base, w.index, w.base)
			}
			want[off] = found{index, base}
			if err := s.GetLog(index, &l); err != nil {
				c.t.Fatalf("%s: GetLog(%d): %v", nd.id, index, err)
			}
			if l.Type != raft.LogCommand || base > off || off-base >= recordsOf(&l) {
				c.t.Fatalf("%s: offset %d translates to entry %d (%v, %q) with base %d", nd.id, off, index, l.Type, l.Data, base)
			}
		}
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		for i := first; i <= last; i++ {
			if err := s.GetLog(i, &l); err != nil {
				c.t.Fatalf("%s: GetLog(%d): %v", nd.id, i, err)
			}
			own[l.Type]++
		}
	}
	if own[raft.LogNoop] == 0 || own[raft.LogConfiguration] == 0 {
		c.t.Fatalf("the logs hold %d no-ops and %d configuration entries: nothing for the translation to skip",
			own[raft.LogNoop], own[raft.LogConfiguration])
	}
	if len(want) == 0 {
		c.t.Fatalf("no node holds an offset of [0, %d)", total)
	}
}

// Three nodes under a real raft store commands carrying 0 to 3 records each, across a leadership
// change and a follower brought back by a snapshot: every node translates every offset to the same
// command entry, skipping raft's no-ops and configuration entries, and the follower that installed
// the snapshot starts its translation where its FSM's snapshot says (Options.BaseAt).
func TestRaftTranslationAgreesAcrossNodes(t *testing.T) {
	is := is.New(t)
	c := newCluster(t, 3, false, true)
	total := func(n int) uint64 {
		var sum uint64
		for i := range n {
			sum += recordCount(i)
		}
		return sum
	}

	c.applyData(0, 200, recordCommand)
	is.NoErr(c.leader().raft.LeadershipTransfer().Error()) // a new term: the new leader's no-op
	c.applyData(200, 400, recordCommand)
	c.waitApplied(400)
	c.checkTranslationsAgree(total(400))

	t.Log("bringing a far-behind follower back through a snapshot")
	leader := c.leader()
	var behind *node
	for _, nd := range c.nodes {
		if nd != leader {
			behind = nd
			break
		}
	}
	behindLast, err := behind.store.LastIndex()
	is.NoErr(err)
	c.stop(behind)
	c.applyData(400, 700, recordCommand)
	is.NoErr(leader.raft.Snapshot().Error())
	leaderFirst, err := leader.store.FirstIndex()
	is.NoErr(err)
	if leaderFirst <= behindLast+1 {
		t.Fatalf("the leader's log starts at %d, the stopped follower's ends at %d: it is not behind the compaction", leaderFirst, behindLast)
	}
	c.start(behind)
	c.applyData(700, 750, recordCommand)
	c.waitApplied(750)
	first, err := behind.store.FirstIndex()
	is.NoErr(err)
	if first <= behindLast {
		t.Fatalf("the follower's log starts at %d, not past its old end %d: it was not reset by a snapshot", first, behindLast)
	}
	if behind.store.FirstOffset() <= total(400) {
		t.Fatalf("the follower's translation starts at offset %d, before the snapshot", behind.store.FirstOffset())
	}
	c.checkTranslationsAgree(total(750))
}

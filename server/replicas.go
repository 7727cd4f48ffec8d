package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/discovery"
	"github.com/dislog/dislog/server/internal/fsm"
	"github.com/dislog/dislog/server/internal/partition"
	peerv1 "github.com/dislog/dislog/server/internal/peerapi/v1"
	"github.com/dislog/dislog/server/internal/placement"
	"github.com/dislog/dislog/server/internal/rpc"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// partitionsDirName is the directory of a data directory that holds the partition replicas, one
// directory per topic incarnation (<topic>+<created index>) with one per partition inside.
const partitionsDirName = "partitions"

// replicas are the partition replicas a server holds. A reconcile loop keeps them matching the
// controller's metadata: it opens (and, for a new partition, bootstraps) the replicas of every
// partition assigned to this server, and closes and deletes those of deleted topics.
type replicas struct {
	c   *cluster
	dir string

	mu     sync.RWMutex
	topics map[string]*topicReplicas
	// closed is set by close: a replica opened after it is closed at once.
	closed bool
}

// topicReplicas are one topic's replicas on this server. Its fields are guarded by replicas.mu.
type topicReplicas struct {
	name  string
	state fsm.TopicState
	// parts has one entry per partition: the local replica, or nil where this server holds none.
	parts []*partition.Replica
	// unassigned is when each local replica the controller assigned away was first seen so.
	unassigned map[int]time.Time
}

// instance names a topic's incarnation: a topic deleted and created again is another.
func instance(topic string, created uint64) string {
	return topic + "+" + strconv.FormatUint(created, 10)
}

// groupID is a partition's Raft group on the Raft network.
func groupID(topic string, created uint64, p int) string {
	return instance(topic, created) + "/" + strconv.Itoa(p)
}

func newReplicas(c *cluster) *replicas {
	return &replicas{c: c, dir: filepath.Join(c.opts.dataDir, partitionsDirName), topics: map[string]*topicReplicas{}}
}

// run reconciles at every change of the metadata, and every reconcile interval (replicas assigned
// away wait for their groups), until the cluster stops.
func (r *replicas) run() {
	tick := time.NewTicker(r.c.opts.reconcileInterval)
	defer tick.Stop()
	for {
		state, changed := r.c.fsm.Watch()
		r.reconcile(state)
		select {
		case <-changed:
		case <-tick.C:
		case <-r.c.stopped.Done():
			return
		}
	}
}

// retentionLoop applies each local replica's retention periodically.
func (r *replicas) retentionLoop() {
	tick := time.NewTicker(r.c.opts.retentionInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.c.stopped.Done():
			return
		case <-tick.C:
		}
		r.each(func(l localReplica) {
			if err := l.rep.ApplyRetention(); err != nil {
				r.c.log.Warn("retention", slog.String("topic", l.topic), slog.Int("partition", l.p), slog.Any("error", err))
			}
		})
	}
}

// preferredLeaderLoop moves each partition's leadership back to its preferred replica (the first
// of its replica set, which placement balances over the servers) when that replica is up and this
// server leads instead, as Kafka's preferred leader election does. The leader's reconcile interval
// paces it.
func (r *replicas) preferredLeaderLoop() {
	tick := time.NewTicker(r.c.opts.reconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.c.stopped.Done():
			return
		case <-tick.C:
		}
		if r.c.membershipStopped() {
			continue
		}
		up := r.c.aliveServers()
		addrs := r.c.addresses()
		r.each(func(l localReplica) {
			preferred := l.state.Replicas[l.p][0]
			if preferred == r.c.id || !l.rep.IsLeader() || !slices.Contains(up, preferred) || addrs[preferred] == "" {
				return
			}
			if err := l.rep.TransferLeadership(raft.ServerID(preferred), raft.ServerAddress(addrs[preferred])); err != nil {
				r.c.log.Debug("moving a partition's leadership to its preferred replica", slog.String("topic", l.topic),
					slog.Int("partition", l.p), slog.String("to", preferred), slog.Any("error", err))
				return
			}
			r.c.log.Info("moved a partition's leadership to its preferred replica", slog.String("topic", l.topic),
				slog.Int("partition", l.p), slog.String("to", preferred))
		})
	}
}

// membershipLoop makes each partition's group match its assignment, on the replica that leads
// it: it removes the servers assigned away that are out of the cluster, adds the assigned servers
// the group lacks, one at a time, and once every assigned server is in, removes the servers
// assigned away, handing the leadership over first if this server is one of them.
func (r *replicas) membershipLoop() {
	tick := time.NewTicker(r.c.opts.reconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.c.stopped.Done():
			return
		case <-tick.C:
		}
		addrs := r.c.addresses()
		r.each(func(l localReplica) {
			if !l.rep.IsLeader() {
				return
			}
			if err := r.matchMembers(l.rep, l.state.Replicas[l.p], addrs); err != nil {
				r.c.log.Warn("changing a partition's replicas", slog.String("topic", l.topic), slog.Int("partition", l.p), slog.Any("error", err))
			}
		})
	}
}

// matchMembers takes one step toward a group of the servers want, on its leader.
func (r *replicas) matchMembers(rep *partition.Replica, want []string, addrs map[string]string) error {
	conf, err := rep.Configuration()
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, s := range conf {
		have[string(s.ID)] = s.Suffrage == raft.Voter
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A server assigned away that is out of the cluster goes first: while it stays a voter, the
	// new replica, which counts toward the majority from the start, would have to catch up before
	// the partition could commit again.
	for id := range have {
		if _, in := addrs[id]; !in && !contains(want, id) && id != r.c.id {
			r.c.log.Info("removing a replica of a server out of the cluster from a partition", slog.String("id", id))
			return rep.RemoveServer(ctx, raft.ServerID(id))
		}
	}
	for _, id := range want {
		if !have[id] {
			addr, ok := addrs[id]
			if !ok {
				return fmt.Errorf("server %q is not in the cluster's configuration", id)
			}
			r.c.log.Info("adding a replica to a partition", slog.String("id", id))
			return rep.AddVoter(ctx, raft.ServerID(id), raft.ServerAddress(addr))
		}
	}
	for id := range have {
		if contains(want, id) {
			continue
		}
		if id == r.c.id {
			to := want[0]
			return rep.TransferLeadership(raft.ServerID(to), raft.ServerAddress(addrs[to]))
		}
		r.c.log.Info("removing a replica from a partition", slog.String("id", id))
		return rep.RemoveServer(ctx, raft.ServerID(id))
	}
	return nil
}

// reassignLoop, on the controller's leader, places elsewhere the replicas of servers that have
// been out of the cluster (out of the controller's configuration, and not alive in Serf) for the
// failed-remove grace period: a server that merely restarts keeps its replicas. It also gives a
// partition left with fewer replicas than its replication factor (while too few servers were up)
// the ones it lacks once servers are there. Placement keeps every other replica where it is.
func (r *replicas) reassignLoop() {
	tick := time.NewTicker(r.c.opts.reconcileInterval)
	defer tick.Stop()
	absent := map[string]time.Time{}
	for {
		select {
		case <-r.c.stopped.Done():
			return
		case <-tick.C:
		}
		if r.c.raft.State() != raft.Leader || r.c.membershipStopped() {
			clear(absent)
			continue
		}
		r.reassign(absent)
	}
}

func (r *replicas) reassign(absent map[string]time.Time) {
	addrs := r.c.addresses()
	alive := map[string]bool{}
	if r.c.members != nil {
		for _, m := range r.c.members.Members() {
			if m.Status == discovery.StatusAlive {
				alive[m.ID] = true
			}
		}
	}
	servers := slices.Sorted(maps.Keys(addrs))
	gone := map[string]bool{}
	now := time.Now()
	for _, name := range r.c.fsm.Topics() {
		t, _ := r.c.fsm.Topic(name)
		for _, rs := range t.Replicas {
			for _, id := range rs {
				if _, in := addrs[id]; in || alive[id] {
					delete(absent, id)
					continue
				}
				since, ok := absent[id]
				if !ok {
					absent[id] = now
				} else if now.Sub(since) >= r.c.opts.failedRemoveAfter {
					gone[id] = true
				}
			}
		}
	}
	for _, name := range r.c.fsm.Topics() {
		t, _ := r.c.fsm.Topic(name)
		rf := min(t.ReplicationFactor, len(servers))
		// A partition needs new replicas if one of its servers is gone for good, or if it has fewer
		// than the servers there are allow (it lost one while there were too few, and a server came).
		needs := func(p int) bool {
			return len(t.Replicas[p]) < rf || slices.ContainsFunc(t.Replicas[p], func(id string) bool { return gone[id] })
		}
		if !slices.ContainsFunc(t.Replicas, func(rs []string) bool {
			return len(rs) < rf || slices.ContainsFunc(rs, func(id string) bool { return gone[id] })
		}) {
			continue
		}
		if len(servers) < t.ReplicationFactor {
			r.c.log.Warn("a topic's partitions stay under-replicated: too few servers", slog.String("topic", name),
				slog.Int("replication_factor", t.ReplicationFactor), slog.Int("servers", len(servers)))
		}
		placed, err := placement.Place(t.Replicas, servers, t.Partitions(), rf, nil)
		if err != nil {
			r.c.log.Warn("placing the replicas of a removed server", slog.String("topic", name), slog.Any("error", err))
			continue
		}
		for p := range placed {
			if !needs(p) || slices.Equal(placed[p], t.Replicas[p]) {
				continue
			}
			cmd := fsm.AppendCommand(nil, &fsm.Command{Kind: fsm.KindAssign, Topic: name, Partition: uint32(p), Replicas: [][]string{placed[p]}})
			if res, err := r.c.Submit(context.Background(), cmd)(); err != nil || res.Err != nil {
				r.c.log.Warn("reassigning a partition", slog.String("topic", name), slog.Int("partition", p), slog.Any("error", errors.Join(err, resultErr(res))))
				continue
			}
			r.c.log.Info("gave a partition new replicas", slog.String("topic", name), slog.Int("partition", p),
				slog.Any("from", t.Replicas[p]), slog.Any("to", placed[p]))
		}
	}
}

func resultErr(r *fsm.Result) error {
	if r == nil {
		return nil
	}
	return r.Err
}

// each calls f for every local replica, outside the lock.
func (r *replicas) each(f func(l localReplica)) {
	r.mu.RLock()
	var ls []localReplica
	for _, t := range r.topics {
		for p, rep := range t.parts {
			if rep != nil {
				ls = append(ls, localReplica{topic: t.name, state: t.state, p: p, rep: rep})
			}
		}
	}
	r.mu.RUnlock()
	for _, l := range ls {
		f(l)
	}
}

// localReplica is a local replica with its topic's metadata as each found them.
type localReplica struct {
	topic string
	state fsm.TopicState
	p     int
	rep   *partition.Replica
}

// reconcile makes the local replicas match the metadata: it opens the replicas assigned to this
// server, and closes and deletes those of deleted topics and those assigned away (once the
// partition's group no longer lists this server, or after the failed-remove grace period).
func (r *replicas) reconcile(state map[string]fsm.TopicState) {
	r.mu.RLock()
	var gone []*topicReplicas
	for name, t := range r.topics {
		if want, ok := state[name]; !ok || want.Created != t.state.Created {
			gone = append(gone, t)
		}
	}
	r.mu.RUnlock()
	for _, t := range gone {
		r.drop(t)
	}
	if r.c.fsm.Applied() >= r.c.startIndex {
		r.removeStrays(state)
	}
	addrs := r.c.addresses()
	for name, want := range state {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		t := r.topics[name]
		if t == nil {
			t = &topicReplicas{name: name, parts: make([]*partition.Replica, want.Partitions()), unassigned: map[int]time.Time{}}
			r.topics[name] = t
		}
		t.state = want
		r.mu.Unlock()
		var toOpen []int
		for p, ids := range want.Replicas {
			r.mu.RLock()
			rep := t.parts[p]
			r.mu.RUnlock()
			switch assigned := contains(ids, r.c.id); {
			case rep == nil && assigned:
				toOpen = append(toOpen, p)
			case rep != nil && !assigned:
				r.dropAssignedAway(t, p, rep)
			case rep != nil:
				r.mu.Lock()
				delete(t.unassigned, p)
				r.mu.Unlock()
			}
		}
		r.openAll(t, name, want, toOpen, addrs)
	}
}

// openWorkers bounds the replicas a server opens at once: opening one is mostly waiting for its
// files and its Raft instance, and a topic of hundreds of partitions opened one by one would take
// most of a minute.
const openWorkers = 16

// openAll opens a topic's partition replicas ps, several at once.
func (r *replicas) openAll(t *topicReplicas, name string, want fsm.TopicState, ps []int, addrs map[string]string) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(openWorkers, len(ps)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				rep, err := r.open(name, want, p, want.Replicas[p], addrs)
				if err != nil {
					r.c.log.Error("opening a partition replica", slog.String("topic", name), slog.Int("partition", p), slog.Any("error", err))
					continue
				}
				r.mu.Lock()
				if r.closed {
					r.mu.Unlock()
					rep.Close()
					continue
				}
				t.parts[p] = rep
				delete(t.unassigned, p)
				r.mu.Unlock()
			}
		}()
	}
	for _, p := range ps {
		work <- p
	}
	close(work)
	wg.Wait()
}

// dropAssignedAway closes and deletes a replica the controller assigned to other servers, once its
// group's configuration no longer lists this server (its leader removed it after adding the new
// replica) or the failed-remove grace period has passed.
func (r *replicas) dropAssignedAway(t *topicReplicas, p int, rep *partition.Replica) {
	r.mu.Lock()
	since, ok := t.unassigned[p]
	if !ok {
		since = time.Now()
		t.unassigned[p] = since
	}
	r.mu.Unlock()
	if rep.IsLeader() {
		return // the membership loop hands the leadership over first
	}
	listed := true
	if conf, err := rep.Configuration(); err == nil {
		listed = slices.ContainsFunc(conf, func(s raft.Server) bool { return string(s.ID) == r.c.id })
	}
	if listed && time.Since(since) < r.c.opts.failedRemoveAfter {
		return
	}
	r.mu.Lock()
	t.parts[p] = nil
	delete(t.unassigned, p)
	r.mu.Unlock()
	if err := rep.Close(); err != nil {
		r.c.log.Warn("closing a partition replica assigned away", slog.String("topic", t.name), slog.Int("partition", p), slog.Any("error", err))
	}
	group := groupID(t.name, t.state.Created, p)
	if err := r.c.stable.DeleteGroup(group); err != nil {
		r.c.log.Warn("deleting a partition's Raft state", slog.String("topic", t.name), slog.Int("partition", p), slog.Any("error", err))
	}
	if err := os.RemoveAll(filepath.Join(r.dir, instance(t.name, t.state.Created), strconv.Itoa(p))); err != nil {
		r.c.log.Warn("deleting a partition replica assigned away", slog.String("topic", t.name), slog.Int("partition", p), slog.Any("error", err))
	}
	r.c.log.Info("partition replica assigned away and deleted", slog.String("topic", t.name), slog.Int("partition", p))
}

func contains(ids []string, id string) bool {
	for _, s := range ids {
		if s == id {
			return true
		}
	}
	return false
}

// open opens a partition replica, and bootstraps its group if the replica is one of those the
// partition was created with.
func (r *replicas) open(topic string, t fsm.TopicState, p int, ids []string, addrs map[string]string) (*partition.Replica, error) {
	group := groupID(topic, t.Created, p)
	transport, err := r.c.network.Transport(group)
	if err != nil {
		return nil, err
	}
	o := r.c.opts
	rep, err := partition.Open(partition.Config{
		Topic: topic, Partition: p,
		Dir:             filepath.Join(r.dir, instance(topic, t.Created), strconv.Itoa(p)),
		LocalID:         raft.ServerID(r.c.id),
		Transport:       transport,
		Stable:          r.c.stable.Group(group),
		Raft:            partitionRaftConfig(o, len(ids)),
		Retention:       partition.Retention{Bytes: t.RetentionBytes, Age: time.Duration(t.RetentionAge)},
		MaxEntryBytes:   uint32(o.maxMessageBytes + 1<<20),
		MaxSegmentBytes: uint32(o.segmentBytes),
		Logger:          r.c.log.With(slog.String("group", group)),
	})
	if err != nil {
		transport.Close()
		return nil, err
	}
	servers := make([]raft.Server, 0, len(ids))
	for _, id := range ids {
		addr, ok := addrs[id]
		if !ok {
			rep.Close()
			return nil, fmt.Errorf("server %q of partition %d of topic %q is not in the cluster's configuration", id, p, topic)
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	// The replicas a partition was created with bootstrap its group, all with the same
	// configuration; a replica assigned later starts empty and its leader adds it.
	if t.Assigned[p] == t.Created {
		if err := rep.Bootstrap(servers); err != nil {
			rep.Close()
			return nil, err
		}
	}
	return rep, nil
}

// Floors of the Raft timings of a partition group of several replicas. An idle group costs its
// leader a timer and an AppendEntries per follower every commit timeout (hashicorp/raft tells
// followers the commit index that way) and a heartbeat every tenth of the heartbeat timeout; and
// hundreds of new groups electing at once with the controller's 500 ms timeouts split their votes
// for most of a minute. With these floors a partition's leader is replaced in about two seconds, and
// a follower's reader sees the last records of a burst up to 50 ms late. A group of one replica has
// no followers and no contest: it keeps the server's timings, so a single server elects its
// partitions as fast as its controller.
const (
	partitionHeartbeatFloor = time.Second
	partitionCommitFloor    = 50 * time.Millisecond
)

// partitionRaftConfig is the template of the Raft configuration of a partition group of replicas
// replicas: the server's timings, raised to the floors above for a group of several (the replica
// sets the rest, and keeps Raft from compacting the log on its own: retention does, at segment
// boundaries).
func partitionRaftConfig(o *options, replicas int) *raft.Config {
	conf := raft.DefaultConfig()
	conf.HeartbeatTimeout = o.raft.HeartbeatTimeout
	conf.ElectionTimeout = o.raft.ElectionTimeout
	conf.LeaderLeaseTimeout = o.raft.LeaderLeaseTimeout
	conf.CommitTimeout = o.raft.CommitTimeout
	if replicas > 1 {
		conf.HeartbeatTimeout = max(conf.HeartbeatTimeout, partitionHeartbeatFloor)
		conf.ElectionTimeout = max(conf.ElectionTimeout, partitionHeartbeatFloor)
		conf.LeaderLeaseTimeout = max(conf.LeaderLeaseTimeout, partitionHeartbeatFloor/2)
		conf.CommitTimeout = max(conf.CommitTimeout, partitionCommitFloor)
	}
	conf.SnapshotInterval = o.raft.SnapshotInterval
	conf.SnapshotThreshold = o.raft.SnapshotThreshold
	conf.MaxAppendEntries = 256
	return conf
}

// drop closes a topic's local replicas and deletes their data.
func (r *replicas) drop(t *topicReplicas) {
	r.mu.Lock()
	if r.topics[t.name] == t {
		delete(r.topics, t.name)
	}
	r.mu.Unlock()
	for p, rep := range t.parts {
		if rep == nil {
			continue
		}
		if err := rep.Close(); err != nil {
			r.c.log.Warn("closing a partition replica", slog.String("topic", t.name), slog.Int("partition", p), slog.Any("error", err))
		}
		if err := r.c.stable.DeleteGroup(groupID(t.name, t.state.Created, p)); err != nil {
			r.c.log.Warn("deleting a partition's Raft state", slog.String("topic", t.name), slog.Int("partition", p), slog.Any("error", err))
		}
	}
	if err := os.RemoveAll(filepath.Join(r.dir, instance(t.name, t.state.Created))); err != nil {
		r.c.log.Warn("deleting a topic's replicas", slog.String("topic", t.name), slog.Any("error", err))
	}
}

// removeStrays deletes the directories of topic incarnations the metadata no longer names (a topic
// deleted while this server was down). It runs only once the controller's state holds every entry
// this server's log held when it started: before, an empty or old state would name too little.
func (r *replicas) removeStrays(state map[string]fsm.TopicState) {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name, created, ok := strings.Cut(e.Name(), "+")
		if !ok {
			continue
		}
		if t, live := state[name]; live && strconv.FormatUint(t.Created, 10) == created {
			continue
		}
		r.mu.RLock()
		t := r.topics[name]
		r.mu.RUnlock()
		if t != nil && strconv.FormatUint(t.state.Created, 10) == created {
			continue
		}
		if err := os.RemoveAll(filepath.Join(r.dir, e.Name())); err != nil {
			r.c.log.Warn("deleting a deleted topic's replicas", slog.String("dir", e.Name()), slog.Any("error", err))
		}
	}
}

// close closes every local replica, in parallel: each waits for its Raft to stop.
func (r *replicas) close() error {
	r.mu.Lock()
	ts := r.topics
	r.topics = map[string]*topicReplicas{}
	r.closed = true
	r.mu.Unlock()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, t := range ts {
		for _, rep := range t.parts {
			if rep == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := rep.Close(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// local returns this server's replica of a partition.
func (r *replicas) local(topic string, p int) (*partition.Replica, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t := r.topics[topic]
	if t == nil || p < 0 || p >= len(t.parts) || t.parts[p] == nil {
		return nil, false
	}
	return t.parts[p], true
}

// leaveAll hands the leadership of every partition this server leads to another replica.
func (r *replicas) leaveAll() {
	var wg sync.WaitGroup
	r.each(func(l localReplica) {
		if !l.rep.IsLeader() {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.rep.TransferLeadership("", ""); err != nil {
				r.c.log.Debug("partition leadership transfer", slog.String("topic", l.topic), slog.Int("partition", l.p), slog.Any("error", err))
			}
		}()
	})
	wg.Wait()
}

// Produce appends a batch to a partition through its leader: this server's replica if it leads,
// or the leader's, over the peer API. It retries a server that says it does not lead (which wrote
// nothing) until ctx's deadline, or 10 s.
func (r *replicas) Produce(ctx context.Context, topic string, p int, b partition.Batch) (partition.Result, error) {
	t, ok := r.c.fsm.Topic(topic)
	if !ok {
		return partition.Result{}, status.Errorf(codes.NotFound, "topic %q does not exist", topic)
	}
	if p < 0 || p >= t.Partitions() {
		return partition.Result{}, status.Errorf(codes.InvalidArgument, "topic %q has partitions 0 to %d, not %d", topic, t.Partitions()-1, p)
	}
	ctx, cancel := context.WithTimeout(ctx, applyTimeout(ctx))
	defer cancel()
	retry := time.NewTicker(20 * time.Millisecond)
	defer retry.Stop()
	tried := 0
	for {
		rep, held := r.local(topic, p)
		var addr string
		switch {
		case held && rep.IsLeader():
			res, err := rep.Produce(ctx, b)
			if err == nil || !errors.Is(err, raft.ErrNotLeader) {
				return res, produceError(err)
			}
		case held:
			_, a := rep.Leader()
			addr = string(a)
		default:
			// Not a replica: ask the replicas in turn; the one that leads takes it.
			addrs := r.c.addresses()
			addr = addrs[t.Replicas[p][tried%len(t.Replicas[p])]]
			tried++
		}
		if addr != "" && addr != r.c.addr {
			res, err := r.forward(ctx, addr, topic, p, b)
			if err == nil || !dislogv1.IsNotLeader(err) {
				return res, err
			}
		}
		select {
		case <-ctx.Done():
			return partition.Result{}, status.Errorf(codes.Unavailable, "partition %d of topic %q has no leader; retry later", p, topic)
		case <-r.c.stopped.Done():
			return partition.Result{}, errShuttingDown
		case <-retry.C:
		}
	}
}

var errShuttingDown = status.Error(codes.Unavailable, "the server is shutting down; retry on another server")

func (r *replicas) forward(ctx context.Context, addr, topic string, p int, b partition.Batch) (partition.Result, error) {
	client, err := r.c.peers.client(addr)
	if err != nil {
		return partition.Result{}, status.Errorf(codes.Internal, "dial the partition's leader: %v", err)
	}
	resp, err := client.Produce(ctx, &peerv1.ProduceRequest{
		Topic: topic, Partition: uint32(p), ProducerId: b.ProducerID, Sequence: b.Sequence, Records: b.Records,
	})
	if err != nil {
		return partition.Result{}, err
	}
	return partition.Result{BaseOffset: resp.GetBaseOffset(), Duplicate: resp.GetDuplicate()}, nil
}

// produceError maps a partition's produce error to a status.
func produceError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return dislogv1.NotLeaderError(err.Error())
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrEnqueueTimeout):
		// UNAVAILABLE (or DEADLINE_EXCEEDED), as for the controller: a client retries, and an
		// idempotent producer's retry settles whether the batch was written.
		return raftError(err)
	case errors.Is(err, partition.ErrClosed):
		return status.Error(codes.Unavailable, "the partition's replica on this server is closed (the server is stopping, or the replica moved); retry")
	}
	return rpc.ResultError(err)
}

// Produce is the peer API's produce: this server must lead the partition.
func (s *peerService) Produce(ctx context.Context, req *peerv1.ProduceRequest) (*peerv1.ProduceResponse, error) {
	rep, ok := s.c.replicas.local(req.GetTopic(), int(req.GetPartition()))
	if !ok || !rep.IsLeader() {
		return nil, dislogv1.NotLeaderError("not the partition's leader")
	}
	res, err := rep.Produce(ctx, partition.Batch{ProducerID: req.GetProducerId(), Sequence: req.GetSequence(), Records: req.GetRecords()})
	if err != nil {
		return nil, produceError(err)
	}
	return &peerv1.ProduceResponse{BaseOffset: res.BaseOffset, Duplicate: res.Duplicate}, nil
}

// addresses maps the id of every server in the controller's configuration to its address.
func (c *cluster) addresses() map[string]string {
	addrs := map[string]string{}
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return addrs
	}
	for _, s := range f.Configuration().Servers {
		addrs[string(s.ID)] = string(s.Address)
	}
	return addrs
}

// Topic returns a topic's metadata as this server has applied it.
func (c *cluster) Topic(name string) (fsm.TopicState, bool) { return c.fsm.Topic(name) }

// Topics lists the topics, sorted.
func (c *cluster) Topics() []string { return c.fsm.Topics() }

// upServers lists the servers of the controller's configuration: the leader removes a server that
// leaves at once, and one that fails after the failed-remove grace period, so these are the servers
// up but for failures younger than that (which Serf may also report, wrongly, of a server too busy
// to answer its probes).
func (c *cluster) upServers() []string {
	return slices.Sorted(maps.Keys(c.addresses()))
}

// aliveServers lists the servers Serf reports alive (this one always; every server of the
// configuration without Serf).
func (c *cluster) aliveServers() []string {
	if c.members == nil {
		return c.upServers()
	}
	alive := []string{c.id}
	for _, m := range c.members.Members() {
		if m.Status == discovery.StatusAlive && m.ID != c.id {
			alive = append(alive, m.ID)
		}
	}
	return alive
}

// DefaultReplicationFactor is 3 on a cluster of three servers or more, else 1.
func (c *cluster) DefaultReplicationFactor() int {
	if len(c.addresses()) >= 3 {
		return 3
	}
	return 1
}

// Place places a new topic's replicas over the servers that are up, balanced with the topics
// there are.
func (c *cluster) Place(partitions, replicationFactor int) ([][]string, error) {
	up := c.upServers()
	if replicationFactor > len(up) {
		return nil, status.Errorf(codes.FailedPrecondition, "replication factor %d is more than the %d servers up (%s); use a smaller one or bring servers up",
			replicationFactor, len(up), strings.Join(up, ", "))
	}
	load := map[string]placement.Load{}
	for _, name := range c.fsm.Topics() {
		t, _ := c.fsm.Topic(name)
		for _, rs := range t.Replicas {
			for i, id := range rs {
				l := load[id]
				l.Replicas++
				if i == 0 {
					l.Leaders++
				}
				load[id] = l
			}
		}
	}
	a, err := placement.Place(nil, up, partitions, replicationFactor, load)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "placing %d partitions of %d replicas: %v", partitions, replicationFactor, err)
	}
	return a, nil
}

// Replica returns this server's replica of a partition, waiting for one assigned here to open and,
// after a restart, to apply what it knew was committed.
func (c *cluster) Replica(ctx context.Context, topic string, p int) (*partition.Replica, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		// A replica that restarted serves once it has applied what it knew was committed.
		if rep, ok := c.replicas.local(topic, p); ok && rep.CaughtUp() {
			return rep, nil
		}
		t, ok := c.fsm.Topic(topic)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "topic %q does not exist; create it with CreateTopic", topic)
		}
		if p >= t.Partitions() {
			return nil, status.Errorf(codes.InvalidArgument, "topic %q has partitions 0 to %d; there is no partition %d", topic, t.Partitions()-1, p)
		}
		if !contains(t.Replicas[p], c.id) {
			return nil, fmt.Errorf("%w: partition %d of topic %q is not on %s; its replicas are on %s",
				rpc.ErrNoReplica, p, topic, c.id, strings.Join(t.Replicas[p], ", "))
		}
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-c.stopped.Done():
			return nil, errShuttingDown
		case <-tick.C:
		}
	}
}

// Produce starts a produce: on this server's replica if it leads the partition (the wait then
// follows Raft), else forwarded to the leader, done before it returns.
func (c *cluster) Produce(ctx context.Context, topic string, p int, b partition.Batch) func() (partition.Result, error) {
	if rep, ok := c.replicas.local(topic, p); ok && rep.IsLeader() {
		wait := awaitProduce(rep, rep.ProduceAsync(ctx, b))
		return func() (partition.Result, error) {
			res, err := wait()
			if err == nil || !errors.Is(err, raft.ErrNotLeader) {
				return res, produceError(err)
			}
			// It lost the leadership before proposing: nothing was written.
			return c.replicas.Produce(ctx, topic, p, b)
		}
	}
	res, err := c.replicas.Produce(ctx, topic, p, b)
	return func() (partition.Result, error) { return res, err }
}

// Partitions describes a topic's partitions: those assigned to this server from its replicas (as
// far as each has caught up), the others (unless local) from the servers that hold them, one call
// per server.
func (c *cluster) Partitions(ctx context.Context, topic string, local bool) []*dislogv1.PartitionInfo {
	t, ok := c.fsm.Topic(topic)
	if !ok {
		return nil
	}
	infos := make([]*dislogv1.PartitionInfo, t.Partitions())
	missing := map[string][]int{} // server id → partitions to ask it for
	for p := range infos {
		infos[p] = &dislogv1.PartitionInfo{Partition: uint32(p), Replicas: t.Replicas[p]}
		rep, ok := c.replicas.local(topic, p)
		if !ok {
			// A partition assigned here and not open yet is described as such: empty, no leader.
			if !contains(t.Replicas[p], c.id) {
				missing[t.Replicas[p][0]] = append(missing[t.Replicas[p][0]], p)
			}
			continue
		}
		st := rep.Stats()
		infos[p].LowestOffset, infos[p].NextOffset, infos[p].Bytes, infos[p].Segments = st.Lowest, st.Next, st.Bytes, int64(st.Segments)
		id, addr := rep.Leader()
		infos[p].Leader, infos[p].LeaderAddr = string(id), string(addr)
		infos[p].InSync = c.inSync(t.Replicas[p], string(id))
	}
	if local || len(missing) == 0 {
		return infos
	}
	addrs := c.addresses()
	var wg sync.WaitGroup
	for id, parts := range missing {
		client, err := c.peers.client(addrs[id])
		if addrs[id] == "" || err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.DescribeTopic(ctx, &dislogv1.DescribeTopicRequest{Topic: topic})
			if err != nil {
				return
			}
			got := resp.GetTopic().GetPartitionInfo()
			for _, p := range parts {
				if p < len(got) && got[p].GetLeader() != "" {
					infos[p] = got[p]
				}
			}
		}()
	}
	wg.Wait()
	return infos
}

// Relays are the peer clients of the other servers that hold a partition.
func (c *cluster) Relays(topic string, p int) []rpc.Relay {
	t, ok := c.fsm.Topic(topic)
	if !ok || p >= t.Partitions() {
		return nil
	}
	addrs := c.addresses()
	var relays []rpc.Relay
	for _, id := range t.Replicas[p] {
		if id == c.id || addrs[id] == "" {
			continue
		}
		if client, err := c.peers.client(addrs[id]); err == nil {
			relays = append(relays, client)
		}
	}
	return relays
}

// inSync lists the replicas that are up, when the partition has a leader: hashicorp/raft does not
// expose how far each follower is, so a replica that is up counts as in sync.
func (c *cluster) inSync(replicas []string, leader string) []string {
	if leader == "" {
		return nil
	}
	up := c.aliveServers()
	var in []string
	for _, r := range replicas {
		if slices.Contains(up, r) {
			in = append(in, r)
		}
	}
	return in
}

// Consume serves another server's client from this server's replica.
func (s *peerService) Consume(ctx context.Context, req *dislogv1.ConsumeRequest) (*dislogv1.ConsumeResponse, error) {
	return s.svc.Consume(rpc.Relayed(ctx), req)
}

// ConsumeStream serves another server's client from this server's replica.
func (s *peerService) ConsumeStream(req *dislogv1.ConsumeStreamRequest, stream peerv1.Peer_ConsumeStreamServer) error {
	return s.svc.ConsumeStream(req, relayedStream{stream})
}

// relayedStream marks a relayed stream's context.
type relayedStream struct {
	peerv1.Peer_ConsumeStreamServer
}

func (r relayedStream) Context() context.Context {
	return rpc.Relayed(r.Peer_ConsumeStreamServer.Context())
}

// DescribeTopic describes a topic from this server's replicas, for another server.
func (s *peerService) DescribeTopic(ctx context.Context, req *dislogv1.DescribeTopicRequest) (*dislogv1.DescribeTopicResponse, error) {
	return s.svc.DescribeRelayed(ctx, req)
}

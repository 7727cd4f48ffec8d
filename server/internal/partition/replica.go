package partition

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dislog/dislog/raftlog"
	"github.com/dislog/dislog/server/internal/hclogslog"
	"github.com/dislog/dislog/storelog"
	"github.com/hashicorp/raft"
)

// Config is what a replica of a partition runs with. Topic, Dir, LocalID and Transport are
// required; every other zero field takes the default named in its comment.
type Config struct {
	// Topic and Partition name the partition (GroupID).
	Topic     string
	Partition int
	// Dir is the replica's directory: the Raft log in log/, snapshots in snapshots/, and the stable
	// store in stable/ when Stable is nil.
	Dir string
	// LocalID is this server's ID in the group's configuration.
	LocalID raft.ServerID
	// Transport carries this group's Raft traffic (raftnet gives one per group; tests may use
	// raft.NewInmemTransport). The replica closes it if it is a raft.WithClose.
	Transport raft.Transport
	// Stable holds the group's term and vote. Default: a raftlog.StableStore of the replica's own in
	// Dir/stable, closed with the replica.
	Stable raft.StableStore
	// Raft is the template of the group's Raft configuration: its timings (heartbeat, election,
	// leader lease and commit timeouts), MaxAppendEntries and automatic snapshots
	// (SnapshotInterval, SnapshotThreshold) are used. The replica sets LocalID, the logger,
	// BatchApplyCh, TrailingLogs (see ApplyRetention), snapshot restore on start and
	// RestoreCommittedLogs itself. Default: raft.DefaultConfig().
	Raft *raft.Config
	// MaxEntryBytes is the largest encoded Raft entry the log takes; Produce refuses a batch that
	// would make a larger one (ErrBatchTooLarge). Default: raftlog's (16 MiB, or less if a segment
	// cannot hold that).
	MaxEntryBytes uint32
	// MaxSegmentBytes rolls the log to a new segment file before one grows past it: retention
	// deletes whole segments. Default: raftlog's (64 MiB).
	MaxSegmentBytes uint32
	// Retention is what ApplyRetention keeps.
	Retention Retention
	// FS is the file system of the Raft log. Default: the operating system's.
	FS storelog.FS
	// Logger receives the replica's and Raft's events. Default: discard.
	Logger *slog.Logger
}

// Retention bounds a partition's log; zero fields set no bound.
type Retention struct {
	// Bytes deletes the oldest segments while the log's segments add up to more.
	Bytes int64
	// Age deletes segments whose newest entry is older.
	Age time.Duration
}

// GroupID is the name of a partition's Raft group: "<topic>/<partition>".
func GroupID(topic string, partition int) string {
	return topic + "/" + strconv.Itoa(partition)
}

// entryOverhead is the most bytes raftlog's entry encoding adds to an entry's data (its package
// documentation: 1 + 7 varints).
const entryOverhead = 1 + 7*binary.MaxVarintLen64

// maxEntryBytes is raftlog's limit on an entry for cfg: MaxEntryBytes, or raftlog's default.
func maxEntryBytes(cfg Config) uint32 {
	if cfg.MaxEntryBytes != 0 {
		return cfg.MaxEntryBytes
	}
	seg := cfg.MaxSegmentBytes
	if seg == 0 {
		seg = 64 << 20
	}
	return min(16<<20, storelog.RecordCapacity(seg))
}

// Replica is one server's member of a partition's Raft group: the Raft instance, its log (which is
// the partition's record log) and its state machine. Every method is safe for concurrent use.
type Replica struct {
	cfg       Config
	log       *slog.Logger
	fsm       *fsm
	logs      *raftlog.LogStore
	ownStable *raftlog.StableStore
	snapshots *raft.FileSnapshotStore
	raft      *raft.Raft
	observer  *raft.Observer
	maxEntry  int
	// startCommit and startLast are the commit index and the last index the log held at Open, and
	// caughtUp is set once the state machine has applied what they call for (see CaughtUp).
	startCommit, startLast uint64
	caughtUp               atomic.Bool

	// proposeMu serializes the leader's deduplication decisions with the proposals they allow, so
	// that batches reach the log in the order the table saw them. It guards the fields below.
	proposeMu sync.Mutex
	// syncedTerm is the term in which this replica, as leader, last applied every entry before its
	// Barrier: in that term the state machine's producers plus pending are the complete table. 0
	// when a proposal failed and the outcome of what was in flight is unknown.
	syncedTerm uint64
	// pending is each idempotent producer's last proposed batch not yet applied.
	pending map[uint64]*proposal
	// lastStamp is the time of the last batch proposed: stamps never decrease.
	lastStamp int64

	leaderMu sync.Mutex
	leaderCh chan struct{}

	closed    atomic.Bool
	done      chan struct{}
	loops     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) a replica in cfg.Dir and starts its Raft instance, which restores the
// last snapshot and replays the log after it. A new replica has no configuration: Bootstrap it, or
// let a leader add it.
func Open(cfg Config) (_ *Replica, err error) {
	if cfg.Topic == "" || cfg.Dir == "" || cfg.LocalID == "" || cfg.Transport == nil {
		return nil, fmt.Errorf("%w: Topic, Dir, LocalID and Transport are required", ErrInvalidConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	group := GroupID(cfg.Topic, cfg.Partition)
	r := &Replica{
		cfg: cfg, log: cfg.Logger.With(slog.String("group", group)),
		pending: map[uint64]*proposal{}, leaderCh: make(chan struct{}), done: make(chan struct{}),
	}
	r.fsm = newFSM(r.log)
	defer func() {
		if err != nil {
			r.closeStores()
		}
	}()
	opts := raftlog.Options{
		FS: cfg.FS, MaxSegmentBytes: cfg.MaxSegmentBytes, MaxEntryBytes: cfg.MaxEntryBytes, Logger: r.log,
		Records: Records, BaseAt: r.fsm.baseAt,
		// No zeros written ahead: they would be a second write of every byte of the records, and
		// about a third of a busy server's CPU (docs/BENCHMARKS.md, Partitions). A small batch's
		// fsync then also commits the file's size.
		NoPreallocate: true,
	}
	if r.logs, err = raftlog.OpenLogStore(filepath.Join(cfg.Dir, "log"), opts); err != nil {
		return nil, fmt.Errorf("partition %s: %w", group, err)
	}
	// What this replica's log held when it opened: its reads wait until it has applied it (CaughtUp).
	if r.startCommit, err = r.logs.GetCommitIndex(); err != nil {
		return nil, fmt.Errorf("partition %s: %w", group, err)
	}
	if r.startLast, err = r.logs.LastIndex(); err != nil {
		return nil, fmt.Errorf("partition %s: %w", group, err)
	}
	r.maxEntry = int(maxEntryBytes(cfg))
	stable := cfg.Stable
	if stable == nil {
		if r.ownStable, err = raftlog.OpenStableStore(filepath.Join(cfg.Dir, "stable"), opts); err != nil {
			return nil, fmt.Errorf("partition %s: %w", group, err)
		}
		stable = r.ownStable
	}
	hlog := hclogslog.New(r.log, "raft")
	if r.snapshots, err = raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog); err != nil {
		return nil, fmt.Errorf("partition %s: snapshots: %w", group, err)
	}
	conf := raft.DefaultConfig()
	if cfg.Raft != nil {
		*conf = *cfg.Raft
	}
	conf.LocalID = cfg.LocalID
	conf.Logger = hlog
	conf.NotifyCh = nil
	// Concurrent produces share one StoreLogs, one fsync, one AppendEntries.
	conf.BatchApplyCh = true
	// Raft never compacts the log by itself: the log holds the records, and ApplyRetention decides
	// what goes (compactLogs keeps every entry while the last index is at most TrailingLogs).
	conf.TrailingLogs = math.MaxUint64
	// The state machine lives in memory: restore the last snapshot; Raft applies the entries after
	// it as it learns they are committed. (Not RestoreCommittedLogs: hashicorp/raft v1.8 then skips
	// the configuration entries it applies when it scans the log for the configuration, and a
	// restarted replica whose configuration is in those entries has none: "no known peers".)
	conf.NoSnapshotRestoreOnStart = false
	if err := raft.ValidateConfig(conf); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if r.raft, err = raft.NewRaft(conf, r.fsm, r.logs, stable, r.snapshots, cfg.Transport); err != nil {
		return nil, fmt.Errorf("partition %s: raft: %w", group, err)
	}
	observations := make(chan raft.Observation, 16)
	r.observer = raft.NewObserver(observations, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.raft.RegisterObserver(r.observer)
	r.loops.Add(1)
	go r.watchLeader(observations)
	return r, nil
}

// Bootstrap gives a new group its first configuration. Every replica of a new partition may
// bootstrap with the same servers (hashicorp/raft allows identical bootstraps), so none waits for
// another; on a replica that has state already it does nothing and returns nil.
func (r *Replica) Bootstrap(servers []raft.Server) error {
	err := r.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("partition %s: bootstrap: %w", r.group(), err)
	}
	return nil
}

func (r *Replica) group() string { return GroupID(r.cfg.Topic, r.cfg.Partition) }

// watchLeader turns Raft's leader observations into LeaderChanged notifications, and has a new
// leader apply every earlier entry at once, so that its first produce need not wait for that.
func (r *Replica) watchLeader(observations chan raft.Observation) {
	defer r.loops.Done()
	for {
		select {
		case <-r.done:
			return
		case o := <-observations:
			r.leaderMu.Lock()
			close(r.leaderCh)
			r.leaderCh = make(chan struct{})
			r.leaderMu.Unlock()
			if o.Data.(raft.LeaderObservation).LeaderID == r.cfg.LocalID {
				r.proposeMu.Lock()
				err := r.readyLocked()
				r.proposeMu.Unlock()
				if err != nil && !r.closed.Load() {
					r.log.Debug("partition: new leader's barrier", slog.Any("error", err))
				}
			}
		}
	}
}

// LeaderChanged returns a channel that is closed when the group's leader next changes, as this
// replica sees it (a new leader, this one included, or none).
func (r *Replica) LeaderChanged() <-chan struct{} {
	r.leaderMu.Lock()
	defer r.leaderMu.Unlock()
	return r.leaderCh
}

// Leader returns the leader's ID and address, or "" when no leader is known.
func (r *Replica) Leader() (raft.ServerID, raft.ServerAddress) {
	addr, id := r.raft.LeaderWithID()
	return id, addr
}

// IsLeader reports whether this replica believes it leads. Only Barrier or VerifyLeader prove it.
func (r *Replica) IsLeader() bool { return r.raft.State() == raft.Leader }

// notLeader is the error of a call only the leader serves.
func (r *Replica) notLeader() error {
	id, addr := r.Leader()
	if id == r.cfg.LocalID {
		id, addr = "", ""
	}
	return &NotLeaderError{Leader: id, LeaderAddr: addr}
}

// raftError wraps an error from a Raft future. A request that Raft refused because this replica
// does not lead (or is handing leadership over) is a *NotLeaderError; raft.ErrLeadershipLost (the
// request may or may not be committed) and raft.ErrRaftShutdown stay visible to errors.Is.
func (r *Replica) raftError(what string, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return r.notLeader()
	case errors.Is(err, raft.ErrRaftShutdown) && r.closed.Load():
		return fmt.Errorf("partition %s: %s: %w", r.group(), what, ErrClosed)
	}
	return fmt.Errorf("partition %s: %s: %w", r.group(), what, err)
}

// timeout is how long Raft may take to take a request in, from ctx's deadline.
func timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 0
}

// Configuration returns the group's servers, as of the last configuration this replica holds.
func (r *Replica) Configuration() ([]raft.Server, error) {
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, r.raftError("configuration", err)
	}
	return f.Configuration().Servers, nil
}

// AddVoter adds a voting replica, or makes a non-voter vote, and waits until the change is
// committed. Leader only.
func (r *Replica) AddVoter(ctx context.Context, id raft.ServerID, addr raft.ServerAddress) error {
	return r.change(ctx, "add voter", func(t time.Duration) raft.IndexFuture { return r.raft.AddVoter(id, addr, 0, t) })
}

// AddNonvoter adds a replica that receives the log without voting (to catch up before it is made
// a voter), and waits until the change is committed. Leader only.
func (r *Replica) AddNonvoter(ctx context.Context, id raft.ServerID, addr raft.ServerAddress) error {
	return r.change(ctx, "add nonvoter", func(t time.Duration) raft.IndexFuture { return r.raft.AddNonvoter(id, addr, 0, t) })
}

// RemoveServer removes a replica from the group and waits until the change is committed. Leader
// only; a leader may remove itself, and steps down once the change is committed.
func (r *Replica) RemoveServer(ctx context.Context, id raft.ServerID) error {
	return r.change(ctx, "remove server", func(t time.Duration) raft.IndexFuture { return r.raft.RemoveServer(id, 0, t) })
}

func (r *Replica) change(ctx context.Context, what string, f func(time.Duration) raft.IndexFuture) error {
	if err := f(timeout(ctx)).Error(); err != nil {
		return r.raftError(what, err)
	}
	return nil
}

// TransferLeadership hands leadership to the replica id at addr, or to the most up-to-date voter
// when id is "", and waits until the transfer is done or has failed. Leader only.
func (r *Replica) TransferLeadership(id raft.ServerID, addr raft.ServerAddress) error {
	var f raft.Future
	if id == "" {
		f = r.raft.LeadershipTransfer()
	} else {
		f = r.raft.LeadershipTransferToServer(id, addr)
	}
	if err := f.Error(); err != nil {
		return r.raftError("leadership transfer", err)
	}
	return nil
}

// Barrier returns once this replica, as leader, has applied every entry before the call: reads
// that follow see every produce acknowledged before it (read-your-writes on the leader). Leader
// only.
func (r *Replica) Barrier(ctx context.Context) error {
	if err := r.raft.Barrier(timeout(ctx)).Error(); err != nil {
		return r.raftError("barrier", err)
	}
	return nil
}

// VerifyLeader returns nil if this replica still leads: a quorum answered it after the call.
// With Offsets after it, an offset fetch is linearizable once the leader has applied its barrier.
func (r *Replica) VerifyLeader() error {
	if err := r.raft.VerifyLeader().Error(); err != nil {
		return r.raftError("verify leader", err)
	}
	return nil
}

// CaughtUp reports whether the replica has applied every entry of its log that was committed when
// it opened. Raft applies a restarted replica's entries only as it learns again that they are
// committed, and the commit index stored with the last entries can lag the last acknowledged batch:
// until then the replica's offsets end short of records it served before, and a reader must wait
// rather than take that end for the partition's. A leader has caught up once its commit index
// covers the whole log it opened with (its first entry of the term commits everything before it);
// a follower once its leader has told it a commit index at least the stored one, and it applied it.
func (r *Replica) CaughtUp() bool {
	if r.caughtUp.Load() {
		return true
	}
	commit, applied := r.raft.CommitIndex(), r.raft.AppliedIndex()
	var ok bool
	if r.IsLeader() {
		ok = commit >= r.startLast && applied >= commit
	} else {
		id, _ := r.raft.LeaderWithID()
		ok = id != "" && commit >= r.startCommit && applied >= commit
	}
	if ok {
		r.caughtUp.Store(true)
	}
	return ok
}

// Stats are a replica's figures, for metrics.
type Stats struct {
	// Lowest and Next are the offsets the replica serves: [Lowest, Next).
	Lowest, Next uint64
	// Applied is the index of the last entry the state machine applied; LastIndex the last in the
	// log; LastSnapshotIndex the last snapshot's (0 for none).
	Applied, LastIndex, LastSnapshotIndex uint64
	// Bytes and Segments are the Raft log's size on disk.
	Bytes    int64
	Segments int
	// Producers is the size of the idempotent producers' table.
	Producers int
	// SequenceViolations counts applied batches out of sequence for their producer, which the
	// leader's check must keep at zero; MalformedBatches counts command entries that are not batches.
	SequenceViolations, MalformedBatches uint64
	// Leader says whether this replica believes it leads.
	Leader bool
}

// Stats returns the replica's figures.
func (r *Replica) Stats() Stats {
	lowest, next := r.Offsets()
	ls := r.logs.Stats()
	st := Stats{
		Lowest: lowest, Next: next, Applied: r.fsm.applied.Load(), LastIndex: r.raft.LastIndex(),
		Bytes: ls.Bytes, Segments: ls.Segments, Producers: r.fsm.producerCount(),
		SequenceViolations: r.fsm.violations.Load(), MalformedBatches: r.fsm.malformed.Load(),
		Leader: r.IsLeader(),
	}
	if metas, err := r.snapshots.List(); err == nil && len(metas) > 0 {
		st.LastSnapshotIndex = metas[0].Index
	}
	return st
}

// Close shuts Raft down and closes the stores. A leader does not hand its leadership over first:
// call TransferLeadership for a graceful stop. Calls after Close return ErrClosed.
func (r *Replica) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		var errs []error
		if err := r.raft.Shutdown().Error(); err != nil {
			errs = append(errs, err)
		}
		r.raft.DeregisterObserver(r.observer)
		close(r.done)
		r.loops.Wait()
		if c, ok := r.cfg.Transport.(raft.WithClose); ok {
			errs = append(errs, c.Close())
		}
		errs = append(errs, r.closeStores())
		if err := errors.Join(errs...); err != nil {
			r.closeErr = fmt.Errorf("partition %s: close: %w", r.group(), err)
		}
	})
	return r.closeErr
}

// closeStores closes what Open opened.
func (r *Replica) closeStores() error {
	var errs []error
	if r.logs != nil {
		errs = append(errs, r.logs.Close())
	}
	if r.ownStable != nil {
		errs = append(errs, r.ownStable.Close())
	}
	return errors.Join(errs...)
}

// Remove deletes a closed replica's directory: what a server does once the group's configuration
// no longer lists it. A Stable store passed in Config keeps the group's term and vote; the caller
// deletes them.
func Remove(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("partition: remove %s: %w", dir, err)
	}
	return nil
}

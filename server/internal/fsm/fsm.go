// Package fsm is the state machine of a Dislog server's controller group: it applies committed
// metadata commands (topic creations with their partitions' replicas, topic deletions, consumer
// offset commits) to the cluster's metadata (State). Records are not here: each partition of a topic
// is its own Raft group (package partition), whose log holds its records.
//
// The state is small and held in memory. Raft restores the last snapshot on start and replays the
// log after it; snapshots hold the whole state.
package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dislog/dislog/server/internal/topics"
	"github.com/hashicorp/raft"
)

var (
	// ErrTopicNotFound is the result of a command on a topic that does not exist.
	ErrTopicNotFound = errors.New("fsm: topic not found")
	// ErrTopicExists is the result of creating a topic that exists.
	ErrTopicExists = errors.New("fsm: topic exists")
	// ErrPartitionNotFound is the result of a command on a partition a topic does not have.
	ErrPartitionNotFound = errors.New("fsm: partition not found")
)

// Result is what applying a command returns, through raft.ApplyFuture.Response.
type Result struct {
	// Err is why the command changed nothing.
	Err error
}

// Config is what an FSM reports to.
type Config struct {
	Logger *slog.Logger
}

// FSM is a raft.BatchingFSM over the cluster's metadata.
type FSM struct {
	cfg Config

	// mu guards state and changed against readers; only ApplyBatch and Restore change them, one at
	// a time, on Raft's FSM goroutine.
	mu    sync.RWMutex
	state State
	// changed is closed, and replaced, when the topics change.
	changed chan struct{}
	// applied is the index of the last log entry applied.
	applied atomic.Uint64
}

var _ raft.BatchingFSM = (*FSM)(nil)

// New returns an FSM with no topics.
func New(cfg Config) *FSM {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &FSM{cfg: cfg, state: newState(), changed: make(chan struct{})}
}

// Applied returns the Raft index of the last log entry applied.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

// Offset returns the offset group committed on a topic's partition, and whether it committed one.
func (f *FSM) Offset(group, topic string, partition uint32) (uint64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	off, ok := f.state.Offsets[group][topic][partition]
	return off, ok
}

// Topic returns a topic's state.
func (f *FSM) Topic(name string) (TopicState, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.state.Topics[name]
	return t, ok
}

// Topics returns the names of the topics, sorted.
func (f *FSM) Topics() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Sorted(maps.Keys(f.state.Topics))
}

// Watch returns the topics, and a channel closed when they next change.
func (f *FSM) Watch() (map[string]TopicState, <-chan struct{}) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return maps.Clone(f.state.Topics), f.changed
}

// Apply applies one log entry.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed log entries in order.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, len(logs))
	changed := false
	f.mu.Lock()
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			results[i] = &Result{}
			continue
		}
		c, err := DecodeCommand(l.Data)
		if err != nil {
			f.cfg.Logger.Error("fsm: skipping an entry that is not a command", slog.Uint64("index", l.Index), slog.Any("error", err))
			results[i] = &Result{Err: err}
			continue
		}
		r := f.apply(l.Index, &c)
		changed = changed || (r.Err == nil && c.Kind != KindCommitOffset)
		results[i] = r
	}
	f.state.Index = logs[len(logs)-1].Index
	if changed {
		close(f.changed)
		f.changed = make(chan struct{})
	}
	f.mu.Unlock()
	f.applied.Store(logs[len(logs)-1].Index)
	return results
}

func (f *FSM) apply(index uint64, c *Command) *Result {
	switch c.Kind {
	case KindCreateTopic:
		return f.createTopic(index, c)
	case KindDeleteTopic:
		return f.deleteTopic(c)
	case KindCommitOffset:
		return f.commitOffset(c)
	case KindAssign:
		return f.assign(index, c)
	}
	return &Result{Err: fmt.Errorf("%w: kind %d", ErrMalformedCommand, c.Kind)}
}

func (f *FSM) createTopic(index uint64, c *Command) *Result {
	if _, ok := f.state.Topics[c.Topic]; ok {
		return &Result{Err: fmt.Errorf("%w: topic %q already exists", ErrTopicExists, c.Topic)}
	}
	t := TopicState{
		Created: index, RetentionBytes: c.RetentionBytes, RetentionAge: c.RetentionAge,
		ReplicationFactor: c.ReplicationFactor, Replicas: c.Replicas, Assigned: make([]uint64, len(c.Replicas)),
	}
	for p := range t.Assigned {
		t.Assigned[p] = index
	}
	if err := checkTopic(t); err != nil {
		return &Result{Err: fmt.Errorf("%w: topic %q: %v", topics.ErrInvalidConfig, c.Topic, err)}
	}
	f.state.Topics[c.Topic] = t
	return &Result{}
}

func (f *FSM) deleteTopic(c *Command) *Result {
	if _, ok := f.state.Topics[c.Topic]; !ok {
		return &Result{Err: fmt.Errorf("%w: topic %q does not exist", ErrTopicNotFound, c.Topic)}
	}
	delete(f.state.Topics, c.Topic)
	for group, offs := range f.state.Offsets {
		delete(offs, c.Topic)
		if len(offs) == 0 {
			delete(f.state.Offsets, group)
		}
	}
	return &Result{}
}

// assign gives a partition new replicas.
func (f *FSM) assign(index uint64, c *Command) *Result {
	t, ok := f.state.Topics[c.Topic]
	if !ok {
		return &Result{Err: fmt.Errorf("%w: topic %q does not exist", ErrTopicNotFound, c.Topic)}
	}
	if int(c.Partition) >= t.Partitions() || len(c.Replicas) != 1 {
		return &Result{Err: fmt.Errorf("%w: topic %q has partitions 0 to %d, not %d", ErrPartitionNotFound, c.Topic, t.Partitions()-1, c.Partition)}
	}
	next := t
	next.Replicas = slices.Clone(t.Replicas)
	next.Assigned = slices.Clone(t.Assigned)
	next.Replicas[c.Partition] = c.Replicas[0]
	next.Assigned[c.Partition] = index
	if err := checkTopic(next); err != nil {
		return &Result{Err: fmt.Errorf("%w: topic %q: %v", topics.ErrInvalidConfig, c.Topic, err)}
	}
	f.state.Topics[c.Topic] = next
	return &Result{}
}

func (f *FSM) commitOffset(c *Command) *Result {
	t, ok := f.state.Topics[c.Topic]
	if !ok {
		return &Result{Err: fmt.Errorf("%w: topic %q does not exist", ErrTopicNotFound, c.Topic)}
	}
	if int(c.Partition) >= t.Partitions() {
		return &Result{Err: fmt.Errorf("%w: topic %q has partitions 0 to %d, not %d", ErrPartitionNotFound, c.Topic, t.Partitions()-1, c.Partition)}
	}
	if err := topics.ValidateName(c.Group); err != nil {
		return &Result{Err: err}
	}
	if f.state.Offsets == nil {
		f.state.Offsets = map[string]map[string]map[uint32]uint64{}
	}
	if f.state.Offsets[c.Group] == nil {
		f.state.Offsets[c.Group] = map[string]map[uint32]uint64{}
	}
	if f.state.Offsets[c.Group][c.Topic] == nil {
		f.state.Offsets[c.Group][c.Topic] = map[uint32]uint64{}
	}
	f.state.Offsets[c.Group][c.Topic][c.Partition] = c.Offset
	return &Result{}
}

// Snapshot captures the state. Raft calls it on the FSM goroutine, so no command is being applied.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(&f.state)
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	return snapshot(b), nil
}

type snapshot []byte

// Persist writes the state to the sink.
func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("fsm: snapshot: %w", err)
	}
	return sink.Close()
}

func (s snapshot) Release() {}

// Restore replaces the state with a snapshot's. Raft calls it on the FSM goroutine.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	s, err := DecodeState(b)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	f.mu.Lock()
	f.state = s
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	f.applied.Store(s.Index)
	f.cfg.Logger.Info("fsm: restored a snapshot", slog.Uint64("index", s.Index), slog.Int("topics", len(s.Topics)))
	return nil
}

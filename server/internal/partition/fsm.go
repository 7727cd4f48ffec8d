package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dislog/dislog/server/internal/wire"
	"github.com/hashicorp/raft"
)

// The snapshot format: a partition's state machine, never its records. It is written to raft's
// snapshot store and sent to replicas that install it: a change needs a new version byte, and
// decodeSnapshot must go on reading every version written before.
//
//	+---------+---------+---------+------------+----------------+------------------------------------+
//	| version | applied | next    | last time  | producer count | count × (id, sequence, base)       |
//	| 1 byte  | uvarint | uvarint | varint, ns | uvarint        | uvarint, uvarint, uvarint          |
//	+---------+---------+---------+------------+----------------+------------------------------------+
//
// version is 1. applied is the index of the last entry the state machine applied, next the offset
// the next record gets, last time the time of the last batch applied. Producers are sorted by id,
// each non-zero and listed once, with the sequence number and base offset of its last batch.
// Nothing may follow the last producer. raft's file snapshot store checksums the file.
const (
	snapshotVersion1 = 1
	// minProducerBytes is the smallest encoded producer: three one-byte varints.
	minProducerBytes = 3
)

// ErrMalformedSnapshot is returned when restoring bytes that are not a snapshot of a version this
// package knows.
var ErrMalformedSnapshot = errors.New("partition: malformed snapshot")

// producer is the state machine's record of an idempotent producer's last batch.
type producer struct {
	sequence uint64
	base     uint64
}

// fsmState is what a partition's state machine holds: everything a snapshot carries.
type fsmState struct {
	applied   uint64
	next      uint64
	lastTime  int64
	producers map[uint64]producer
}

// applyResult is the response of an applied entry, through raft.ApplyFuture.Response.
type applyResult struct {
	base uint64
	err  error
}

// fsm is a partition's raft.BatchingFSM. It holds the producers' table and the offset counter; the
// records stay in the Raft log, where raftlog numbers them with Records. Apply, ApplyBatch,
// Snapshot and Restore run on raft's FSM goroutine; the rest is safe from any goroutine.
type fsm struct {
	log *slog.Logger

	// mu guards state.
	mu    sync.RWMutex
	state fsmState

	// next and applied mirror state for readers that take no lock.
	next    atomic.Uint64
	applied atomic.Uint64
	// violations counts applied batches whose sequence number did not follow their producer's last
	// one: the leader's check before proposing must keep it at zero. malformed counts command
	// entries that are not batches.
	violations atomic.Uint64
	malformed  atomic.Uint64

	// applyCh is closed, and replaced, after each ApplyBatch or Restore: Wait blocks on it.
	notifyMu sync.Mutex
	applyCh  chan struct{}
}

var _ raft.BatchingFSM = (*fsm)(nil)

func newFSM(log *slog.Logger) *fsm {
	return &fsm{log: log, state: fsmState{producers: map[uint64]producer{}}, applyCh: make(chan struct{})}
}

// Apply applies one entry.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed entries in order: each batch takes the next offsets, and an
// idempotent producer's entry becomes its last batch. The leader decided before proposing that the
// batch is neither a duplicate nor out of sequence; a batch that is counts as a violation, and its
// records still take offsets, since raftlog numbers every batch in the log.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, len(logs))
	f.mu.Lock()
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			results[i] = f.applyBatch(l)
		}
		f.state.applied = l.Index
	}
	next, applied := f.state.next, f.state.applied
	f.mu.Unlock()
	f.next.Store(next)
	f.applied.Store(applied)
	f.wake()
	return results
}

// applyBatch applies one command entry. The caller holds mu.
func (f *fsm) applyBatch(l *raft.Log) *applyResult {
	h, err := decodeBatch(l.Data)
	if err != nil {
		// Records counts it as no records too, so offsets stay in step with raftlog's translation.
		f.malformed.Add(1)
		f.log.Error("partition: a command entry is not a batch; it holds no records", slog.Uint64("index", l.Index), slog.Any("error", err))
		return &applyResult{err: fmt.Errorf("partition: entry %d: %w", l.Index, err)}
	}
	base := f.state.next
	f.state.next += h.count
	f.state.lastTime = max(f.state.lastTime, h.time)
	if h.producerID != 0 {
		if p, ok := f.state.producers[h.producerID]; ok && h.sequence != p.sequence+1 {
			f.violations.Add(1)
			f.log.Error("partition: a batch out of sequence reached the log", slog.Uint64("index", l.Index),
				slog.Uint64("producer", h.producerID), slog.Uint64("sequence", h.sequence), slog.Uint64("last_sequence", p.sequence))
		}
		f.state.producers[h.producerID] = producer{sequence: h.sequence, base: base}
	}
	return &applyResult{base: base}
}

// wake wakes every Wait.
func (f *fsm) wake() {
	f.notifyMu.Lock()
	close(f.applyCh)
	f.applyCh = make(chan struct{})
	f.notifyMu.Unlock()
}

// applied returns a channel closed at the next apply.
func (f *fsm) applyNotify() <-chan struct{} {
	f.notifyMu.Lock()
	defer f.notifyMu.Unlock()
	return f.applyCh
}

// producer returns the last batch of an idempotent producer, if it has one.
func (f *fsm) producer(id uint64) (producer, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.state.producers[id]
	return p, ok
}

// lastTime is the time of the last batch applied.
func (f *fsm) lastTime() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.lastTime
}

// producerCount is the number of producers in the table.
func (f *fsm) producerCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.state.producers)
}

// baseAt is raftlog's Options.BaseAt: the offset of the first record of the entry at index, when
// an empty log store starts at index. Raft empties the store after installing a snapshot, and a
// follower's conflict may empty it back to the entry after the last one applied; either way no
// entry with records lies between the last entry applied and index, so the answer is the next
// offset. A new group's store starts at index 1, with next 0.
func (f *fsm) baseAt(index uint64) uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if index <= f.state.applied {
		f.log.Error("partition: the log store starts again at an index the state machine has applied; offsets may be wrong",
			slog.Uint64("index", index), slog.Uint64("applied", f.state.applied))
	}
	return f.state.next
}

// Snapshot captures the state; it holds no records.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &fsmSnapshot{b: appendSnapshot(nil, &f.state)}, nil
}

// Restore replaces the state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("partition: restore: %w", err)
	}
	s, err := decodeSnapshot(b)
	if err != nil {
		return fmt.Errorf("partition: restore: %w", err)
	}
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
	f.next.Store(s.next)
	f.applied.Store(s.applied)
	f.wake()
	f.log.Info("partition: restored a snapshot", slog.Uint64("applied", s.applied), slog.Uint64("next", s.next), slog.Int("producers", len(s.producers)))
	return nil
}

type fsmSnapshot struct{ b []byte }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.b); err != nil {
		sink.Cancel()
		return fmt.Errorf("partition: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// appendSnapshot appends the encoding of s to dst.
func appendSnapshot(dst []byte, s *fsmState) []byte {
	dst = append(dst, snapshotVersion1)
	dst = binary.AppendUvarint(dst, s.applied)
	dst = binary.AppendUvarint(dst, s.next)
	dst = binary.AppendVarint(dst, s.lastTime)
	ids := make([]uint64, 0, len(s.producers))
	for id := range s.producers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, id := range ids {
		p := s.producers[id]
		dst = binary.AppendUvarint(dst, id)
		dst = binary.AppendUvarint(dst, p.sequence)
		dst = binary.AppendUvarint(dst, p.base)
	}
	return dst
}

// decodeSnapshot decodes a snapshot. A corrupt count never sizes an allocation beyond the input.
func decodeSnapshot(b []byte) (fsmState, error) {
	if len(b) == 0 {
		return fsmState{}, fmt.Errorf("%w: empty", ErrMalformedSnapshot)
	}
	if b[0] != snapshotVersion1 {
		return fsmState{}, fmt.Errorf("%w: unknown version %d", ErrMalformedSnapshot, b[0])
	}
	d := wire.Decoder{B: b[1:], Malformed: ErrMalformedSnapshot}
	s := fsmState{applied: d.Uvarint("applied"), next: d.Uvarint("next"), lastTime: d.Varint("last time")}
	count := d.Uvarint("producer count")
	if d.Err == nil && count > uint64(len(d.B)/minProducerBytes) {
		d.Failf("%d producers in %d bytes", count, len(d.B))
	}
	if d.Err != nil {
		return fsmState{}, d.Err
	}
	s.producers = make(map[uint64]producer, count)
	var last uint64
	for i := range count {
		id := d.Uvarint("producer id")
		p := producer{sequence: d.Uvarint("sequence"), base: d.Uvarint("base")}
		if d.Err != nil {
			return fsmState{}, d.Err
		}
		if id == 0 || (i > 0 && id <= last) {
			return fsmState{}, fmt.Errorf("%w: producer %d of %d has id %d after %d", ErrMalformedSnapshot, i, count, id, last)
		}
		if p.base >= s.next {
			return fsmState{}, fmt.Errorf("%w: producer %d's last batch starts at offset %d, past the next offset %d", ErrMalformedSnapshot, id, p.base, s.next)
		}
		s.producers[id], last = p, id
	}
	if len(d.B) != 0 {
		return fsmState{}, fmt.Errorf("%w: %d bytes after the last producer", ErrMalformedSnapshot, len(d.B))
	}
	return s, nil
}

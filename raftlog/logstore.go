package raftlog

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/dislog/dislog/storelog"
	"github.com/hashicorp/raft"
)

var (
	_ raft.LogStore               = (*LogStore)(nil)
	_ raft.MonotonicLogStore      = (*LogStore)(nil)
	_ raft.CommitTrackingLogStore = (*LogStore)(nil)
)

// Options configure a LogStore (and the StableStore that Open puts beside it). The zero value is
// valid: every zero field takes the default named in its comment.
type Options struct {
	// FS is the file system the log lives on. Default: the operating system's. Tests pass a
	// fault-injecting one (package github.com/dislog/dislog/storelog/faultfs). The StableStore always
	// uses the operating system's.
	FS storelog.FS
	// MaxSegmentBytes rolls to a new segment file before one would grow past it. Default 64 MiB.
	MaxSegmentBytes uint32
	// MaxSegmentRecords rolls to a new segment file when one holds this many entries. Default
	// 1,048,576.
	MaxSegmentRecords uint32
	// MaxEntryBytes is the largest encoded entry (data, extensions and at most 71 bytes of header)
	// StoreLogs takes; a batch holding a larger one is refused whole. Default 16 MiB, or less if a
	// segment cannot hold that.
	MaxEntryBytes uint32
	// NoPreallocate turns off storelog's preallocation of segment files (storelog.Options): every
	// byte of the log is written to the disk once, at the cost of slower fsyncs of small batches.
	NoPreallocate bool
	// Logger receives recovery events. Default: discard.
	Logger *slog.Logger

	// Records turns on the offset translation of a partition's log (docs/ARCHITECTURE.md, "Offset
	// translation"): it returns how many records an entry carries, 0 for raft's own entries (LogNoop,
	// LogConfiguration, LogBarrier, ...) and any command without records. Each entry is then stored
	// with its base offset as its storelog key: the partition offset of its first record, or for an
	// entry without records the offset of the next record to come. Bases are computed as entries are
	// stored, from the entry before (so a follower needs nothing from its leader for them), and
	// EntryOf, FirstOffset and NextOffset answer from them. It must be a pure function of the entry.
	// Default nil: no translation, and EntryOf returns ErrNoTranslation.
	Records func(l *raft.Log) uint64
	// BaseAt gives the base offset of the entry at index when StoreLogs stores it into an empty store
	// (a new one, or one that DeleteRange emptied, as raft does after installing a snapshot): the
	// partition's state machine answers from the snapshot it restored. It is called with the store's
	// lock held and must not call back into the store. Only used with Records. Default nil: 0.
	BaseAt func(index uint64) uint64
}

const (
	defaultMaxSegmentBytes = 64 << 20
	defaultMaxEntryBytes   = 16 << 20
)

func (o Options) storelogOptions() storelog.Options {
	segBytes := o.MaxSegmentBytes
	if segBytes == 0 {
		segBytes = defaultMaxSegmentBytes
	}
	entryBytes := o.MaxEntryBytes
	if entryBytes == 0 {
		entryBytes = min(defaultMaxEntryBytes, storelog.RecordCapacity(segBytes))
	}
	return storelog.Options{
		FS:                o.FS,
		MaxSegmentBytes:   segBytes,
		MaxSegmentRecords: o.MaxSegmentRecords,
		MaxRecordBytes:    entryBytes,
		// Raft counts an entry as stored once StoreLogs returns: every batch is fsynced before that.
		Sync:          storelog.SyncEveryBatch,
		NoPreallocate: o.NoPreallocate,
		Logger:        o.Logger,
	}
}

// LogStore is a raft.LogStore on a storelog.Log: raft index i is storelog offset i, one StoreLogs is
// one write and one fsync, and GetLog reads through storelog's memory mappings. It is a
// raft.MonotonicLogStore (indexes never skip) and a raft.CommitTrackingLogStore (each entry carries
// the commit index staged before it was stored). Every method is safe to call from any goroutine.
type LogStore struct {
	log     *storelog.Log
	records func(*raft.Log) uint64
	baseAt  func(uint64) uint64

	// mu serializes the calls that change the log, so that checking the log's bounds and changing
	// them is one step. Reads take no lock. The fields below it are guarded by it.
	mu     sync.Mutex
	staged uint64
	buf    []byte
	values [][]byte
	keys   []uint64

	// commit is the commit index carried by the last entry, capped at the last index.
	commit atomic.Uint64
	// firstBase and nextBase are the base offset of the first entry held and the one the next entry
	// stored gets; both 0 on an empty store or without Options.Records. Written under mu.
	firstBase atomic.Uint64
	nextBase  atomic.Uint64
}

// OpenLogStore opens the log store in dir, creating it if need be. After a crash, storelog cuts a
// torn tail (only what can have been unsynced), so the store opens holding a gapless run of whole
// entries that includes every entry a returned StoreLogs stored; damage to entries that were
// already synced fails the open with storelog.ErrCorrupt, and nothing is cut.
func OpenLogStore(dir string, opts Options) (*LogStore, error) {
	l, err := storelog.Open(dir, opts.storelogOptions())
	if err != nil {
		return nil, fmt.Errorf("raftlog: open log store: %w", err)
	}
	s := &LogStore{log: l, records: opts.Records, baseAt: opts.BaseAt}
	if err := s.loadTail(); err != nil {
		l.Close()
		return nil, err
	}
	if err := s.loadFirstBase(); err != nil {
		l.Close()
		return nil, err
	}
	return s, nil
}

// loadTail sets commit from the last entry and, with a translation, the next base: the last entry's
// base plus its records. The caller holds mu or has the store to itself.
func (s *LogStore) loadTail() error {
	low, next := s.log.LowestOffset(), s.log.NextOffset()
	if low == next {
		s.commit.Store(0)
		s.nextBase.Store(0)
		return nil
	}
	rec, err := s.log.Read(next - 1)
	if err != nil {
		return fmt.Errorf("raftlog: read last entry %d: %w", next-1, err)
	}
	var l raft.Log
	commit, err := decodeEntry(rec.Value, next-1, &l)
	if err != nil {
		return fmt.Errorf("raftlog: read last entry: %w", err)
	}
	s.commit.Store(min(commit, next-1))
	if s.records != nil {
		s.nextBase.Store(rec.Key + s.records(&l))
	}
	return nil
}

// loadFirstBase sets firstBase from the first entry's key. The caller holds mu or has the store to
// itself.
func (s *LogStore) loadFirstBase() error {
	low, next := s.log.LowestOffset(), s.log.NextOffset()
	if s.records == nil || low == next {
		s.firstBase.Store(0)
		return nil
	}
	base, err := s.log.KeyAt(low)
	if err != nil {
		return fmt.Errorf("raftlog: read the base offset of first entry %d: %w", low, err)
	}
	s.firstBase.Store(base)
	return nil
}

// FirstIndex returns the lowest index the store holds, or 0 if it holds none. After a head
// DeleteRange(min, max) it is max+1.
func (s *LogStore) FirstIndex() (uint64, error) {
	low := s.log.LowestOffset()
	if low == s.log.NextOffset() {
		return 0, nil
	}
	return low, nil
}

// LastIndex returns the highest index the store holds, or 0 if it holds none.
func (s *LogStore) LastIndex() (uint64, error) {
	next := s.log.NextOffset()
	if next == s.log.LowestOffset() {
		return 0, nil
	}
	return next - 1, nil
}

// GetLog reads the entry at index into log. Data and Extensions share one fresh allocation that the
// caller owns. A missing index returns exactly raft.ErrLogNotFound, never wrapped: raft compares with
// ==.
func (s *LogStore) GetLog(index uint64, log *raft.Log) error {
	if index < s.log.LowestOffset() || index >= s.log.NextOffset() {
		return raft.ErrLogNotFound
	}
	rec, err := s.log.Read(index)
	if err != nil {
		// A DeleteRange between the check above and the read.
		if errors.Is(err, storelog.ErrOffsetOutOfRange) {
			return raft.ErrLogNotFound
		}
		return fmt.Errorf("raftlog: get log %d: %w", index, err)
	}
	if _, err := decodeEntry(rec.Value, index, log); err != nil {
		return fmt.Errorf("raftlog: get log: %w", err)
	}
	return nil
}

// StoreLog stores one entry; see StoreLogs.
func (s *LogStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores a batch of entries with one write and one fsync, and returns once they are
// durable. The indexes must run on one by one from LastIndex()+1; on an empty store (a new one, or
// one DeleteRange emptied) the batch may start at any index. A non-contiguous batch returns
// ErrNonContiguous and a batch holding an entry larger than Options.MaxEntryBytes returns an error
// wrapping storelog.ErrRecordTooLarge; in both cases nothing of the batch is stored. A crash during
// StoreLogs may leave a prefix of its batch, never a gap: raft never counted those entries as stored.
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := logs[0].Index
	for i, l := range logs {
		if l.Index != first+uint64(i) {
			return fmt.Errorf("%w: entry %d of the batch has index %d, want %d", ErrNonContiguous, i, l.Index, first+uint64(i))
		}
	}
	low, next := s.log.LowestOffset(), s.log.NextOffset()
	empty := low == next
	if !empty && first != next {
		return fmt.Errorf("%w: the batch starts at index %d, the store holds [%d, %d]", ErrNonContiguous, first, low, next-1)
	}
	last := first + uint64(len(logs)) - 1
	commit := min(s.staged, last)

	size := 0
	for _, l := range logs {
		size += encodedSize(l)
	}
	buf := s.buf[:0]
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	values := s.values[:0]
	for _, l := range logs {
		start := len(buf)
		buf = appendEntry(buf, l, commit)
		values = append(values, buf[start:len(buf):len(buf)])
	}
	// storelog copies the values, so the buffers serve the next batch; a very large one is let go.
	if cap(buf) <= 8<<20 {
		s.buf, s.values = buf, values[:0]
	}

	if empty && first != next {
		if err := s.log.Reset(first); err != nil {
			return fmt.Errorf("raftlog: store logs [%d, %d]: %w", first, last, err)
		}
	}
	if s.records == nil {
		if _, err := s.log.AppendBatch(values); err != nil {
			return fmt.Errorf("raftlog: store logs [%d, %d]: %w", first, last, err)
		}
		s.commit.Store(commit)
		return nil
	}
	base := s.nextBase.Load()
	if empty {
		base = 0
		if s.baseAt != nil {
			base = s.baseAt(first)
		}
	}
	firstBase := base
	keys := s.keys[:0]
	for _, l := range logs {
		keys = append(keys, base)
		base += s.records(l)
	}
	s.keys = keys[:0]
	if _, err := s.log.AppendBatchKeyed(values, keys, 0); err != nil {
		return fmt.Errorf("raftlog: store logs [%d, %d]: %w", first, last, err)
	}
	s.commit.Store(commit)
	if empty {
		s.firstBase.Store(firstBase)
	}
	s.nextBase.Store(base)
	return nil
}

// DeleteRange deletes the entries [min, max] (inclusive; raft's arguments). It handles a head range
// (log compaction: FirstIndex becomes max+1), a tail range (a conflict on a follower: LastIndex
// becomes min-1) and everything (after a snapshot is installed), which empties the store so that the
// next StoreLogs may start at any index. Indexes outside the store are ignored; a range inside the
// log that touches neither end returns ErrMiddleRange, since deleting it would leave a gap. Every
// change is durable when DeleteRange returns.
func (s *LogStore) DeleteRange(min, max uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	low, next := s.log.LowestOffset(), s.log.NextOffset()
	if low == next || min > max || max < low || min >= next {
		return nil
	}
	last := next - 1
	var err error
	switch {
	case min <= low && max >= last:
		// Reset deletes every segment file; Truncate(next) would keep the active one. The next
		// StoreLogs asks Options.BaseAt for its base: after a snapshot is installed, the entries
		// deleted here may not be the ones the snapshot covers.
		if err = s.log.Reset(next); err == nil {
			err = s.loadTail()
		}
		if err == nil {
			err = s.loadFirstBase()
		}
	case min <= low:
		if err = s.log.Truncate(max + 1); err == nil {
			err = s.loadFirstBase()
		}
	case max >= last:
		// The bases of the entries that replace the deleted ones follow on from the new last entry.
		if err = s.log.TruncateAfter(min - 1); err == nil {
			err = s.loadTail()
		}
	default:
		return fmt.Errorf("%w: [%d, %d] of [%d, %d]", ErrMiddleRange, min, max, low, last)
	}
	if err != nil {
		return fmt.Errorf("raftlog: delete range [%d, %d]: %w", min, max, err)
	}
	return nil
}

// IsMonotonic reports true: the store refuses gaps, so raft deletes every entry (DeleteRange of
// everything) after it restores a snapshot, instead of leaving a gap before the next entry.
func (s *LogStore) IsMonotonic() bool { return true }

// StageCommitIndex stages the commit index that the next StoreLogs writes with its entries (capped
// at that batch's last index). It is never persisted on its own.
func (s *LogStore) StageCommitIndex(index uint64) error {
	s.mu.Lock()
	s.staged = index
	s.mu.Unlock()
	return nil
}

// GetCommitIndex returns the commit index persisted with the last entry, never more than LastIndex;
// 0 for an empty store or one whose entries were stored with no staged commit index.
func (s *LogStore) GetCommitIndex() (uint64, error) {
	return s.commit.Load(), nil
}

// Close closes the store. Calls after Close fail.
func (s *LogStore) Close() error {
	if err := s.log.Close(); err != nil {
		return fmt.Errorf("raftlog: close log store: %w", err)
	}
	return nil
}

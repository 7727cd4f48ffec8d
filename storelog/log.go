package storelog

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Record is one record read from a log.
type Record struct {
	Offset uint64
	// Time is when the record was appended, in Unix nanoseconds. Times never decrease along a log.
	Time int64
	// Key is the record's key: the one AppendBatchKeyed was given, or for a plain append the
	// record's offset, raised to the last record's key if that is larger. Keys never decrease along
	// a log; SearchKey finds a record by key.
	Key   uint64
	Value []byte
}

// Log is an append-only sequence of records in segment files. It takes one writer and many
// concurrent readers; every method is safe to call from any goroutine.
type Log struct {
	dir  string
	opts Options

	// Lock order: removeMu, syncMu, wmu, mu, gcMu.
	//
	// removeMu is held by calls that delete segment files outside the writer locks (Truncate,
	// ApplyRetention) and by those that may create a segment whose name a pending deletion could
	// still hold (TruncateAfter, Reset).
	removeMu sync.Mutex
	//
	// syncMu is held for reading across an fsync of the active store (by the group commit and by the
	// preallocator) and for writing by every call that closes or deletes segment files, so that an
	// fsync never runs on a file being closed.
	syncMu sync.RWMutex

	// Group commit: one appender at a time (the one that finds syncing false) fsyncs everything
	// written so far; the others wait on gcCond and are all released by one broadcast.
	gcMu    sync.Mutex
	gcCond  sync.Cond
	syncing bool
	durable uint64 // offsets below are fsynced

	// wmu serializes writers. The fields below it are the writer's.
	wmu       sync.Mutex
	active    *segment
	nextWrite uint64 // next offset to write; records below it are written, maybe not yet published
	lastTime  int64
	// lastKey is the key of the last record in the segment files, or 0 when they hold none. Records
	// below the low watermark count: SearchKey's binary search runs over a segment's whole index.
	lastKey uint64
	failErr error
	buf     []byte
	zeros   []byte // what the preallocator writes ahead of the active segment's last record
	// growing says the preallocator is writing zeros from growFrom on, outside wmu; growDone (on
	// wmu) is broadcast when it is done.
	growing  bool
	growFrom int64
	growDone sync.Cond

	grow chan struct{} // wakes the preallocator; nil when the log does not preallocate
	// prepared says preparedFileName holds the next segment's store file, ready for the roll to
	// adopt (prealloc.go). It is the writer's: set by Open and the preallocator, cleared by the roll.
	prepared bool

	// mu guards segments: readers hold it for reading while they use a segment's mappings.
	mu       sync.RWMutex
	segments []*segment

	next   atomic.Uint64 // published: records below are readable
	low    atomic.Uint64 // lowest offset the log holds
	closed atomic.Bool

	notifyMu sync.Mutex
	notify   chan struct{} // closed and cleared when next advances or the log closes

	done chan struct{}
	wg   sync.WaitGroup
}

// Open opens the log in dir, creating dir and an empty log if need be. Sealed segments are trusted
// and opened lazily; the active segment is trusted after a clean Close and rebuilt from its store
// after a crash, cutting any torn tail. Stray files in dir are logged and left alone.
func Open(dir string, opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: opts, done: make(chan struct{})}
	l.gcCond.L = &l.gcMu
	l.growDone.L = &l.wmu
	if opts.Sync != SyncNever && !opts.NoPreallocate {
		l.grow = make(chan struct{}, 1)
		l.zeros = make([]byte, preallocChunk)
	}
	if err := opts.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storelog: open %s: %w", dir, err)
	}
	if err := l.load(); err != nil {
		l.mu.Lock()
		for _, s := range l.segments {
			s.closeFiles()
		}
		l.mu.Unlock()
		return nil, err
	}
	l.startBackground()
	return l, nil
}

// load reads the directory and brings the log to a consistent, writable state.
func (l *Log) load() error {
	fs := l.opts.FS
	names, err := fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("storelog: open %s: %w", l.dir, err)
	}
	m := meta{version: formatVersion}
	stores, indexes := map[uint64]bool{}, map[uint64]bool{}
	var bases []uint64
	for _, name := range names {
		if name == metaFileName {
			b, err := readFile(fs, filepath.Join(l.dir, name))
			if err != nil {
				return err
			}
			if m, err = decodeMeta(b); err != nil {
				return fmt.Errorf("%w (in %s)", err, l.dir)
			}
			continue
		}
		if name == preparedFileName {
			if err := l.loadPrepared(); err != nil {
				return err
			}
			continue
		}
		if strings.HasSuffix(name, tmpSuffix) {
			// A meta file whose rename did not happen (the old meta file is still in force), or a
			// prepared segment file that was not finished.
			if err := fs.Remove(filepath.Join(l.dir, name)); err != nil {
				return fmt.Errorf("storelog: remove %s: %w", name, err)
			}
			continue
		}
		base, suffix, ok := parseSegmentName(name)
		if !ok {
			l.opts.Logger.Warn("storelog: skipping a file that is not part of the log", slog.String("dir", l.dir), slog.String("file", name))
			continue
		}
		if !stores[base] && !indexes[base] {
			bases = append(bases, base)
		}
		if suffix == storeSuffix {
			stores[base] = true
		} else {
			indexes[base] = true
		}
	}
	slices.Sort(bases)

	// A segment's store file is created before its index and deleted before it, so an index alone is
	// a deletion a crash interrupted: finish it. (A missing middle segment still fails the gap check.)
	bases = slices.DeleteFunc(bases, func(base uint64) bool { return !stores[base] })
	for base := range indexes {
		if !stores[base] {
			_, index := segmentPaths(l.dir, base)
			l.opts.Logger.Warn("storelog: removing the index of a segment whose deletion was interrupted", slog.String("file", index))
			if err := fs.Remove(index); err != nil {
				return fmt.Errorf("storelog: remove %s: %w", index, err)
			}
		}
	}
	for i, base := range bases {
		s := newSegment(l.dir, base)
		last := i == len(bases)-1
		if !last {
			if !indexes[base] {
				return corruptf("sealed segment %d has no index file %s", base, s.indexPath)
			}
			if err := l.statSealed(s, bases[i+1]); err != nil {
				return err
			}
		}
		l.segments = append(l.segments, s)
	}

	// Finish a head truncation that a crash interrupted: drop sealed segments wholly below the low
	// watermark.
	for len(l.segments) > 1 && l.segments[1].base <= m.lowWatermark {
		if err := l.segments[0].remove(fs); err != nil {
			return err
		}
		l.segments = l.segments[1:]
	}

	if len(l.segments) == 0 {
		s := newSegment(l.dir, m.lowWatermark)
		if err := s.openActive(fs, l.opts.MaxSegmentRecords, l.opts.MaxSegmentBytes); err != nil {
			return err
		}
		if err := fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("storelog: sync %s: %w", l.dir, err)
		}
		l.segments = []*segment{s}
	} else {
		s := l.segments[len(l.segments)-1]
		trusted := false
		if m.clean && m.activeBase == s.base && indexes[s.base] {
			if trusted, err = l.openActiveClean(s, m); err != nil {
				return err
			}
		}
		if !trusted {
			var floor uint32
			if m.activeBase == s.base {
				floor = m.storeSize
			}
			if err := l.recoverActive(s, floor); err != nil {
				return err
			}
		}
	}

	l.active = l.segments[len(l.segments)-1]
	l.nextWrite = l.active.base + l.active.count
	l.lastTime = l.active.lastTime
	if err := l.loadLastKey(); err != nil {
		return err
	}
	l.setDurableLocked(l.nextWrite)
	low := max(m.lowWatermark, l.segments[0].base)
	if low > l.nextWrite {
		// Records the low watermark counted on were never synced (SyncNever) and are gone: the log is
		// empty from the watermark on.
		l.opts.Logger.Warn("storelog: low watermark is past the last record; starting empty at it",
			slog.Uint64("low_watermark", low), slog.Uint64("next", l.nextWrite))
		if err := l.resetLocked(low); err != nil {
			return err
		}
	}
	l.low.Store(low)
	l.next.Store(l.nextWrite)
	return l.writeMeta(false)
}

// loadLastKey sets lastKey from the last record in the segment files: the active segment's, or if it
// is empty (a crash right after a roll) the sealed segment's before it.
func (l *Log) loadLastKey() error {
	l.lastKey = 0
	for i := len(l.segments) - 1; i >= 0; i-- {
		s := l.segments[i]
		if s.count == 0 {
			continue
		}
		if err := s.openSealed(l.opts.FS); err != nil {
			return err
		}
		e, err := s.entry(s.count - 1)
		if err != nil {
			return err
		}
		l.lastKey = e.key
		return nil
	}
	return nil
}

// loadPrepared keeps a prepared segment file that Open found for the next roll if it is whole for
// these options (it was renamed to its name only once fsynced), and removes it otherwise.
func (l *Log) loadPrepared() error {
	path := filepath.Join(l.dir, preparedFileName)
	fi, err := statFile(l.opts.FS, path)
	if err != nil {
		return err
	}
	if l.grow != nil && fi.Size() == int64(l.opts.MaxSegmentBytes) {
		l.prepared = true
		return nil
	}
	if err := l.opts.FS.Remove(path); err != nil {
		return fmt.Errorf("storelog: remove %s: %w", path, err)
	}
	return nil
}

// statSealed learns a sealed segment's record count from its index size, without opening it, and
// checks that it ends where the next segment begins.
// It also reads the first index entry's key, so that SearchKey can choose a segment without opening
// any: one small read of a file it opens anyway.
func (l *Log) statSealed(s *segment, nextBase uint64) error {
	index, err := l.opts.FS.OpenFile(s.indexPath, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("storelog: %w", err)
	}
	defer index.Close()
	ifi, err := index.Stat()
	if err != nil {
		return fmt.Errorf("storelog: %w", err)
	}
	sfi, err := statFile(l.opts.FS, s.storePath)
	if err != nil {
		return err
	}
	if ifi.Size()%indexEntrySize != 0 {
		return corruptf("sealed segment %d: index is %d bytes, not a whole number of %d-byte entries", s.base, ifi.Size(), indexEntrySize)
	}
	s.count = uint64(ifi.Size() / indexEntrySize)
	if s.base+s.count != nextBase {
		return corruptf("sealed segment %d holds %d records but the next segment starts at %d", s.base, s.count, nextBase)
	}
	first := make([]byte, indexEntrySize)
	if _, err := index.ReadAt(first, 0); err != nil {
		return fmt.Errorf("storelog: read the first index entry of %s: %w", s.indexPath, err)
	}
	s.firstKey.Store(indexKey(first))
	s.storeSize = sfi.Size()
	return nil
}

func statFile(fs FS, path string) (os.FileInfo, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("storelog: %w", err)
	}
	defer f.Close()
	return f.Stat()
}

func readFile(fs FS, path string) ([]byte, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("storelog: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("storelog: %w", err)
	}
	if fi.Size() > metaSize {
		return nil, corruptf("%s is %d bytes, want %d", path, fi.Size(), metaSize)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("storelog: read %s: %w", path, err)
	}
	return b, nil
}

// writeMeta replaces the meta file, recording the low watermark and how far the active segment is
// known to be fsynced (the floor recovery never cuts below), and with clean its record count. The
// caller holds wmu (or has the log to itself).
func (l *Log) writeMeta(clean bool) error {
	m := meta{lowWatermark: l.low.Load(), clean: clean, activeBase: l.active.base, storeSize: l.active.synced}
	if clean {
		m.activeCount, m.storeSize = l.active.count, l.active.size
	}
	return l.replaceMeta(m)
}

// replaceMeta replaces the meta file atomically (WriteFileAtomic).
func (l *Log) replaceMeta(m meta) error {
	m.version = formatVersion
	return WriteFileAtomic(l.opts.FS, filepath.Join(l.dir, metaFileName), encodeMeta(m), 0o644)
}

// Append appends one record and returns its offset. Under SyncEveryBatch it returns once the record
// is durable; concurrent Appends share one fsync.
func (l *Log) Append(value []byte) (uint64, error) {
	return l.AppendBatch([][]byte{value})
}

// AppendBatch appends records with consecutive offsets, in one write where they fit one segment, and
// returns the first offset. If any record is larger than Options.MaxRecordBytes it returns
// ErrRecordTooLarge and writes nothing. An empty batch writes nothing and returns the next offset.
// Each record's key is its offset, or the last record's key if that is larger (keys never
// decrease; see AppendBatchKeyed).
func (l *Log) AppendBatch(values [][]byte) (uint64, error) {
	return l.appendBatch(values, nil, 0)
}

// AppendBatchAt is AppendBatch with the records' time given (Unix nanoseconds) instead of read from
// Options.Clock, for a replica that must store the times its leader chose. Times still never
// decrease along the log: a time before the last record's is raised to it.
func (l *Log) AppendBatchAt(values [][]byte, timeNanos int64) (uint64, error) {
	return l.appendBatch(values, nil, timeNanos)
}

// AppendBatchKeyed is AppendBatchAt with each record's key given: keys[i] is the key of values[i],
// kept in its frame and its index entry for SearchKey. A timeNanos of 0 takes the time from
// Options.Clock. Keys never decrease along the log: a batch whose keys decrease, or whose first key
// is below the last record's (records below LowestOffset count until Reset or a TruncateAfter
// removes them), or with another number of keys than records, returns ErrKeyOrder and writes
// nothing.
func (l *Log) AppendBatchKeyed(values [][]byte, keys []uint64, timeNanos int64) (uint64, error) {
	if len(keys) != len(values) {
		return 0, fmt.Errorf("%w: %d keys for %d records", ErrKeyOrder, len(keys), len(values))
	}
	for i := 1; i < len(keys); i++ {
		if keys[i] < keys[i-1] {
			return 0, fmt.Errorf("%w: key %d of the batch is %d, below the key %d before it", ErrKeyOrder, i, keys[i], keys[i-1])
		}
	}
	return l.appendBatch(values, keys, timeNanos)
}

// appendBatch appends values stamped with timeNanos, or with the clock's time if it is 0, with the
// given keys, already checked to be in order among themselves, or with plain keys if keys is nil.
func (l *Log) appendBatch(values [][]byte, keys []uint64, timeNanos int64) (uint64, error) {
	for i, v := range values {
		if uint64(len(v)) > uint64(l.opts.MaxRecordBytes) {
			return 0, fmt.Errorf("%w: record %d of the batch is %d bytes, the maximum is %d", ErrRecordTooLarge, i, len(v), l.opts.MaxRecordBytes)
		}
	}
	l.wmu.Lock()
	if l.growing {
		n := int64(0)
		for _, v := range values {
			n += frameHeaderSize + int64(len(v))
		}
		l.waitGrowLocked(len(values), n)
	}
	if err := l.writableLocked(); err != nil {
		l.wmu.Unlock()
		return 0, err
	}
	if len(keys) > 0 && keys[0] < l.lastKey {
		l.wmu.Unlock()
		return 0, fmt.Errorf("%w: the batch's first key %d is below the last record's key %d", ErrKeyOrder, keys[0], l.lastKey)
	}
	first := l.nextWrite
	if err := l.writeLocked(values, keys, timeNanos); err != nil {
		err = l.failLocked(err)
		l.wmu.Unlock()
		return 0, err
	}
	last := l.nextWrite
	if l.opts.Sync != SyncEveryBatch {
		l.publishLocked(last)
	}
	l.wmu.Unlock()
	if l.opts.Sync == SyncEveryBatch && last > first {
		if err := l.syncTo(last); err != nil {
			return 0, err
		}
	}
	return first, nil
}

func (l *Log) writableLocked() error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.failErr
}

// failLocked makes err the log's sticky error.
func (l *Log) failLocked(err error) error {
	if l.failErr == nil {
		l.failErr = fmt.Errorf("%w: %w", ErrFailed, err)
		l.opts.Logger.Error("storelog: log failed; it takes no more writes", slog.String("dir", l.dir), slog.Any("error", err))
	}
	return l.failErr
}

// writeLocked writes values, stamped with timeNanos and keyed with keys (plain keys if nil), to the
// active segment, rolling as segments fill. Nothing is published.
func (l *Log) writeLocked(values [][]byte, keys []uint64, timeNanos int64) error {
	if timeNanos == 0 {
		timeNanos = l.opts.Clock().UnixNano()
	}
	now := max(timeNanos, l.lastTime)
	l.lastTime = now
	for len(values) > 0 {
		s := l.active
		if s.count > 0 && l.opts.MaxSegmentAge > 0 && now-s.firstTime >= int64(l.opts.MaxSegmentAge) {
			if err := l.rollLocked(); err != nil {
				return err
			}
			continue
		}
		n, bytes := 0, uint64(s.size)
		for n < len(values) && s.count+uint64(n) < s.capacity() {
			frame := frameHeaderSize + uint64(len(values[n]))
			if bytes+frame > uint64(l.opts.MaxSegmentBytes) {
				break
			}
			bytes += frame
			n++
		}
		if n == 0 {
			if err := l.rollLocked(); err != nil {
				return err
			}
			continue
		}
		buf := l.buf[:0]
		key, firstKey := l.lastKey, uint64(0)
		for i, v := range values[:n] {
			off := l.nextWrite + uint64(i)
			if keys != nil {
				key = keys[i]
			} else {
				key = max(off, key)
			}
			if i == 0 {
				firstKey = key
			}
			putIndexEntry(s.indexMap[(s.count+uint64(i))*indexEntrySize:], indexEntry{position: s.size + uint32(len(buf)), length: uint32(len(v)), time: now, key: key})
			buf = appendFrame(buf, s.seed, off, now, key, s.synced, v)
		}
		if _, err := s.store.WriteAt(buf, int64(s.size)); err != nil {
			return err
		}
		if cap(buf) <= 8<<20 {
			l.buf = buf
		}
		if s.count == 0 {
			s.firstTime = now
			s.firstKey.Store(firstKey)
		}
		l.lastKey = key
		if keys != nil {
			keys = keys[n:]
		}
		s.lastTime = now
		s.count += uint64(n)
		s.size = uint32(bytes)
		s.allocated = max(s.allocated, int64(s.size))
		l.nextWrite += uint64(n)
		values = values[n:]
	}
	l.wakePreallocatorLocked()
	return nil
}

// rollLocked seals the active segment and starts a new one at the next offset, in the prepared file
// if there is one.
func (l *Log) rollLocked() error {
	old := l.active
	if err := old.seal(); err != nil {
		return err
	}
	s := newSegment(l.dir, l.nextWrite)
	if l.prepared {
		if err := l.adoptPrepared(s); err != nil {
			return err
		}
	}
	if err := s.openActive(l.opts.FS, l.opts.MaxSegmentRecords, l.opts.MaxSegmentBytes); err != nil {
		return err
	}
	s.size, s.synced = storeHeaderSize, storeHeaderSize
	if err := l.opts.FS.SyncDir(l.dir); err != nil {
		return err
	}
	l.mu.Lock()
	l.segments = append(l.segments, s)
	l.mu.Unlock()
	l.active = s
	return nil
}

// publishLocked makes offsets below next readable and wakes waiters.
func (l *Log) publishLocked(next uint64) {
	l.next.Store(next)
	l.wake()
}

func (l *Log) wake() {
	l.notifyMu.Lock()
	if l.notify != nil {
		close(l.notify)
		l.notify = nil
	}
	l.notifyMu.Unlock()
}

// syncTo returns once offsets below target are durable. If no fsync is running, the caller runs one
// covering everything written so far; otherwise it waits for that fsync, and all the appenders that
// queued behind one fsync are covered by the next.
func (l *Log) syncTo(target uint64) error {
	l.gcMu.Lock()
	defer l.gcMu.Unlock()
	for l.durable < target {
		if l.syncing {
			l.gcCond.Wait()
			continue
		}
		l.syncing = true
		l.gcMu.Unlock()
		err := l.syncWritten()
		l.gcMu.Lock()
		l.syncing = false
		l.gcCond.Broadcast()
		if err != nil {
			return err
		}
	}
	return nil
}

// syncWritten fsyncs the active store and publishes everything written before the fsync began.
func (l *Log) syncWritten() error {
	l.syncMu.RLock()
	defer l.syncMu.RUnlock()
	// Appenders that the last fsync released are runnable now; letting them write first puts their
	// records in this fsync instead of the next.
	runtime.Gosched()
	l.wmu.Lock()
	if err := l.writableLocked(); err != nil {
		l.wmu.Unlock()
		return err
	}
	s, upto, pos := l.active, l.nextWrite, l.active.size
	l.wmu.Unlock()

	// Segments before s were fsynced when they were sealed.
	err := s.store.Sync()

	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err != nil {
		return l.failLocked(err)
	}
	if l.failErr != nil {
		// Another fsync of the store (the preallocator's) failed meanwhile, and may have taken the
		// error that this one would have reported: nothing it covered is acknowledged.
		return l.failErr
	}
	s.synced = max(s.synced, pos)
	l.setDurableLocked(upto)
	if upto > l.next.Load() {
		l.publishLocked(upto)
	}
	return nil
}

// setDurableLocked records that offsets below d are durable (or, after a truncation, that no more
// than those are). The caller holds wmu.
func (l *Log) setDurableLocked(d uint64) {
	l.gcMu.Lock()
	l.durable = d
	l.gcMu.Unlock()
}

// Sync makes every record appended so far durable and readable.
func (l *Log) Sync() error {
	l.wmu.Lock()
	if err := l.writableLocked(); err != nil {
		l.wmu.Unlock()
		return err
	}
	target := l.nextWrite
	l.wmu.Unlock()
	return l.syncTo(target)
}

// Read returns the record at offset. It fails with ErrOffsetOutOfRange below LowestOffset or at or
// past NextOffset, and with ErrCorrupt if the record's bytes fail their checks.
func (l *Log) Read(offset uint64) (Record, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s, err := l.segmentForLocked(offset)
	if err != nil {
		return Record{}, err
	}
	h, value, err := s.frame(offset)
	if err != nil {
		return Record{}, err
	}
	// append, not make and copy: the new slice is not zeroed before the copy.
	return Record{Offset: offset, Time: h.time, Key: h.key, Value: append([]byte(nil), value...)}, nil
}

// ReadBatch appends to dst consecutive records from offset on, stopping before maxBytes of values
// would be passed (always returning at least one record), at maxRecords, or at the end of what is
// readable, and returns the extended slice. The values share one new buffer: one allocation for the
// batch instead of one a record. Errors are Read's; a batch that hits a corrupt record after others
// returns those others and no error, so the next call reports it.
func (l *Log) ReadBatch(dst []Record, offset uint64, maxRecords, maxBytes int) ([]Record, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if _, err := l.segmentForLocked(offset); err != nil {
		return dst, err
	}
	next := l.next.Load()
	n := min(uint64(maxRecords), next-offset)
	frames, values := make([]frameHeader, 0, n), make([][]byte, 0, n)
	total := 0
	var s *segment
	var end uint64 // s holds offsets below end
	for off := offset; off < next && len(frames) < maxRecords; off++ {
		if s == nil || off >= end {
			i := l.segmentIndexLocked(off)
			s, end = l.segments[i], next
			if i+1 < len(l.segments) {
				end = l.segments[i+1].base
			}
			if err := s.openSealed(l.opts.FS); err != nil {
				if len(frames) == 0 {
					return dst, err
				}
				break
			}
		}
		h, v, err := s.frame(off)
		if err != nil {
			if len(frames) == 0 {
				return dst, err
			}
			break
		}
		if len(frames) > 0 && total+len(v) > maxBytes {
			break
		}
		frames, values = append(frames, h), append(values, v)
		total += len(v)
	}
	buf := make([]byte, 0, total)
	for i, h := range frames {
		start := len(buf)
		buf = append(buf, values[i]...)
		dst = append(dst, Record{Offset: h.offset, Time: h.time, Key: h.key, Value: buf[start:len(buf):len(buf)]})
	}
	return dst, nil
}

// segmentForLocked finds, and opens if need be, the segment holding offset. The caller holds mu.
func (l *Log) segmentForLocked(offset uint64) (*segment, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	low, next := l.low.Load(), l.next.Load()
	if offset < low || offset >= next {
		return nil, fmt.Errorf("%w: offset %d, the log holds [%d, %d)", ErrOffsetOutOfRange, offset, low, next)
	}
	i := l.segmentIndexLocked(offset)
	s := l.segments[i]
	if err := s.openSealed(l.opts.FS); err != nil {
		return nil, err
	}
	return s, nil
}

// segmentIndexLocked is the index in l.segments of the segment holding offset, which the caller has
// checked is in [low, next). The caller holds mu.
func (l *Log) segmentIndexLocked(offset uint64) int {
	i, found := slices.BinarySearchFunc(l.segments, offset, func(s *segment, off uint64) int {
		switch {
		case s.base > off:
			return 1
		case s.base < off:
			return -1
		}
		return 0
	})
	if !found {
		i--
	}
	return i
}

// OffsetForTime returns the first offset whose record was appended at or after t (Unix nanoseconds).
// If every record is older, it returns NextOffset: a reader starting there sees the next append.
func (l *Log) OffsetForTime(t int64) (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	low, next := l.low.Load(), l.next.Load()
	var err error
	lo, hi := low, next
	for lo < hi && err == nil {
		mid := lo + (hi-lo)/2
		var s *segment
		if s, err = l.segmentForLocked(mid); err != nil {
			break
		}
		var e indexEntry
		if e, err = s.entry(mid - s.base); err != nil {
			break
		}
		if e.time >= t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if err != nil {
		return 0, err
	}
	return lo, nil
}

// SearchKey returns the offset of the last record whose key is at most k, among the records the log
// holds ([LowestOffset, NextOffset)). It is a binary search over the segments' first keys, which the
// log keeps in memory, then one over the chosen segment's mapped index: a bounded number of index
// reads, never a scan, and no store read. If the log is empty or every record's key is above k it
// returns ErrOffsetOutOfRange.
func (l *Log) SearchKey(k uint64) (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	low, next := l.low.Load(), l.next.Load()
	if low == next {
		return 0, fmt.Errorf("%w: no record has a key at or below %d: the log is empty at %d", ErrOffsetOutOfRange, k, next)
	}
	// Segments after the one holding next-1 hold nothing readable; every segment up to it holds
	// records, so its first key is known (set before its first record was published).
	segs := l.segments[:l.segmentIndexLocked(next-1)+1]
	i := sort.Search(len(segs), func(i int) bool { return segs[i].firstKey.Load() > k }) - 1
	if i < 0 {
		return 0, l.keyBelowLocked(k, low)
	}
	s := segs[i]
	if err := s.openSealed(l.opts.FS); err != nil {
		return 0, err
	}
	end := next
	if i+1 < len(segs) {
		end = segs[i+1].base
	}
	n := end - s.base
	if n*indexEntrySize > uint64(len(s.indexMap)) {
		return 0, corruptf("segment %d: index holds %d entries, %d wanted", s.base, len(s.indexMap)/indexEntrySize, n)
	}
	// The first entry with a key above k; entry 0's is not (firstKey <= k).
	j := sort.Search(int(n), func(j int) bool { return indexKey(s.indexMap[uint64(j)*indexEntrySize:]) > k })
	off := s.base + uint64(j) - 1
	if off < low {
		return 0, l.keyBelowLocked(k, low)
	}
	return off, nil
}

// KeyAt returns the key of the record at offset, from its index entry alone: no store read, no
// checksum (Read checks the whole record). Errors are Read's.
func (l *Log) KeyAt(offset uint64) (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s, err := l.segmentForLocked(offset)
	if err != nil {
		return 0, err
	}
	e, err := s.entry(offset - s.base)
	if err != nil {
		return 0, err
	}
	return e.key, nil
}

// keyBelowLocked is SearchKey's error for a key below the key of the lowest record. The caller holds
// mu.
func (l *Log) keyBelowLocked(k, low uint64) error {
	lowest := "unknown"
	if s, err := l.segmentForLocked(low); err == nil {
		if e, err := s.entry(low - s.base); err == nil {
			lowest = strconv.FormatUint(e.key, 10)
		}
	}
	return fmt.Errorf("%w: key %d is below the key %s of the lowest record, offset %d", ErrOffsetOutOfRange, k, lowest, low)
}

// LowestOffset is the offset of the oldest record the log holds, or NextOffset if it holds none.
func (l *Log) LowestOffset() uint64 { return l.low.Load() }

// NextOffset is the offset the next append gets. The log is empty when it equals LowestOffset.
func (l *Log) NextOffset() uint64 { return l.next.Load() }

// Stats describe a log's size.
type Stats struct {
	LowestOffset uint64
	NextOffset   uint64
	Segments     int
	Bytes        int64 // store bytes, frame headers included
}

// Stats returns the log's offsets, segment count and size. It is safe on a closed log, where it
// gives the figures at Close.
func (l *Log) Stats() Stats {
	l.wmu.Lock()
	activeSize := int64(l.active.size)
	l.wmu.Unlock()
	l.mu.RLock()
	defer l.mu.RUnlock()
	st := Stats{LowestOffset: l.low.Load(), NextOffset: l.next.Load(), Segments: len(l.segments)}
	for _, s := range l.segments[:len(l.segments)-1] {
		st.Bytes += s.sealedSize()
	}
	st.Bytes += activeSize
	return st
}

// Wait blocks until the record at offset is readable (offset < NextOffset), ctx is done, or the log
// closes (ErrClosed). It never polls: appends wake it.
func (l *Log) Wait(ctx context.Context, offset uint64) error {
	for {
		l.notifyMu.Lock()
		if l.notify == nil {
			l.notify = make(chan struct{})
		}
		ch := l.notify
		l.notifyMu.Unlock()
		if l.closed.Load() {
			return ErrClosed
		}
		if offset < l.next.Load() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close syncs the log, records a clean close so the next Open need not scan, and closes its files.
// Calls after Close return ErrClosed.
func (l *Log) Close() error {
	l.syncMu.Lock()
	l.wmu.Lock()
	if l.closed.Load() {
		l.wmu.Unlock()
		l.syncMu.Unlock()
		return ErrClosed
	}
	var err error
	if l.failErr == nil {
		if err = l.active.syncActive(); err == nil {
			err = l.writeMeta(true)
		}
	}
	l.mu.Lock()
	l.closed.Store(true)
	for _, s := range l.segments {
		if cerr := s.closeFiles(); err == nil {
			err = cerr
		}
	}
	l.mu.Unlock()
	l.wmu.Unlock()
	l.syncMu.Unlock()
	close(l.done)
	l.wg.Wait()
	l.wake()
	return err
}

// Dir is the directory the log lives in.
func (l *Log) Dir() string { return l.dir }

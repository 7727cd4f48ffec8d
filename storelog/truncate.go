package storelog

import (
	"fmt"
	"slices"
)

// Truncate removes the records below lowest (head truncation, as Raft compaction does). Whole
// segments below lowest are deleted; the rest of the log is untouched, and lowest is persisted as the
// low watermark before any file is deleted. lowest may equal NextOffset, which empties the log
// without moving its next offset; a lowest past it is ErrOffsetOutOfRange, and one at or below
// LowestOffset does nothing.
func (l *Log) Truncate(lowest uint64) error {
	l.removeMu.Lock()
	defer l.removeMu.Unlock()
	drop, err := l.detachHead(lowest)
	if err != nil {
		return err
	}
	return l.removeDetached(drop)
}

// detachHead persists lowest as the low watermark and takes the segments wholly below it out of the
// list, under the writer locks; their files are left for removeDetached.
func (l *Log) detachHead(lowest uint64) ([]*segment, error) {
	unlock, err := l.lockWriters()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if lowest <= l.low.Load() {
		return nil, nil
	}
	if lowest > l.nextWrite {
		return nil, fmt.Errorf("%w: truncate below %d, past the next offset %d", ErrOffsetOutOfRange, lowest, l.nextWrite)
	}
	l.mu.Lock()
	l.low.Store(lowest)
	l.mu.Unlock()
	if err := l.writeMeta(false); err != nil {
		return nil, l.failLocked(err)
	}
	var drop []*segment
	l.mu.Lock()
	for len(l.segments) > 1 && l.segments[1].base <= lowest {
		drop = append(drop, l.segments[0])
		l.segments = l.segments[1:]
	}
	l.mu.Unlock()
	return drop, nil
}

// removeDetached deletes the files of sealed segments already taken out of the list, without the
// writer locks: deleting a large file can take milliseconds (the file system may discard its blocks),
// and appends must not wait for it. No reader can reach the segments any more, and the active segment
// is never among them. The caller holds removeMu, so no call that creates segment files runs
// meanwhile. A failure here loses nothing and does not fail the log: a segment left behind below the
// low watermark is removed by the next Open.
func (l *Log) removeDetached(drop []*segment) error {
	for _, s := range drop {
		if err := s.remove(l.opts.FS); err != nil {
			return err
		}
	}
	if len(drop) > 0 {
		if err := l.opts.FS.SyncDir(l.dir); err != nil {
			return fmt.Errorf("storelog: sync %s after removing segments: %w", l.dir, err)
		}
	}
	return nil
}

// lockWriters takes syncMu and wmu, for a call that changes the log's files, and returns their
// unlock; it fails, holding nothing, if the log takes no more writes.
func (l *Log) lockWriters() (unlock func(), err error) {
	l.syncMu.Lock()
	l.wmu.Lock()
	if err := l.writableLocked(); err != nil {
		l.wmu.Unlock()
		l.syncMu.Unlock()
		return nil, err
	}
	return func() {
		l.wmu.Unlock()
		l.syncMu.Unlock()
	}, nil
}

// removeSegmentsLocked deletes segments already taken out of the list, in the given order, and
// syncs the directory. The caller holds syncMu and wmu.
func (l *Log) removeSegmentsLocked(drop []*segment) error {
	for _, s := range drop {
		if err := s.remove(l.opts.FS); err != nil {
			return l.failLocked(err)
		}
	}
	if len(drop) > 0 {
		if err := l.opts.FS.SyncDir(l.dir); err != nil {
			return l.failLocked(err)
		}
	}
	return nil
}

// TruncateAfter removes the records after offset (tail truncation, as Raft does on a conflict), so
// that the next append gets offset+1. offset may be LowestOffset-1, which empties the log; an offset
// below that is ErrOffsetOutOfRange, and one at or past the last record does nothing. Segments are
// deleted from the highest down, so a crash part-way leaves a shorter log, never a gap.
func (l *Log) TruncateAfter(offset uint64) error {
	l.removeMu.Lock()
	defer l.removeMu.Unlock()
	unlock, err := l.lockWriters()
	if err != nil {
		return err
	}
	defer unlock()
	newNext := offset + 1
	if newNext >= l.nextWrite {
		return nil
	}
	if newNext < l.low.Load() {
		return fmt.Errorf("%w: truncate after %d, below the lowest offset %d", ErrOffsetOutOfRange, offset, l.low.Load())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next.Store(min(l.next.Load(), newNext))
	keep := 0
	for keep < len(l.segments) && l.segments[keep].base < newNext {
		keep++
	}
	drop := slices.Clone(l.segments[keep:])
	slices.Reverse(drop)
	l.segments = l.segments[:keep]
	if err := l.removeSegmentsLocked(drop); err != nil {
		return err
	}
	if keep == 0 {
		return l.startEmptyLocked(newNext)
	}
	s := l.segments[keep-1]
	if !s.active {
		if err := s.openActive(l.opts.FS, l.opts.MaxSegmentRecords, l.opts.MaxSegmentBytes); err != nil {
			return l.failLocked(err)
		}
		s.synced = uint32(s.storeSize) // fsynced when it was sealed
	}
	s.count = newNext - s.base
	last, err := s.entry(s.count - 1)
	if err != nil {
		return l.failLocked(err)
	}
	s.size = last.position + frameHeaderSize + last.length
	s.lastTime = last.time
	l.lastKey = last.key
	if first, err := s.entry(0); err == nil {
		s.firstTime = first.time
	}
	// Lower the recovery floor before the store shrinks below it, then cut the store for real: the
	// frames past the cut carry the offsets the next appends take, and must not outlive it.
	s.synced = min(s.synced, s.size)
	l.active = s
	if err := l.writeMeta(false); err != nil {
		return l.failLocked(err)
	}
	if err := s.store.Truncate(int64(s.size)); err != nil {
		return l.failLocked(err)
	}
	s.allocated = int64(s.size)
	if err := s.store.Sync(); err != nil {
		return l.failLocked(err)
	}
	l.nextWrite = newNext
	l.setDurableLocked(min(l.durable, newNext))
	return nil
}

// Reset empties the log and makes firstOffset its next (and lowest) offset, as Raft needs after
// restoring a snapshot. Segments are deleted from the lowest up, so a crash part-way leaves a log
// that lost its head, never one with a gap.
func (l *Log) Reset(firstOffset uint64) error {
	l.removeMu.Lock()
	defer l.removeMu.Unlock()
	unlock, err := l.lockWriters()
	if err != nil {
		return err
	}
	defer unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.resetLocked(firstOffset)
}

// resetLocked deletes every segment and starts an empty one at first. The caller holds every lock
// (or, during Open, has the log to itself).
func (l *Log) resetLocked(first uint64) error {
	drop := l.segments
	l.segments = nil
	l.next.Store(min(l.next.Load(), first))
	if err := l.removeSegmentsLocked(drop); err != nil {
		return err
	}
	return l.startEmptyLocked(first)
}

// startEmptyLocked makes an empty active segment at first the log's only one, with first as its
// low watermark, persisted before the segment file exists.
func (l *Log) startEmptyLocked(first uint64) error {
	l.low.Store(first)
	if err := l.replaceMeta(meta{lowWatermark: first, activeBase: first}); err != nil {
		return l.failLocked(err)
	}
	s := newSegment(l.dir, first)
	if err := s.openActive(l.opts.FS, l.opts.MaxSegmentRecords, l.opts.MaxSegmentBytes); err != nil {
		return l.failLocked(err)
	}
	if err := l.opts.FS.SyncDir(l.dir); err != nil {
		return l.failLocked(err)
	}
	l.segments = []*segment{s}
	l.active, l.nextWrite, l.lastKey = s, first, 0
	l.setDurableLocked(first)
	l.next.Store(first)
	l.wake()
	return nil
}

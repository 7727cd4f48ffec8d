package storelog

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

const (
	// preallocChunk is how far ahead of the last record the preallocator writes in a segment that
	// was not prepared whole: far enough that appends rarely catch up with it, small enough that a
	// log opened for a few records writes little.
	preallocChunk = 1 << 20
	// zeroPiece is how many zeros go to the page cache before they are pushed to the disk: an
	// append's fdatasync of the same file flushes every dirty page of it, so zeros must not wait
	// there for the preallocator's own fsync.
	zeroPiece = 128 << 10
	// preparedFileName is the next segment's store file, zeros to MaxSegmentBytes, fsynced; written
	// as preparedFileName+tmpSuffix and renamed once durable.
	preparedFileName = "storelog.prepared"
)

// wakePreallocatorLocked wakes the preallocator when the active segment's written-ahead zeros run
// low, or when it is half full and no next segment is prepared. The caller holds wmu.
func (l *Log) wakePreallocatorLocked() {
	if l.grow == nil {
		return
	}
	s := l.active
	low := s.allocated < int64(l.opts.MaxSegmentBytes) && int64(s.size)+preallocChunk/2 > s.allocated
	if low || l.needPrepareLocked() {
		select {
		case l.grow <- struct{}{}:
		default:
		}
	}
}

// needPrepareLocked says whether the next segment's store file should be prepared now.
func (l *Log) needPrepareLocked() bool {
	return !l.prepared && int64(l.active.size)*2 > int64(l.opts.MaxSegmentBytes)
}

// waitGrowLocked returns once an append of records frames of n bytes in all can go ahead beside the
// preallocator: one that stays below the range being zeroed goes at once; one that would reach it,
// or may roll the segment under it (by size, record count or age), waits for the zeros to be
// written. The caller holds wmu, and calls this before it takes offsets, since the wait releases
// wmu.
func (l *Log) waitGrowLocked(records int, n int64) {
	for l.growing {
		s := l.active
		if int64(s.size)+n < l.growFrom && s.count+uint64(records) < s.capacity() && l.opts.MaxSegmentAge == 0 {
			return
		}
		l.growDone.Wait()
	}
}

// preallocate runs in the background unless the log is SyncNever (whose appends do not fsync). It
// keeps the blocks an append writes next allocated, written and their size committed, so that an
// append's fdatasync flushes its data only, instead of a journal commit of the new size as well:
//   - once the active segment is half full, it prepares the next segment's store file whole, zeros
//     to MaxSegmentBytes, fsynced, under its own name (prepareNext); the roll adopts it, so a
//     segment that starts from it never has zeros written in it while appends fsync it;
//   - in a segment that did not start from a prepared file (the first one, one made by Open,
//     TruncateAfter or Reset, or a roll that came before the prepared file was ready), it writes
//     zeros about 1 MiB ahead of the last record (growActive).
//
// Appends that outrun it still work: they grow the file as before. (The zeros go through the page
// cache. Direct I/O would keep them out of the appends' fdatasyncs, but an extending direct write
// holds the inode lock for the whole device write: 64 x 1 KiB batches measured 0.5x with it.)
func (l *Log) preallocate() {
	for {
		select {
		case <-l.done:
			return
		case <-l.grow:
		}
		err := l.growActive()
		if err == nil {
			err = l.prepareNext()
		}
		if err != nil && !l.closed.Load() {
			l.opts.Logger.Error("storelog: preallocate", slog.String("dir", l.dir), slog.Any("error", err))
		}
	}
}

// growActive writes one chunk of zeros past the active segment's last record and fsyncs it. The
// range is claimed under wmu and written without it: appends that would reach it wait
// (waitGrowLocked). Calls that close or cut segment files take syncMu for writing, so none runs
// meanwhile. A failure fails the log, as any failed write or fsync of a store does.
func (l *Log) growActive() error {
	l.syncMu.RLock()
	defer l.syncMu.RUnlock()
	l.wmu.Lock()
	if l.writableLocked() != nil {
		l.wmu.Unlock()
		return nil
	}
	s := l.active
	from := max(s.allocated, int64(s.size))
	to := min(int64(l.opts.MaxSegmentBytes), from+preallocChunk)
	if from >= to {
		l.wmu.Unlock()
		return nil
	}
	l.growing, l.growFrom = true, from
	l.wmu.Unlock()

	err := writeZeros(s.store, l.zeros, from, to, nil)

	l.wmu.Lock()
	l.growing = false
	l.growDone.Broadcast()
	if err != nil {
		err = l.failLocked(err)
		l.wmu.Unlock()
		return err
	}
	s.allocated = max(s.allocated, to)
	l.wmu.Unlock()
	if err := s.store.Sync(); err != nil {
		l.wmu.Lock()
		defer l.wmu.Unlock()
		return l.failLocked(err)
	}
	return nil
}

// writeZeros writes zeros over [from, to) of f a piece at a time, starting each piece's writeback
// and waiting for it before the next, so that few of them are dirty in the page cache at any time.
// It does not fsync: the size, and durability, are the caller's. It gives up with ErrClosed once stop
// is closed.
func writeZeros(f File, zeros []byte, from, to int64, stop <-chan struct{}) error {
	for at := from; at < to; at += zeroPiece {
		select {
		case <-stop:
			return ErrClosed
		default:
		}
		n := min(zeroPiece, to-at)
		if _, err := f.WriteAt(zeros[:n], at); err != nil {
			return err
		}
		if err := writeBack(f, at, n); err != nil {
			return err
		}
	}
	return nil
}

// prepareNext makes the next segment's store file, if the active segment is half full and none is
// prepared: zeros to MaxSegmentBytes under a temporary name, fsynced, renamed to preparedFileName,
// directory fsynced. It works outside the writer's locks, on a file no segment uses. A failure is
// logged, not fatal: the next roll makes its file as if none were prepared, and Open removes a
// temporary file left behind.
func (l *Log) prepareNext() error {
	l.wmu.Lock()
	need := l.writableLocked() == nil && l.needPrepareLocked()
	l.wmu.Unlock()
	if !need {
		return nil
	}
	fs := l.opts.FS
	path := filepath.Join(l.dir, preparedFileName)
	tmp := path + tmpSuffix
	f, err := fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("storelog: prepare a segment: %w", err)
	}
	// Close does not wait for a whole segment of zeros: it stops the writing, and the next Open
	// removes the temporary file.
	err = writeZeros(f, l.zeros, 0, int64(l.opts.MaxSegmentBytes), l.done)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, path)
	}
	if err == nil {
		err = fs.SyncDir(l.dir)
	}
	if err != nil {
		return fmt.Errorf("storelog: prepare a segment: %w", err)
	}
	l.wmu.Lock()
	l.prepared = true
	l.wmu.Unlock()
	return nil
}

// adoptPrepared turns the prepared file into s's store file: its header (base, a new segment id)
// written and fsynced, then renamed to s's name. Fsynced before the rename, the header is in place
// whenever the name is: the file's zeros never read as anything but the end of an empty segment,
// and the new id makes any stale bytes fail as frames. The caller holds wmu, opens s and fsyncs the
// directory before a record goes in.
func (l *Log) adoptPrepared(s *segment) error {
	l.prepared = false
	path := filepath.Join(l.dir, preparedFileName)
	f, err := l.opts.FS.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(encodeStoreHeader(storeHeader{base: s.base, id: newSegmentID()}), 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.opts.FS.Rename(path, s.storePath)
	}
	return err
}

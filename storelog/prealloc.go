package storelog

import "log/slog"

// preallocChunk is how far ahead of the last record the preallocator writes: far enough that appends
// rarely catch up with it, small enough that a log opened for a few records writes little.
const preallocChunk = 1 << 20

// growIfLowLocked wakes the preallocator when the active segment's written-ahead zeros run low. The
// caller holds wmu.
func (l *Log) growIfLowLocked() {
	if l.grow == nil {
		return
	}
	s := l.active
	if s.allocated < int64(l.opts.MaxSegmentBytes) && int64(s.size)+preallocChunk/2 > s.allocated {
		select {
		case l.grow <- struct{}{}:
		default:
		}
	}
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

// preallocate runs in the background unless the log is SyncNever (whose appends do not fsync): it
// writes zeros past the active segment's last record and fsyncs them, so that the blocks an append
// writes next are allocated and written already and the file size committed. An append's fdatasync
// then flushes its data only, instead of a journal commit of the new size as well. Appends that
// outrun the preallocator still work: they grow the file as before. (The zeros go through the page
// cache. Direct I/O would keep them out of the appends' fdatasyncs, but an extending direct write
// holds the inode lock for the whole device write: 64 x 1 KiB batches measured 0.5x with it.)
func (l *Log) preallocate() {
	for {
		select {
		case <-l.done:
			return
		case <-l.grow:
		}
		if err := l.growActive(); err != nil && !l.closed.Load() {
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

	_, err := s.store.WriteAt(l.zeros[:to-from], from)

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

package storelog

import "log/slog"

// preallocChunk is how far ahead of the last record the preallocator keeps the active store file
// written: far enough that appends rarely catch up with it, small enough that a log opened for a few
// records does not write much.
func preallocChunk(maxSegmentBytes uint32) int64 {
	return min(1<<20, int64(maxSegmentBytes))
}

// growIfLowLocked wakes the preallocator when the active segment's written-ahead zeros run low. The
// caller holds wmu.
func (l *Log) growIfLowLocked() {
	if l.grow == nil {
		return
	}
	s := l.active
	if s.allocated < int64(l.opts.MaxSegmentBytes) && int64(s.size)+int64(len(l.zeros))/2 > s.allocated {
		select {
		case l.grow <- struct{}{}:
		default:
		}
	}
}

// preallocate runs in the background unless the log is SyncNever (whose appends do not fsync): it writes zeros past the active
// segment's last record and fsyncs them, so that the blocks an append writes next are already
// allocated and the file size already committed. An append's fdatasync then flushes data only,
// instead of a journal commit of the new size as well. Appends that outrun it still work: they grow
// the file as before.
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

// growActive writes one chunk of zeros past the active segment's last record and fsyncs it. The zeros
// are written under wmu, past every record, so they never land on one; the fsync runs beside
// appends. A failure fails the log, as any failed write or fsync of a store does.
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
	to := min(int64(l.opts.MaxSegmentBytes), from+int64(len(l.zeros)))
	if from >= to {
		l.wmu.Unlock()
		return nil
	}
	if _, err := s.store.WriteAt(l.zeros[:to-from], from); err != nil {
		err = l.failLocked(err)
		l.wmu.Unlock()
		return err
	}
	s.allocated = to
	l.wmu.Unlock()
	if err := s.store.Sync(); err != nil {
		l.wmu.Lock()
		defer l.wmu.Unlock()
		return l.failLocked(err)
	}
	return nil
}

package storelog

import (
	"log/slog"
	"os"
	"syscall"
	"unsafe"
)

const (
	// preallocChunk is how far ahead of the last record the preallocator writes: far enough that
	// appends rarely catch up with it, small enough that a log opened for a few records writes little.
	preallocChunk = 1 << 20
	// preallocAlign is the alignment of direct I/O offsets, lengths and buffers.
	preallocAlign = 4096
)

// alignedZeros returns n zero bytes whose address is a multiple of preallocAlign, as direct I/O needs.
func alignedZeros(n int) []byte {
	b := make([]byte, n+preallocAlign)
	skip := (preallocAlign - int(uintptr(unsafe.Pointer(&b[0]))%preallocAlign)) % preallocAlign
	return b[skip : skip+n : skip+n]
}

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
// then flushes its data only, instead of a journal commit of the new size as well. The zeros go
// through direct I/O where the file system allows it, so that they are never dirty pages that an
// append's fdatasync would have to flush along with its own. Appends that outrun the preallocator
// still work: they grow the file as before.
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
	from := alignUp(max(s.allocated, int64(s.size)))
	to := min(int64(l.opts.MaxSegmentBytes)/preallocAlign*preallocAlign, from+preallocChunk)
	if from >= to {
		l.wmu.Unlock()
		return nil
	}
	l.growing, l.growFrom = true, from
	l.wmu.Unlock()

	err := s.writeZeros(l.opts.FS, l.zeros[:to-from], from)

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

func alignUp(n int64) int64 { return (n + preallocAlign - 1) / preallocAlign * preallocAlign }

// writeZeros writes zeros (aligned, as direct I/O needs) at off, an aligned offset, through a
// direct-I/O handle on the store when the file system gives one, else through the store's own.
func (s *segment) writeZeros(fs FS, zeros []byte, off int64) error {
	if s.direct == nil && !s.noDirect {
		f, err := fs.OpenFile(s.storePath, os.O_WRONLY|syscall.O_DIRECT, 0)
		if err != nil {
			s.noDirect = true
		} else {
			s.direct = f
		}
	}
	w := s.store
	if s.direct != nil {
		w = s.direct
	}
	_, err := w.WriteAt(zeros, off)
	return err
}

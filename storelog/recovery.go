package storelog

import (
	"fmt"
	"log/slog"
	"math"
)

// openActiveClean opens the active segment after a clean close, trusting the count and size the meta
// file recorded. It reports false, with the files closed again, if the files disagree with the meta
// file, in which case the caller scans.
func (l *Log) openActiveClean(s *segment, m meta) (bool, error) {
	if err := s.openActive(l.opts.FS, l.opts.MaxSegmentRecords, l.opts.MaxSegmentBytes); err != nil {
		return false, err
	}
	fi, err := s.store.Stat()
	if err != nil {
		return false, err
	}
	ok := fi.Size() == int64(m.storeSize) && m.activeCount <= s.capacity()
	if ok {
		s.count, s.size = m.activeCount, m.storeSize
	}
	if ok && s.count > 0 {
		last, err1 := s.entry(s.count - 1)
		_, _, err2 := s.frame(s.base + s.count - 1)
		first, err3 := s.entry(0)
		ok = err1 == nil && err2 == nil && err3 == nil &&
			uint64(last.position)+frameHeaderSize+uint64(last.length) == uint64(s.size)
		s.firstTime, s.lastTime = first.time, last.time
	}
	if !ok {
		l.opts.Logger.Warn("storelog: clean-close record does not match the active segment; scanning it",
			slog.Uint64("segment", s.base))
		s.count, s.size = 0, 0
		return false, s.closeFiles()
	}
	return true, nil
}

// recoverActive rebuilds the active segment's index from its store after an unclean shutdown. It
// keeps the longest prefix of whole frames that pass their checksum and carry the offsets base,
// base+1, ...; everything after (a torn write, garbage, a frame left from before a truncation) is cut
// from the store, durably, before the log takes a write. The cost is one read of the active segment.
func (l *Log) recoverActive(s *segment) error {
	capacity := l.opts.MaxSegmentRecords
	for {
		if err := s.openActive(l.opts.FS, capacity, l.opts.MaxSegmentBytes); err != nil {
			return err
		}
		fi, err := s.store.Stat()
		if err != nil {
			return err
		}
		storeSize := uint64(fi.Size())
		if storeSize > math.MaxUint32 {
			return corruptf("segment %d: store file is %d bytes, more than a segment can address", s.base, storeSize)
		}
		data := s.storeMap[:storeSize]
		var count uint64
		var pos uint64
		for pos < storeSize {
			h, _, err := decodeFrame(data[pos:], math.MaxUint32)
			if err != nil || h.offset != s.base+count {
				break
			}
			if count == s.capacity() {
				break
			}
			putIndexEntry(s.indexMap[count*indexEntrySize:], indexEntry{position: uint32(pos), length: h.length, time: h.time})
			if count == 0 {
				s.firstTime = h.time
			}
			s.lastTime = h.time
			count++
			pos += frameHeaderSize + uint64(h.length)
		}
		if count == s.capacity() && pos < storeSize {
			// The segment was written with a larger MaxSegmentRecords: map a larger index and go again.
			if err := s.closeFiles(); err != nil {
				return err
			}
			capacity *= 2
			continue
		}
		s.count, s.size = count, uint32(pos)
		if pos < storeSize {
			l.opts.Logger.Warn("storelog: cutting torn or corrupt tail of the active segment",
				slog.Uint64("segment", s.base), slog.Uint64("records", count),
				slog.Uint64("kept_bytes", pos), slog.Uint64("cut_bytes", storeSize-pos))
			if err := s.store.Truncate(int64(pos)); err != nil {
				return fmt.Errorf("storelog: cut torn tail of segment %d: %w", s.base, err)
			}
			if err := s.store.Sync(); err != nil {
				return fmt.Errorf("storelog: cut torn tail of segment %d: %w", s.base, err)
			}
		}
		return nil
	}
}

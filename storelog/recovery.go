package storelog

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"strings"
)

// openActiveClean opens the active segment after a clean close, trusting the count and size the meta
// file recorded. It reports false, with the files closed again, if the files disagree with the meta
// file, in which case the caller scans.
func (l *Log) openActiveClean(s *segment, m meta) (bool, error) {
	if err := s.openActive(l.opts.FS, l.opts.MaxSegmentRecords, l.opts.MaxSegmentBytes); err != nil {
		return false, err
	}
	ok := s.allocated >= int64(m.storeSize) && m.storeSize >= storeHeaderSize && m.activeCount <= s.capacity()
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
		s.firstKey.Store(first.key)
	}
	if ok && s.count == 0 {
		ok = s.size == storeHeaderSize
	}
	if !ok {
		l.opts.Logger.Warn("storelog: clean-close record does not match the active segment; scanning it",
			slog.Uint64("segment", s.base))
		s.count, s.size = 0, 0
		return false, s.closeFiles()
	}
	s.synced = s.size
	return true, nil
}

// recoverActive rebuilds the active segment's index from its store after an unclean shutdown. It
// keeps the longest prefix of whole frames that pass their checksum and carry the offsets base,
// base+1, ... . What follows is cut only if it can have been unsynced at the crash (the rule and its
// proof are in doc.go): a bad frame below floor (how far meta says the store was fsynced), or one
// that a later intact frame says was already fsynced when it was written, is corruption, and Open
// fails with ErrCorrupt and cuts nothing. A cut is durable before the log takes a write, and the
// kept records are fsynced, so they become the floor of the next recovery. The cost is one read of
// the active segment (and, only when there is something to cut, one more of what follows the cut).
func (l *Log) recoverActive(s *segment, floor uint32) error {
	capacity := l.opts.MaxSegmentRecords
	for {
		if err := s.openActive(l.opts.FS, capacity, l.opts.MaxSegmentBytes); err != nil {
			return err
		}
		storeSize := uint64(s.allocated)
		if storeSize > math.MaxUint32 {
			return corruptf("%s: store file is %d bytes, more than a segment can address", s.storePath, storeSize)
		}
		data := s.storeMap[:storeSize]
		var count, lastKey uint64
		pos := uint64(storeHeaderSize)
		var badErr error
		for pos < storeSize {
			h, _, err := decodeFrame(data[pos:], s.seed, math.MaxUint32)
			if err == nil && h.offset != s.base+count {
				err = corruptf("frame holds offset %d", h.offset)
			}
			if err == nil && uint64(h.synced) > pos {
				err = corruptf("frame says the store was synced to %d, past its own position", h.synced)
			}
			if err == nil && count > 0 && h.key < lastKey {
				err = corruptf("frame key %d is below the key %d of the record before it", h.key, lastKey)
			}
			if err != nil {
				badErr = err
				break
			}
			if count == s.capacity() {
				break
			}
			putIndexEntry(s.indexMap[count*indexEntrySize:], indexEntry{position: uint32(pos), length: h.length, time: h.time, key: h.key})
			if count == 0 {
				s.firstTime = h.time
				s.firstKey.Store(h.key)
			}
			s.lastTime, lastKey = h.time, h.key
			count++
			pos += frameHeaderSize + uint64(h.length)
		}
		if count == s.capacity() && pos < storeSize && badErr == nil {
			// The segment was written with a larger MaxSegmentRecords: map a larger index and go again.
			if err := s.closeFiles(); err != nil {
				return err
			}
			capacity *= 2
			continue
		}
		if pos < storeSize && !allZero(data[pos:]) {
			if err := s.checkTornTail(data, pos, s.base+count, floor, badErr); err != nil {
				return err
			}
		} else if pos < uint64(floor) {
			return corruptf("%s: the store ends at position %d, before offset %d, but it was fsynced up to %d; nothing was cut",
				s.storePath, pos, s.base+count, floor)
		}
		s.count, s.size = count, uint32(pos)
		// Zeros past the last record were written ahead of need and stay; anything else is cut, so
		// that no frame of this file is ever found past a later record.
		if pos < storeSize && !allZero(data[pos:]) {
			l.opts.Logger.Warn("storelog: cutting the unsynced tail of the active segment",
				slog.String("file", s.storePath), slog.Uint64("records", count),
				slog.Uint64("kept_bytes", pos), slog.Uint64("cut_bytes", storeSize-pos))
			if err := s.store.Truncate(int64(pos)); err != nil {
				return fmt.Errorf("storelog: cut torn tail of %s: %w", s.storePath, err)
			}
			s.allocated = int64(pos)
		}
		// Also after a process crash: the kept records may be only in the page cache.
		if err := s.store.Sync(); err != nil {
			return fmt.Errorf("storelog: sync recovered %s: %w", s.storePath, err)
		}
		s.synced = s.size
		return nil
	}
}

// checkTornTail decides whether the bytes from pos on, where the frame of offset want fails its
// checks (badErr), can be a write that was never synced. They cannot if pos is below floor, or if
// an intact frame of this segment further on records a synced position past pos: that frame was
// written after an fsync that covered pos. Then the segment is corrupt.
func (s *segment) checkTornTail(data []byte, pos, want uint64, floor uint32, badErr error) error {
	fail := func(why string) error {
		reason := "the frame does not fit the store"
		if badErr != nil {
			reason = strings.TrimPrefix(badErr.Error(), ErrCorrupt.Error()+": ")
		}
		return corruptf("%s: record at offset %d, position %d: %s; %s, so it is damage, not a torn write, and nothing was cut",
			s.storePath, want, pos, reason, why)
	}
	if pos < uint64(floor) {
		return fail(fmt.Sprintf("the store was fsynced up to position %d", floor))
	}
	// Look for a later intact frame at every byte: the damaged frame's length cannot be trusted. The
	// cheap checks (a later offset, a synced position past pos and before the frame) come first; the
	// checksum, seeded with this segment's id, settles it.
	maxRecords := uint64(len(data)) / frameHeaderSize
	for q := pos + 1; q+frameHeaderSize <= uint64(len(data)); q++ {
		offset := binary.LittleEndian.Uint64(data[q+frameOffsetAt:])
		if offset < want || offset-want > maxRecords {
			continue
		}
		synced := uint64(binary.LittleEndian.Uint32(data[q+frameSyncedAt:]))
		if synced <= pos || synced > q {
			continue
		}
		h, _, err := decodeFrame(data[q:], s.seed, math.MaxUint32)
		if err != nil {
			continue
		}
		return fail(fmt.Sprintf("the intact record at offset %d, position %d, was written after an fsync up to position %d",
			h.offset, q, h.synced))
	}
	return nil
}

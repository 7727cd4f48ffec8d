package storelog

// SegmentInfo describes one segment of a log, for an owner that chooses its own retention cut (a
// Raft log's, which must keep what its last snapshot does not cover) instead of Options.Retention.
type SegmentInfo struct {
	// Base is the offset of the segment's first record; records below LowestOffset count.
	Base uint64
	// Next is the offset after the segment's last record: Truncate(Next) deletes the segment and
	// every one before it.
	Next uint64
	// Bytes is the size of the segment's store file (frame headers included).
	Bytes int64
	// NewestTime is the time of the segment's last record (Unix nanoseconds), 0 for an empty one.
	NewestTime int64
	// Active is true for the segment that appends go to, always the last one, which Truncate never
	// deletes.
	Active bool
}

// Segments describes the log's segments, oldest first. It may open a sealed segment to read the
// time of its last record.
func (l *Log) Segments() ([]SegmentInfo, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writableLocked(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	infos := make([]SegmentInfo, len(l.segments))
	for i, s := range l.segments {
		info := SegmentInfo{Base: s.base, Next: s.base + s.count, Active: s == l.active}
		switch {
		case info.Active:
			info.Bytes = int64(s.size)
			if s.count > 0 {
				info.NewestTime = s.lastTime
			}
		default:
			info.Bytes = s.sealedSize()
			if s.count > 0 {
				t, err := l.newestTimeLocked(s)
				if err != nil {
					return nil, err
				}
				info.NewestTime = t
			}
		}
		infos[i] = info
	}
	return infos, nil
}

package raftlog

import (
	"fmt"

	"github.com/dislog/dislog/storelog"
)

// Segments describes the log's segment files, oldest first, in raft indexes (raft index i is
// storelog offset i): an owner that keeps the log itself (raft.Config.TrailingLogs set so that raft
// never compacts it) chooses a head cut on a segment boundary from them and makes it with
// DeleteRange(FirstIndex, Next-1), which deletes whole files.
func (s *LogStore) Segments() ([]storelog.SegmentInfo, error) {
	segs, err := s.log.Segments()
	if err != nil {
		return nil, fmt.Errorf("raftlog: segments: %w", err)
	}
	return segs, nil
}

// Stats returns the log's first and next index (storelog's offsets), segment count and bytes.
func (s *LogStore) Stats() storelog.Stats { return s.log.Stats() }

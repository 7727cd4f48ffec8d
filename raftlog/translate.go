package raftlog

import (
	"errors"
	"fmt"

	"github.com/dislog/dislog/storelog"
)

// The offset translation (Options.Records): partition offsets are dense, 0, 1, 2, ..., while raft
// indexes also count raft's own entries. Each entry is stored with its base offset as its storelog
// key, and bases never decrease, so the entry holding offset o is the last one whose base is at
// most o: entries without records that share its base come before it. That is one storelog
// SearchKey, a bounded number of index reads.

// EntryOf returns the index of the entry that holds the record at partition offset, and that entry's
// base offset: the record is number offset-base among the entry's records. It fails with
// ErrNoTranslation without Options.Records, and with ErrOffsetNotFound for an offset below
// FirstOffset (deleted by compaction, or before a snapshot this store was reset to) or at or past
// NextOffset. Entries past raft's commit index can still be replaced by a tail DeleteRange: ask
// only for offsets below the committed ones.
func (s *LogStore) EntryOf(offset uint64) (index, base uint64, err error) {
	if s.records == nil {
		return 0, 0, ErrNoTranslation
	}
	first, next := s.firstBase.Load(), s.nextBase.Load()
	notFound := func() error {
		return fmt.Errorf("%w: offset %d, the store holds [%d, %d)", ErrOffsetNotFound, offset, s.firstBase.Load(), s.nextBase.Load())
	}
	if offset < first || offset >= next || s.log.LowestOffset() == s.log.NextOffset() {
		return 0, 0, notFound()
	}
	index, err = s.log.SearchKey(offset)
	if err == nil {
		base, err = s.log.KeyAt(index)
	}
	switch {
	case errors.Is(err, storelog.ErrOffsetOutOfRange):
		// A DeleteRange between the bounds check and the search.
		return 0, 0, notFound()
	case err != nil:
		return 0, 0, fmt.Errorf("raftlog: entry of offset %d: %w", offset, err)
	}
	return index, base, nil
}

// FirstOffset is the base offset of the first entry the store holds: records below it are gone. It
// is 0 on an empty store and without Options.Records.
func (s *LogStore) FirstOffset() uint64 { return s.firstBase.Load() }

// NextOffset is the base offset the next stored entry gets: the offset after the last record
// stored, which raft may not have committed yet (bound reads by the commit index). It is 0 on an
// empty store, whose next StoreLogs takes its base from Options.BaseAt, and without
// Options.Records. The store holds the records [FirstOffset, NextOffset).
func (s *LogStore) NextOffset() uint64 { return s.nextBase.Load() }

// Package raftlog stores hashicorp/raft's log and stable state on Dislog's own engines, as a drop-in
// replacement for raft-boltdb or raft-wal.
//
// LogStore is a raft.LogStore on a storelog.Log: raft index i is storelog offset i, so a lookup is an
// index-file read and a memory-mapped frame; StoreLogs is one write and one fsync per batch. It also
// implements raft.MonotonicLogStore (it never holds a gap) and raft.CommitTrackingLogStore (every
// entry carries the commit index raft staged before storing it, so raft.Config.RestoreCommittedLogs
// works). StableStore is a raft.StableStore on pebble with synced writes. Store holds both in one
// directory:
//
//	store, err := raftlog.Open(dir, raftlog.Options{})
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	r, err := raft.NewRaft(conf, fsm, store, store, snapshots, transport)
//
// After a crash the log holds a gapless run of whole entries that includes every entry a returned
// StoreLogs stored; a crash during StoreLogs may leave a prefix of that batch, which raft never
// counted as stored.
//
// # Offset translation
//
// A partition's raft log is its record log. With Options.Records, which counts the records an entry
// carries, LogStore stores each entry with its base offset (the partition offset of its first record;
// for an entry without records, that of the next record to come) as the storelog record's key, and
// EntryOf finds the entry holding a partition offset with storelog's SearchKey. Bases are computed
// where entries are stored, from the entry before; a store emptied by DeleteRange asks
// Options.BaseAt. The entry encoding below does not carry the base: it lives in storelog's frame and
// index.
//
// # Many groups
//
// StableStore.Group gives each of many raft groups (a server's partitions) its own raft.StableStore
// in one pebble database, under a prefix of its own; DeleteGroup removes one.
//
// # Entry format
//
// One raft.Log is the value of one storelog record (storelog's package doc draws the frame, segment
// and index files around it). The format is part of the on-disk contract: a change needs a new
// version byte and a decoder for the old one, and golden files under testdata/golden pin the bytes.
//
// The storelog frame around the value already carries a CRC-32C and the record's offset, which is the
// raft index; the index is repeated inside the value so that a value can be checked against the
// offset it was read from. Integers are Go varints (encoding/binary): uvarint unsigned, varint zigzag.
//
//	+---------+---------+---------+---------+---------+----------+------+----------+------------+------------+-------------+
//	| version | index   | term    | type    | commit  | data len | data | ext len  | extensions | appended s | appended ns |
//	| 1 byte  | uvarint | uvarint | uvarint | uvarint | uvarint  |      | uvarint  |            | varint     | uvarint     |
//	+---------+---------+---------+---------+---------+----------+------+----------+------------+------------+-------------+
//
// version is 1. type is raft.LogType. commit is the commit index raft staged (StageCommitIndex)
// before the StoreLogs call that wrote the entry, capped at that batch's last index: every entry of a
// batch carries it, so the last entry of the log, whatever truncation left it last, tells the commit
// index persisted with it. appended s and appended ns are raft.Log.AppendedAt as Unix seconds and the
// nanoseconds within the second, which covers every time.Time; the zero time.Time is stored as its
// own Unix seconds (-62135596800) and 0, and decodes to the zero time.Time. A value with bytes after
// appended ns, an index other than its record's offset, a type above 255 or nanoseconds of a second or
// more is corrupt (ErrCorrupt).
//
// An entry's bytes beyond its data and extensions are at most 1 + 7*binary.MaxVarintLen64; the
// largest entry a store takes follows from storelog.RecordCapacity of its segment size.
package raftlog

// Package storelog is Dislog's log engine: an append-only sequence of records, each with the next
// offset, kept in segment files on local disk.
//
// Open a log on a directory, append with Append or AppendBatch, read with Read, Scan or
// OffsetForTime, follow the tail with Wait, and cut it with Truncate (head), TruncateAfter (tail)
// and Reset. One writer and many concurrent readers; every method is safe for concurrent use.
//
// # Keys
//
// Every record carries a uint64 key beside its offset and time, in its frame and its index entry.
// Keys never decrease along a log, so SearchKey finds the last record whose key is at most k with a
// binary search: over the segments' first keys (kept in memory), then over one segment's mapped
// index. AppendBatchKeyed gives each record its key, and refuses a batch that would make keys
// decrease (ErrKeyOrder); a plain append (Append, AppendBatch, AppendBatchAt) keys each record with
// its offset, or with the last record's key if that is larger. A raft log uses the key for the
// offset translation of a partition: a raft entry's key is the partition offset of its first record
// (package raftlog). Keys of records below LowestOffset still count for the order until Reset, or a
// TruncateAfter below them, removes them; an empty log after Reset takes any key.
//
//	log, err := storelog.Open(dir, storelog.Options{})
//	first, err := log.AppendBatch([][]byte{a, b, c})
//	rec, err := log.Read(first + 1)
//
// # Durability
//
// With the default SyncEveryBatch policy an append returns once its records are fsynced, and
// concurrent appends share fsyncs (group commit). A failed write or fsync is sticky: the log takes
// no more writes (ErrFailed) and must be reopened. Records become readable only once durable, so a
// reader never sees a record a crash could take back. SyncInterval and SyncNever trade that for
// speed, for logs whose durability lives elsewhere (a state machine fed from a Raft log).
//
// # Recovery
//
// Open costs a directory listing, and per segment a stat and a read of its first index entry (for
// SearchKey): sealed segments were fsynced when sealed and are trusted; they are mapped on first read. After a clean Close the active segment is trusted too.
// After a crash the active segment is read once: the longest prefix of frames that pass their
// checksums and carry the expected offsets is kept. What follows is cut only if it can have been
// unsynced at the crash; otherwise Open fails with ErrCorrupt, naming the store file, the position
// and the offset of the bad frame, and cuts nothing. Reads check every record's checksum and return
// ErrCorrupt, never damaged data.
//
// The torn-tail rule. Let p be the position of the first frame that fails its checks (or the end of
// the records, if bytes other than zeros follow them). The bytes from p on are a torn write, and are
// cut, unless
//   - p is below the floor the meta file records for the active segment (how far its store was known
//     to be fsynced when the meta file was last written: by Open, by Truncate, by TruncateAfter, or
//     by Close, which records the whole store), or
//   - some intact frame of this segment past p records a synced position greater than p.
//
// Either makes it corruption. Every frame records synced: how far the store was covered by fsyncs
// that had completed when the frame was written.
//
// Why nothing unsynced is called corruption: if the bytes at p were not covered by a completed fsync
// at the crash, no fsync covering p had completed before any frame was written either, so every
// frame records synced <= p; and the floor is only ever set to a position already fsynced.
//
// Why nothing synced is cut, with one limit: if an fsync covering p completed and any frame was
// written after it, that frame records synced > p; if the frame is intact on disk, Open finds it
// (it searches every position past p, since a damaged length cannot be trusted) and fails. Frames
// are checked with a checksum seeded by the segment's id, so no other file's bytes can stand in for
// one. What is left is the last fsync before a crash when nothing after it reached the disk: damage
// to those bytes (the records of the last acknowledged batch or batches) cannot be told from a write
// that was never synced, so it is cut like one. It takes both a crash and media damage to exactly
// those bytes; a clean Close, and Open, Truncate and TruncateAfter, which write the meta file, close
// the window up to their point.
//
// Under SyncInterval and SyncNever the same rule holds with "synced" meaning what the last fsync
// (Sync, an interval tick, a roll) covered: what is newer may be cut after a crash, as those policies
// promise.
//
// A cut is made durable (truncate, fsync) before the log takes a write, so no frame of the old tail
// can later follow a new record at the same offsets; the records kept are fsynced too, since after a
// process crash they may be only in the page cache.
//
// # Preallocation
//
// An fdatasync that also commits a new file size costs a journal commit on top of the data write, and
// one that finds other dirty pages of the file writes them too. Unless the policy is SyncNever, a
// background goroutine keeps the blocks appends write next allocated, written and fsynced:
//   - Once the active segment is half full, it prepares the next segment's store file whole: zeros to
//     MaxSegmentBytes, written under the name storelog.prepared.tmp, fsynced, renamed to
//     storelog.prepared, directory fsynced. The roll adopts it: it writes the new segment's header
//     (base, a new random segment id) and fsyncs it, then renames the file to the segment's name and
//     fsyncs the directory before a record goes in. A segment that starts from a prepared file never
//     has zeros written in it while appends fsync it.
//   - In a segment that did not start from a prepared file (the first one, one made by Open,
//     TruncateAfter or Reset, or a roll that came before the prepared file was ready) it writes zeros
//     about 1 MiB ahead of the last record, a piece of 128 KiB at a time, each pushed to the disk
//     (sync_file_range) before the next, so that an append's fdatasync finds few of them dirty.
//
// Seal cuts the zeros off; Close and recovery keep them (zeros past the last record are not a torn
// write). The prepared file's zeros cannot read as records: its header is fsynced before it takes the
// segment's name, and the segment id in that header seeds every frame's checksum. Open keeps a
// storelog.prepared of MaxSegmentBytes for the next roll (it has its name only once fsynced) and
// removes one of another size, and any storelog.prepared.tmp. A log that preallocates uses up to one
// segment more of disk than its segments hold. Files of segments deleted by retention and head
// truncation are not recycled: their unlink is outside the writer's locks already, and a prepared
// file costs one background write of a segment's bytes.
//
// # On-disk format
//
// A log directory holds one meta file and, per segment, a store file and an index file named after the
// segment's base offset (its first record), zero-padded to 20 digits so that names sort:
//
//	storelog.meta
//	storelog.prepared   (the next segment's store file, zeros; see Preallocation)
//	00000000000000000000.store   00000000000000000000.index
//	00000000000000065536.store   00000000000000065536.index
//
// Store file: a header, then frames back to back, one per record, then possibly zeros written ahead.
// All integers little-endian.
//
//	store header (32 bytes):
//	0        4         8                 16                24         28
//	+--------+---------+-----------------+-----------------+----------+--------+
//	| "DSLS" | version | base            | segment id      | reserved | crc    |
//	| [4]    | uint32  | uint64          | uint64          | uint32 0 | uint32 |
//	+--------+---------+-----------------+-----------------+----------+--------+
//
//	frame (36 bytes + value):
//	0         4         8                 16                24                32         36
//	+---------+---------+-----------------+-----------------+-----------------+----------+--------------+
//	| length  | crc     | offset          | time            | key             | synced   | value        |
//	| uint32  | uint32  | uint64          | int64 (unix ns) | uint64          | uint32   | length bytes |
//	+---------+---------+-----------------+-----------------+-----------------+----------+--------------+
//
// The header's crc is CRC-32C of its bytes [0, 28). The segment id is drawn at random when the file is
// made. A frame's length is its value's length; synced is how far the store was fsynced when the
// frame was written (the torn-tail rule above); crc is CRC-32C (Castagnoli) of the segment id (8
// bytes) followed by the frame's length, offset, time, key, synced and value bytes, that is the whole frame
// but the crc field itself. The offset makes a frame self-describing within its segment, and the id in
// the checksum makes bytes of any other file (another segment, a file this one replaced, a recycled
// or preallocated file) fail as frames of this one.
//
// Index file: one 24-byte entry per record, entry i describing offset base+i. It is memory-mapped.
//
//	0          4          8                 16                24
//	+----------+----------+-----------------+-----------------+
//	| position | length   | time            | key             |
//	| uint32   | uint32   | int64 (unix ns) | uint64          |
//	+----------+----------+-----------------+-----------------+
//
// position is where the record's frame starts in the store file, length its value's length, time and
// key copies of the frame's, so that a lookup by time or by key needs no store reads. A sealed
// segment's index is exactly 24 bytes per record and was fsynced when sealed, so it is trusted; Open
// reads its first entry's key. The active segment's index
// is preallocated and written through the mapping without fsync: after a crash it is rebuilt from the
// store, whose frames carry their own checksums.
//
// Meta file (written whole to a temporary file, fsynced, renamed over the old one, directory fsynced):
//
//	0        4         8               16       20           24            32            40      44
//	+--------+---------+---------------+--------+------------+-------------+-------------+-------+
//	| "DSLG" | version | low watermark | flags  | store size | active base | active count| crc   |
//	| [4]    | uint32  | uint64        | uint32 | uint32     | uint64      | uint64      | uint32|
//	+--------+---------+---------------+--------+------------+-------------+-------------+-------+
//
// low watermark is the lowest offset the log still holds (head truncation may fall inside a segment).
// store size is the floor of the segment at active base: how far its store is known to be fsynced.
// flags bit 0 (clean) says the log was closed cleanly with an active segment of active base, active
// count records and store size bytes: only then is the active segment opened without a scan. Open
// clears the flag (durably) before the log takes a write. crc is CRC-32C of bytes [0, 40).
//
// version is 3 in the meta file and in every store header. Open refuses any other version with
// ErrUnsupportedVersion, naming it. Version 3 added the key to frames and index entries; there is
// no reader or migration for versions 1 and 2 (16-byte index entries, 28-byte frame headers without
// a key), which no release wrote: a log of those versions must be written again.
package storelog

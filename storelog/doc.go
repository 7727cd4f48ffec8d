// Package storelog is Dislog's log engine: an append-only sequence of records, each with the next
// offset, kept in segment files on local disk.
//
// Open a log on a directory, append with Append or AppendBatch, read with Read, Scan or
// OffsetForTime, follow the tail with Wait, and cut it with Truncate (head), TruncateAfter (tail)
// and Reset. One writer and many concurrent readers; every method is safe for concurrent use.
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
// Open costs a directory listing and a stat per segment: sealed segments were fsynced when sealed and
// are trusted; they are opened on first read. After a clean Close the active segment is trusted too.
// After a crash the active segment is read once: the longest prefix of frames that pass their
// checksums and carry the expected offsets is kept, and the rest (a torn write, garbage, zeros) is cut.
// Reads check every record's checksum and return ErrCorrupt, never damaged data.
//
// # On-disk format
//
// A log directory holds one meta file and, per segment, a store file and an index file named after the
// segment's base offset (its first record), zero-padded to 20 digits so that names sort:
//
//	storelog.meta
//	00000000000000000000.store   00000000000000000000.index
//	00000000000000065536.store   00000000000000065536.index
//
// Store file: frames, back to back, one per record. All integers little-endian.
//
//	0         4         8                 16                24
//	+---------+---------+-----------------+-----------------+----------------+
//	| length  | crc     | offset          | time            | value          |
//	| uint32  | uint32  | uint64          | int64 (unix ns) | length bytes   |
//	+---------+---------+-----------------+-----------------+----------------+
//
// length is the value's length. crc is CRC-32C (Castagnoli) over the length, offset, time and value
// bytes, that is the whole frame but the crc field itself. The offset makes a frame self-describing: a
// frame read from the wrong place, or left over from an earlier incarnation of the file, does not
// pass for the record that belongs there.
//
// Index file: one 16-byte entry per record, entry i describing offset base+i. It is memory-mapped.
//
//	0          4          8                 16
//	+----------+----------+-----------------+
//	| position | length   | time            |
//	| uint32   | uint32   | int64 (unix ns) |
//	+----------+----------+-----------------+
//
// position is where the record's frame starts in the store file, length its value's length, time a
// copy of the frame's time so that a lookup by time needs no store reads. A sealed segment's index is
// exactly 16 bytes per record and was fsynced when sealed, so it is trusted. The active segment's index
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
// flags bit 0 (clean) says the log was closed cleanly with an active segment of active base, active
// count records and store size bytes: only then is the active segment opened without a scan. Open
// clears the flag (durably) before the log takes a write. crc is CRC-32C of bytes [0, 40).
package storelog

// Package partition runs one replica of a partition of a topic: a hashicorp/raft group of its own
// whose Raft log is the partition's record log (docs/ARCHITECTURE.md, "Partitions"). Each record is
// written once per server, in that log; consumers read it through raftlog's offset translation,
// which numbers the records 0, 1, 2, … and hides Raft's own entries (configuration changes, a new
// leader's no-op, barriers).
//
// A server opens one Replica per partition replica it holds, over the group's transport:
//
//	r, err := partition.Open(partition.Config{Topic: "t", Partition: 0, Dir: dir, LocalID: id, Transport: tr})
//	err = r.Bootstrap(servers) // a new partition: the same servers on every replica
//	res, err := r.Produce(ctx, partition.Batch{ProducerID: pid, Sequence: seq, Records: records})
//	recs, err := r.ReadBatch(res.BaseOffset, 100, 1<<20)
//
// # One entry, one batch
//
// Each raft.LogCommand entry of the group holds one batch (the format is at the top of batch.go):
// the producer, its sequence number, the leader's time and the records, each opaque bytes (the
// server stores codec records). raftlog stores each entry with its base offset, the offset of its
// first record, counting records with Records; finding offset o is a binary search of the log's
// index for the last entry whose base is at most o, then one read of that entry.
//
// # Idempotent producers
//
// A duplicate that reached the log would be read by consumers, so the leader decides before it
// proposes, as Kafka's partition leader does: per producer it knows the last batch, committed (the
// state machine's table) or proposed and not yet applied (pending); a retry of that batch gets its
// base offset (after its commit) and Duplicate, anything but the next sequence number gets
// ErrSequence, and neither is proposed. A new leader serves produces only after a Barrier in its
// term, so its table holds every committed batch; a proposal that fails makes the leader learn the
// table again the same way before the next produce. The state machine checks every applied batch
// again and counts a violation (Stats.SequenceViolations), which must stay zero.
//
// # State machine and snapshots
//
// The state machine holds what a partition needs beside its log: the applied index, the next
// offset, the time of the last batch and the producers' table. It lives in memory: on start Raft
// restores the last snapshot and applies the committed entries after it. A snapshot holds that
// state, never records (format at the top of fsm.go), so it stays small whatever the log holds.
//
// # Committed reads
//
// Reads (Read, ReadBatch, OffsetForTime, Offsets) serve [lowest, next): next is the offset after
// the last entry applied here, so even a follower never returns a record that is not committed;
// lowest is the first offset the log holds. Wait blocks until an offset is applied, woken by each
// apply. A leader's Barrier (or VerifyLeader) before a read gives read-your-writes.
//
// # Retention and catch-up
//
// Raft never compacts a partition's log by itself (TrailingLogs is the largest uint64): the log is
// the data, and ApplyRetention decides what goes, by bytes and by age, in whole segment files, never
// past the applied index nor the last snapshot (it takes one when the cut needs it). A replica that
// needs entries the leader has deleted receives the leader's snapshot instead: Raft restores the
// state machine from it, empties the replica's log, and raftlog asks the state machine (BaseAt) for
// the base offset of the first entry stored after it, the snapshot's next offset. The replica then
// serves offsets from there on, exactly like the leader's log after retention.
package partition

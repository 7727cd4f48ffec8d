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
// counted as stored. The entry format is described in codec.go.
package raftlog

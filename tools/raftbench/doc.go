// Package raftbench compares raft log stores on one disk: Dislog's raftlog, raft-wal and
// raft-boltdb. It holds only benchmarks; see docs/BENCHMARKS.md for the command and the results.
package raftbench

package raftlog

import (
	"testing"

	raftbench "github.com/hashicorp/raft/bench"
)

// The store-agnostic benchmarks of hashicorp/raft/bench, run on raftlog as on any other store.
// raftbench.DeleteRange is left out: it stores indexes with gaps between them, which a
// raft.MonotonicLogStore refuses by contract. The comparison with raft-wal and raft-boltdb is in
// tools/raftbench.

func benchStore(b *testing.B) *Store {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkFirstIndex(b *testing.B) { raftbench.FirstIndex(b, benchStore(b)) }
func BenchmarkLastIndex(b *testing.B)  { raftbench.LastIndex(b, benchStore(b)) }
func BenchmarkGetLog(b *testing.B)     { raftbench.GetLog(b, benchStore(b)) }
func BenchmarkStoreLog(b *testing.B)   { raftbench.StoreLog(b, benchStore(b)) }
func BenchmarkStoreLogs(b *testing.B)  { raftbench.StoreLogs(b, benchStore(b)) }
func BenchmarkSet(b *testing.B)        { raftbench.Set(b, benchStore(b)) }
func BenchmarkGet(b *testing.B)        { raftbench.Get(b, benchStore(b)) }
func BenchmarkSetUint64(b *testing.B)  { raftbench.SetUint64(b, benchStore(b)) }
func BenchmarkGetUint64(b *testing.B)  { raftbench.GetUint64(b, benchStore(b)) }

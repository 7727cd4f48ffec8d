package partition

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

func batchEntry(index, producer, seq uint64, records ...string) *raft.Log {
	b := Batch{ProducerID: producer, Sequence: seq}
	for _, r := range records {
		b.Records = append(b.Records, []byte(r))
	}
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: appendBatch(nil, &b, goldenTime+int64(index))}
}

func TestFSMNumbersRecordsAcrossRaftsOwnEntries(t *testing.T) {
	is := is.New(t)
	f := newFSM(slog.New(slog.DiscardHandler))
	res := f.ApplyBatch([]*raft.Log{
		{Index: 1, Type: raft.LogConfiguration},
		batchEntry(2, 0, 0, "a", "b"),
		{Index: 3, Type: raft.LogNoop},
		batchEntry(4, 9, 5, "c"),
		{Index: 5, Type: raft.LogCommand, Data: []byte{1, 0}}, // not a batch: no records
		batchEntry(6, 9, 6, "d", "e", "f"),
	})
	is.Equal(res[1].(*applyResult).base, uint64(0))
	is.Equal(res[3].(*applyResult).base, uint64(2))
	is.True(errors.Is(res[4].(*applyResult).err, ErrMalformedBatch))
	is.Equal(res[5].(*applyResult).base, uint64(3))
	is.Equal(f.next.Load(), uint64(6))
	is.Equal(f.applied.Load(), uint64(6))
	is.Equal(f.malformed.Load(), uint64(1))
	is.Equal(f.violations.Load(), uint64(0))
	p, ok := f.producer(9)
	is.True(ok)
	is.Equal(p, producer{sequence: 6, base: 3})
	is.Equal(f.lastTime(), int64(goldenTime+6))
	is.Equal(f.baseAt(7), uint64(6))
}

func TestFSMCountsSequenceViolationsButNumbersTheirRecords(t *testing.T) {
	is := is.New(t)
	f := newFSM(slog.New(slog.DiscardHandler))
	f.ApplyBatch([]*raft.Log{batchEntry(1, 4, 0, "a"), batchEntry(2, 4, 0, "a"), batchEntry(3, 4, 5, "b")})
	is.Equal(f.violations.Load(), uint64(2)) // a duplicate and a gap
	is.Equal(f.next.Load(), uint64(3))       // raftlog numbers them all: so does the FSM
	p, _ := f.producer(4)
	is.Equal(p, producer{sequence: 5, base: 2})
}

// TestSnapshotGoldenBytes pins the snapshot format.
func TestSnapshotGoldenBytes(t *testing.T) {
	is := is.New(t)
	s := fsmState{applied: 42, next: 10, lastTime: goldenTime, producers: map[uint64]producer{300: {9, 7}, 5: {0, 3}}}
	enc := appendSnapshot(nil, &s)
	// version 1 | applied 42 | next 10 | time | 2 producers | (5, 0, 3) | (300, 9, 7)
	is.Equal(hex.EncodeToString(enc), "012a0a8080d0dfbd94b9863102050003ac020907")
	got, err := decodeSnapshot(enc)
	is.NoErr(err)
	is.Equal(got, s)
}

func TestSnapshotRestoreReplacesTheState(t *testing.T) {
	is := is.New(t)
	a := newFSM(slog.New(slog.DiscardHandler))
	a.ApplyBatch([]*raft.Log{batchEntry(1, 4, 0, "a", "b"), batchEntry(2, 8, 3, "c")})
	snap, err := a.Snapshot()
	is.NoErr(err)
	sink := &memorySink{}
	is.NoErr(snap.Persist(sink))

	b := newFSM(slog.New(slog.DiscardHandler))
	b.ApplyBatch([]*raft.Log{batchEntry(1, 99, 0, "x", "y", "z", "w")})
	wake := b.applyNotify()
	is.NoErr(b.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))))
	<-wake // a restore wakes readers
	is.Equal(b.next.Load(), uint64(3))
	is.Equal(b.applied.Load(), uint64(2))
	_, ok := b.producer(99)
	is.True(!ok)
	p, _ := b.producer(8)
	is.Equal(p, producer{sequence: 3, base: 2})
}

func TestDecodeSnapshotRejectsMalformedSnapshots(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"an unknown version", []byte{2, 0, 0, 0, 0}},
		{"no producer count", []byte{1, 0, 0, 0}},
		{"more producers than bytes could hold", []byte{1, 0, 5, 0, 0xff, 0xff, 0x0f, 1, 0, 0}},
		{"producer id 0", []byte{1, 0, 5, 0, 1, 0, 0, 0}},
		{"producers out of order", []byte{1, 0, 5, 0, 2, 3, 0, 0, 2, 0, 0}},
		{"a producer listed twice", []byte{1, 0, 5, 0, 2, 3, 0, 0, 3, 0, 0}},
		{"a base past the next offset", []byte{1, 0, 5, 0, 1, 3, 0, 5}},
		{"bytes after the last producer", []byte{1, 0, 5, 0, 1, 3, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeSnapshot(tc.b)
			is.New(t).True(errors.Is(err, ErrMalformedSnapshot))
		})
	}
}

// FuzzDecodeSnapshot feeds the decoder arbitrary bytes: it must never panic, and an accepted
// snapshot must re-encode to a snapshot that decodes to the same state.
func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(appendSnapshot(nil, &fsmState{applied: 42, next: 10, lastTime: goldenTime, producers: map[uint64]producer{300: {9, 7}, 5: {0, 3}}}))
	f.Add(appendSnapshot(nil, &fsmState{}))
	f.Add([]byte{1, 0, 5, 0, 0xff, 0xff, 0x0f, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedSnapshot) {
				t.Fatalf("error %v does not wrap ErrMalformedSnapshot", err)
			}
			return
		}
		if len(s.producers)*minProducerBytes > len(b) {
			t.Fatalf("%d producers from %d bytes", len(s.producers), len(b))
		}
		again, err := decodeSnapshot(appendSnapshot(nil, &s))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again.applied != s.applied || again.next != s.next || again.lastTime != s.lastTime || len(again.producers) != len(s.producers) {
			t.Fatalf("round trip changed the state: %+v then %+v", s, again)
		}
		for id, p := range s.producers {
			if again.producers[id] != p {
				t.Fatalf("round trip changed producer %d", id)
			}
		}
	})
}

// memorySink is a raft.SnapshotSink in memory.
type memorySink struct{ bytes.Buffer }

func (*memorySink) ID() string    { return "memory" }
func (*memorySink) Cancel() error { return nil }
func (*memorySink) Close() error  { return nil }

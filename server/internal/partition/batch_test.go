package partition

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

// goldenTime is 2026-01-01T00:00:00Z in Unix nanoseconds.
const goldenTime = 1767225600000000000

// TestBatchGoldenBytes pins the batch format: these bytes are in every partition's Raft log.
func TestBatchGoldenBytes(t *testing.T) {
	is := is.New(t)
	b := Batch{ProducerID: 7, Sequence: 300, Records: [][]byte{[]byte("a"), {}}}
	enc := appendBatch(nil, &b, goldenTime)
	// version 1 | producer 7 | sequence 300 | time | 2 records | (1, "a") | (0)
	is.Equal(hex.EncodeToString(enc), "0107ac028080d0dfbd94b9863102016100")
	is.Equal(batchSize(&b, goldenTime), len(enc))
	h, err := decodeBatch(enc)
	is.NoErr(err)
	is.Equal(h.producerID, uint64(7))
	is.Equal(h.sequence, uint64(300))
	is.Equal(h.time, int64(goldenTime))
	is.Equal(h.count, uint64(2))
	it := recordIterator{b: h.records}
	is.Equal(it.next(), []byte("a"))
	is.Equal(len(it.next()), 0)
	is.Equal(len(it.b), 0)
}

func TestRecordsCountsOnlyWholeBatchesInCommandEntries(t *testing.T) {
	good := appendBatch(nil, &Batch{Records: [][]byte{[]byte("x"), []byte("y"), []byte("z")}}, 1)
	for _, tc := range []struct {
		name string
		l    raft.Log
		want uint64
	}{
		{"a batch of three records counts three", raft.Log{Type: raft.LogCommand, Data: good}, 3},
		{"a configuration entry counts none", raft.Log{Type: raft.LogConfiguration, Data: good}, 0},
		{"a no-op counts none", raft.Log{Type: raft.LogNoop}, 0},
		{"a barrier counts none", raft.Log{Type: raft.LogBarrier}, 0},
		{"a command cut short counts none", raft.Log{Type: raft.LogCommand, Data: good[:len(good)-1]}, 0},
		{"a command with a byte after its records counts none", raft.Log{Type: raft.LogCommand, Data: append(append([]byte{}, good...), 0)}, 0},
		{"an empty command counts none", raft.Log{Type: raft.LogCommand}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is.New(t).Equal(Records(&tc.l), tc.want)
		})
	}
}

func TestDecodeBatchRejectsMalformedBatches(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"an unknown version", []byte{2, 0, 0, 0, 1, 0}},
		{"a truncated producer id", []byte{1, 0x80}},
		{"no records", []byte{1, 0, 0, 0, 0}},
		{"more records than bytes could hold", []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}},
		{"a record longer than the batch", []byte{1, 0, 0, 0, 1, 5, 'a'}},
		{"fewer records than counted", []byte{1, 0, 0, 0, 2, 1, 'a'}},
		{"bytes after the last record", []byte{1, 0, 0, 0, 1, 1, 'a', 'b'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeBatch(tc.b)
			is.New(t).True(errors.Is(err, ErrMalformedBatch))
		})
	}
}

// FuzzDecodeBatch feeds the decoder arbitrary bytes: it must never panic, an accepted batch must
// re-encode to the same bytes, and Records must count exactly what the decoder accepts.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(appendBatch(nil, &Batch{ProducerID: 7, Sequence: 300, Records: [][]byte{[]byte("a"), {}}}, goldenTime))
	f.Add(appendBatch(nil, &Batch{Records: [][]byte{bytes.Repeat([]byte("r"), 200)}}, -5))
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeBatch(b)
		n := Records(&raft.Log{Type: raft.LogCommand, Data: b})
		if err != nil {
			if !errors.Is(err, ErrMalformedBatch) {
				t.Fatalf("error %v does not wrap ErrMalformedBatch", err)
			}
			if n != 0 {
				t.Fatalf("Records counts %d in a batch the decoder refuses", n)
			}
			return
		}
		if n != h.count || n == 0 {
			t.Fatalf("Records counts %d, the decoder %d", n, h.count)
		}
		batch := decoded(h)
		again := appendBatch(nil, &batch, h.time)
		// Varints have one shortest form; the decoder also takes longer ones, which re-encode shorter.
		if len(again) > len(b) || batchSize(&batch, h.time) != len(again) {
			t.Fatalf("re-encoded to %d bytes (size says %d) from %d", len(again), batchSize(&batch, h.time), len(b))
		}
		h2, err := decodeBatch(again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		batch2 := decoded(h2)
		if h2.time != h.time || batch2.ProducerID != batch.ProducerID || batch2.Sequence != batch.Sequence || len(batch2.Records) != len(batch.Records) {
			t.Fatalf("round trip changed the batch: %+v then %+v", h, h2)
		}
		for i := range batch.Records {
			if !bytes.Equal(batch.Records[i], batch2.Records[i]) {
				t.Fatalf("round trip changed record %d", i)
			}
		}
	})
}

func decoded(h batchHeader) Batch {
	b := Batch{ProducerID: h.producerID, Sequence: h.sequence}
	it := recordIterator{b: h.records}
	for range h.count {
		b.Records = append(b.Records, it.next())
	}
	return b
}

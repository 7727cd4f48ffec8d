package partition

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dislog/dislog/server/internal/wire"
	"github.com/hashicorp/raft"
)

// The batch format: the Data of every raft.LogCommand entry of a partition group. It is the
// partition's record log on disk and the replication protocol: a change needs a new version byte,
// and decodeBatch must go on reading every version written before.
//
//	+---------+-------------+----------+------------+--------------+---------------------------------+
//	| version | producer id | sequence | time       | record count | count × (length, record)        |
//	| 1 byte  | uvarint     | uvarint  | varint, ns | uvarint ≥ 1  | uvarint, length opaque bytes    |
//	+---------+-------------+----------+------------+--------------+---------------------------------+
//
// version is 1. producer id 0 is a producer without deduplication; its sequence is 0. time is when
// the leader proposed the batch, in Unix nanoseconds; it never decreases along a partition's log
// (the leader stamps at least the time of the last batch applied). Each record is opaque here (the
// server stores codec bytes). Nothing may follow the last record.
const (
	batchVersion1 = 1
	// minRecordBytes is the smallest encoded record: a zero length. It bounds the record count a
	// decoder believes before it walks the records.
	minRecordBytes = 1
)

// ErrMalformedBatch is returned for entry data that is not a batch of a version this package knows.
var ErrMalformedBatch = errors.New("partition: malformed batch")

// Batch is what a producer sends: records to append, and for an idempotent producer its id and the
// batch's sequence number.
type Batch struct {
	// ProducerID identifies an idempotent producer; 0 turns deduplication off.
	ProducerID uint64
	// Sequence numbers a producer's batches 0, 1, 2, …; a retry repeats the number.
	Sequence uint64
	// Records are the records' bytes, opaque to the partition.
	Records [][]byte
}

// batchHeader is a decoded batch without its records.
type batchHeader struct {
	producerID uint64
	sequence   uint64
	time       int64
	count      uint64
	// records is the bytes of the records, count × (length, bytes), already checked to hold
	// exactly count records.
	records []byte
}

// batchSize is the length of the encoding of b.
func batchSize(b *Batch, timeNanos int64) int {
	n := 1 + uvarintLen(b.ProducerID) + uvarintLen(b.Sequence) + varintLen(timeNanos) + uvarintLen(uint64(len(b.Records)))
	for _, r := range b.Records {
		n += uvarintLen(uint64(len(r))) + len(r)
	}
	return n
}

// appendBatch appends the encoding of b, stamped with timeNanos, to dst.
func appendBatch(dst []byte, b *Batch, timeNanos int64) []byte {
	dst = append(dst, batchVersion1)
	dst = binary.AppendUvarint(dst, b.ProducerID)
	dst = binary.AppendUvarint(dst, b.Sequence)
	dst = binary.AppendVarint(dst, timeNanos)
	dst = binary.AppendUvarint(dst, uint64(len(b.Records)))
	for _, r := range b.Records {
		dst = binary.AppendUvarint(dst, uint64(len(r)))
		dst = append(dst, r...)
	}
	return dst
}

// decodeBatch decodes a batch's header and checks that its records are whole: count records, each
// within the data, and nothing after them. It allocates nothing. Records (for raftlog's
// translation) and the FSM both count with it, so they never disagree.
func decodeBatch(data []byte) (batchHeader, error) {
	if len(data) == 0 {
		return batchHeader{}, fmt.Errorf("%w: empty", ErrMalformedBatch)
	}
	if data[0] != batchVersion1 {
		return batchHeader{}, fmt.Errorf("%w: unknown version %d", ErrMalformedBatch, data[0])
	}
	d := wire.Decoder{B: data[1:], Malformed: ErrMalformedBatch}
	h := batchHeader{
		producerID: d.Uvarint("producer id"),
		sequence:   d.Uvarint("sequence"),
		time:       d.Varint("time"),
		count:      d.Uvarint("record count"),
	}
	if d.Err != nil {
		return batchHeader{}, d.Err
	}
	if h.count == 0 {
		return batchHeader{}, fmt.Errorf("%w: no records", ErrMalformedBatch)
	}
	if h.count > uint64(len(d.B)/minRecordBytes) {
		return batchHeader{}, fmt.Errorf("%w: %d records in %d bytes", ErrMalformedBatch, h.count, len(d.B))
	}
	h.records = d.B
	for range h.count {
		d.Bytes("record")
	}
	if d.Err != nil {
		return batchHeader{}, d.Err
	}
	if len(d.B) != 0 {
		return batchHeader{}, fmt.Errorf("%w: %d bytes after the last record", ErrMalformedBatch, len(d.B))
	}
	return h, nil
}

// recordIterator walks the records of a batch that decodeBatch accepted.
type recordIterator struct{ b []byte }

// next returns the next record, aliasing the batch's bytes.
func (it *recordIterator) next() []byte {
	n, l := binary.Uvarint(it.b)
	r := it.b[l : l+int(n) : l+int(n)]
	it.b = it.b[l+int(n):]
	return r
}

// skip passes over the next record without slicing it.
func (it *recordIterator) skip() {
	n, l := binary.Uvarint(it.b)
	it.b = it.b[l+int(n):]
}

// Records is how many records a Raft log entry holds: a raft.LogCommand entry holding a batch
// holds its record count, and any other entry (configuration, no-op, barrier, or a command that is
// not a whole batch) none. It is raftlog.Options.Records for a partition's log, which numbers the
// partition's offsets with it; the FSM counts with the same decoder, so the two never disagree.
func Records(l *raft.Log) uint64 {
	if l.Type != raft.LogCommand {
		return 0
	}
	h, err := decodeBatch(l.Data)
	if err != nil {
		return 0
	}
	return h.count
}

func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

package partition

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dislog/dislog/raftlog"
	"github.com/hashicorp/raft"
)

// Record is a committed record of the partition.
type Record struct {
	Offset uint64
	// Time is when the leader proposed the record's batch, in Unix nanoseconds. Times never
	// decrease along a partition.
	Time int64
	// Data is the record's bytes, as produced.
	Data []byte
}

// Offsets returns the offsets this replica serves: [lowest, next). next is the committed next
// offset (after the last entry applied here), lowest the first offset its log holds; they are
// equal when it holds no committed record.
func (r *Replica) Offsets() (lowest, next uint64) {
	next = r.fsm.next.Load()
	// The store holds every record the state machine applied, except just after a snapshot was
	// installed: until Raft empties the store of the entries before it and new ones arrive (based
	// at the snapshot's next offset), the records below next are not here. An empty store's
	// FirstOffset is 0.
	if first, _ := r.logs.FirstIndex(); first == 0 || r.logs.NextOffset() < next {
		return next, next
	}
	return min(r.logs.FirstOffset(), next), next
}

func (r *Replica) rangeError(offset uint64) error {
	lowest, next := r.Offsets()
	return &OffsetRangeError{Offset: offset, Lowest: lowest, Next: next}
}

// Read returns the committed record at offset. An offset this replica does not serve returns an
// *OffsetRangeError (ErrOffsetOutOfRange) with the bounds it serves.
func (r *Replica) Read(offset uint64) (Record, error) {
	recs, err := r.ReadBatch(offset, 1, 0)
	if err != nil {
		return Record{}, err
	}
	return recs[0], nil
}

// ReadBatch returns committed records from offset on, at most maxRecords of them and, beyond the
// first, at most maxBytes of data (0: no byte limit). It stops at the committed next offset, so it
// may return fewer; offset itself must be served (see Read). Finding offset is a binary search of
// the log's index; each entry after it is one more read. Record data aliases a buffer of its own
// per entry read, which the caller owns.
func (r *Replica) ReadBatch(offset uint64, maxRecords, maxBytes int) ([]Record, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	lowest, next := r.Offsets()
	if offset < lowest || offset >= next {
		return nil, &OffsetRangeError{Offset: offset, Lowest: lowest, Next: next}
	}
	index, base, err := r.logs.EntryOf(offset)
	if err != nil {
		return nil, r.readError(offset, err)
	}
	maxRecords = max(maxRecords, 1)
	var recs []Record
	bytes := 0
	var entry raft.Log
	for off := offset; off < next && len(recs) < maxRecords; index++ {
		if err := r.logs.GetLog(index, &entry); err != nil {
			if len(recs) > 0 {
				break
			}
			return nil, r.readError(offset, err)
		}
		n := Records(&entry)
		if n == 0 {
			continue
		}
		if off >= base+n {
			// EntryOf's entry is the last with a base at most offset; the entries before the
			// one holding it have no records, so this cannot happen but in a damaged log.
			return nil, fmt.Errorf("partition %s: entry %d holds offsets [%d, %d), not %d", r.group(), index, base, base+n, off)
		}
		h, _ := decodeBatch(entry.Data) // Records checked it
		it := recordIterator{b: h.records}
		for range off - base {
			it.skip()
		}
		for ; off < base+n && off < next && len(recs) < maxRecords; off++ {
			data := it.next()
			if len(recs) > 0 && maxBytes > 0 && bytes+len(data) > maxBytes {
				return recs, nil
			}
			bytes += len(data)
			recs = append(recs, Record{Offset: off, Time: h.time, Data: data})
		}
		base += n
	}
	return recs, nil
}

// readError turns an error of the log store into a read's: a record deleted meanwhile (retention)
// is out of range.
func (r *Replica) readError(offset uint64, err error) error {
	if errors.Is(err, raft.ErrLogNotFound) || errors.Is(err, raftlog.ErrOffsetNotFound) {
		return r.rangeError(offset)
	}
	return fmt.Errorf("partition %s: read offset %d: %w", r.group(), offset, err)
}

// Wait blocks until the record at offset is committed and applied on this replica (offset <
// next), ctx is done, or the replica closes (ErrClosed). It never polls: each apply wakes it.
func (r *Replica) Wait(ctx context.Context, offset uint64) error {
	for {
		ch := r.fsm.applyNotify()
		if offset < r.fsm.next.Load() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-r.done:
			return ErrClosed
		}
	}
}

// OffsetForTime returns the first committed offset whose record's time is at or after t, or the
// next offset if every record is older (a reader starting there sees the next produce). It is a
// binary search over the offsets served, each step one look-up of an entry and one read of it: the
// time is in the entry's batch.
func (r *Replica) OffsetForTime(t time.Time) (uint64, error) {
	if r.closed.Load() {
		return 0, ErrClosed
	}
	want := t.UnixNano()
	lo, hi := r.Offsets()
	var entry raft.Log
	for lo < hi {
		mid := lo + (hi-lo)/2
		index, base, err := r.logs.EntryOf(mid)
		if err == nil {
			err = r.logs.GetLog(index, &entry)
		}
		if err != nil {
			return 0, r.readError(mid, err)
		}
		h, err := decodeBatch(entry.Data)
		if err != nil || entry.Type != raft.LogCommand {
			return 0, fmt.Errorf("partition %s: offset %d maps to entry %d, which holds no batch", r.group(), mid, index)
		}
		// Every record of the entry has its time: step over the whole entry.
		if h.time >= want {
			hi = max(base, lo)
		} else {
			lo = min(base+h.count, hi)
		}
	}
	return lo, nil
}

package storelog

import (
	"fmt"
	"iter"
)

// Scan returns an iterator over the records [from, to), for snapshots and catch-up. Each step reads
// one record as Read does; the iteration stops after the first error, which it yields. A to past
// NextOffset yields ErrOffsetOutOfRange when the scan gets there; use Wait to follow a growing log.
func (l *Log) Scan(from, to uint64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if from > to {
			yield(Record{}, fmt.Errorf("%w: scan from %d to %d", ErrOffsetOutOfRange, from, to))
			return
		}
		for off := from; off < to; off++ {
			rec, err := l.Read(off)
			if !yield(rec, err) || err != nil {
				return
			}
		}
	}
}

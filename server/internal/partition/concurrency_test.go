package partition

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentProducesAndFollowingReaders runs producers and readers at once (run it with
// -race): every reader, on every replica, sees each acknowledged record once, at its offset.
func TestConcurrentProducesAndFollowingReaders(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	const producers, batches, perBatch = 4, 30, 4
	total := uint64(producers * batches * perBatch)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	acked := map[string]uint64{}
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for seq := range batches {
				recs := records(fmt.Sprintf("p%d-%d", p, seq), perBatch)
				id := uint64(0)
				if p%2 == 0 {
					id = uint64(p + 1) // half idempotent, half not
				}
				res, err := leader.Produce(ctx, Batch{ProducerID: id, Sequence: uint64(seq), Records: recs})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, r := range recs {
					acked[string(r)] = res.BaseOffset + uint64(i)
				}
				mu.Unlock()
			}
		})
	}
	seen := make([][]Record, 0)
	var seenMu sync.Mutex
	var readers sync.WaitGroup
	for _, r := range c.running() {
		for range 2 {
			readers.Go(func() {
				var got []Record
				for off := uint64(0); off < total; {
					if err := r.Wait(ctx, off); err != nil {
						t.Error(err)
						return
					}
					recs, err := r.ReadBatch(off, 5, 64)
					if err != nil {
						t.Error(err)
						return
					}
					off += uint64(len(recs))
					got = append(got, recs...)
					r.Offsets()
					r.Stats()
				}
				seenMu.Lock()
				seen = append(seen, got)
				seenMu.Unlock()
			})
		}
	}
	wg.Wait()
	readers.Wait()
	if t.Failed() {
		return
	}
	for _, got := range seen {
		if uint64(len(got)) != total {
			t.Fatalf("a reader saw %d records, want %d", len(got), total)
		}
		for i, rec := range got {
			if off, ok := acked[string(rec.Data)]; !ok || off != rec.Offset || rec.Offset != uint64(i) {
				t.Fatalf("record %d: %q at offset %d, acknowledged at %d (%v)", i, rec.Data, rec.Offset, off, ok)
			}
		}
	}
}

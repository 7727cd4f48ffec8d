package storelog_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/storelog"
	"github.com/dislog/dislog/storelog/faultfs"
	"github.com/matryer/is"
)

// acked collects what appends acknowledged, from many goroutines.
type acked struct {
	mu   sync.Mutex
	vals map[uint64][]byte
}

func (a *acked) add(off uint64, v []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, dup := a.vals[off]; dup && !bytes.Equal(old, v) {
		panic("two acknowledged values for one offset")
	}
	a.vals[off] = v
}

// verifyAfterCrash asserts that every acknowledged record reads back at its offset and that every
// offset the reopened log claims to hold reads without error.
func verifyAfterCrash(t *testing.T, l *storelog.Log, a *acked) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for off, v := range a.vals {
		if off < l.LowestOffset() {
			continue
		}
		rec, err := l.Read(off)
		if err != nil || !bytes.Equal(rec.Value, v) {
			t.Fatalf("acknowledged offset %d: got %q, %v; want %q", off, rec.Value, err, v)
		}
	}
	for rec, err := range l.Scan(l.LowestOffset(), l.NextOffset()) {
		if err != nil {
			t.Fatalf("offset %d of [%d, %d) unreadable after recovery: %v", rec.Offset, l.LowestOffset(), l.NextOffset(), err)
		}
	}
}

var errDone = errors.New("writer finished its appends")

// Power loss at random moments of concurrent appends, rolls and head truncations: after every crash,
// nothing acknowledged is lost, nothing unreadable is claimed, and the log takes appends again.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	rounds := 60
	if testing.Short() {
		rounds = 15
	}
	rng := rand.New(rand.NewPCG(1, 2))
	fs := faultfs.New()
	dir := t.TempDir()
	opts := storelog.Options{FS: fs, MaxSegmentRecords: 16, MaxSegmentBytes: 4096}
	a := &acked{vals: map[uint64][]byte{}}
	for round := range rounds {
		l, err := storelog.Open(dir, opts)
		if err != nil {
			t.Fatalf("round %d: open after crash: %v", round, err)
		}
		verifyAfterCrash(t, l, a)

		var wg sync.WaitGroup
		writerErrs := make(chan error, 3)
		for w := range 3 {
			wg.Go(func() {
				for i := range 100 {
					v := []byte{byte(round), byte(w), byte(i), byte(i >> 8)}
					batch := [][]byte{v}
					if i%3 == 0 {
						batch = append(batch, append(bytes.Clone(v), 'b'))
					}
					first, err := l.AppendBatch(batch)
					if err != nil {
						writerErrs <- err // the crash, or the sticky error after it
						return
					}
					if i == 99 {
						writerErrs <- errDone
					}
					for j, v := range batch {
						a.add(first+uint64(j), v)
					}
				}
			})
		}
		// Crash after a random number of appends (each writer appends at most 100 batches a round),
		// often after a head truncation that keeps the log small. A writer that stops early, other
		// than by finishing, is a failure.
		target := l.NextOffset() + uint64(rng.IntN(120))
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			select {
			case err := <-writerErrs:
				if !errors.Is(err, errDone) {
					writerErrs <- err
					cancel()
				}
			case <-ctx.Done():
			}
		}()
		if target > 0 {
			if err := l.Wait(ctx, target-1); err != nil {
				t.Fatalf("round %d: waiting for offset %d: %v; a writer stopped with: %v", round, target-1, err, <-writerErrs)
			}
		}
		cancel()
		if rng.IntN(2) == 0 && l.NextOffset() > 200 {
			if err := l.Truncate(l.NextOffset() - 200 + uint64(rng.IntN(100))); err != nil && !errors.Is(err, storelog.ErrOffsetOutOfRange) {
				t.Fatal(err)
			}
		}
		if err := fs.Crash(rng); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		l.Close() // releases the old handles; it fails, and writes no clean-close record
	}
	l, err := storelog.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	verifyAfterCrash(t, l, a)
	if len(a.vals) < rounds {
		t.Fatalf("only %d appends acknowledged in %d rounds: the test did not exercise much", len(a.vals), rounds)
	}
}

// A failed fsync is reported, is sticky (no later append is acknowledged, even if the disk recovers),
// and reopening loses nothing that was acknowledged before it.
func TestFailedFsyncIsSticky(t *testing.T) {
	for _, op := range []faultfs.Op{faultfs.OpSync, faultfs.OpWrite} {
		t.Run("failed "+op.String(), func(t *testing.T) {
			is := is.New(t)
			fs := faultfs.New()
			dir := t.TempDir()
			l, err := storelog.Open(dir, storelog.Options{FS: fs})
			is.NoErr(err)
			appendN(t, l, 10)

			// Every store write or fsync fails while the append runs (the preallocator's too, which
			// may come first: either way the append fails).
			fs.SetFault(faultfs.Fail(op, ".store"))
			_, err = l.Append([]byte("lost"))
			fs.SetFault(nil)
			is.True(errors.Is(err, storelog.ErrFailed))
			is.True(errors.Is(err, faultfs.ErrInjected))
			is.Equal(l.NextOffset(), uint64(10)) // the failed record never became readable

			_, err = l.Append([]byte("after")) // the fault has passed, but the log stays failed
			is.True(errors.Is(err, storelog.ErrFailed))
			is.True(errors.Is(l.Sync(), storelog.ErrFailed))
			checkRecords(t, l, 0, 10) // reads of acknowledged records still work
			l.Close()

			is.NoErr(fs.Crash(rand.New(rand.NewPCG(3, 4))))
			l = openLog(t, dir, storelog.Options{FS: fs})
			// The failed record was never synced: it may or may not survive, but nothing else may.
			next := l.NextOffset()
			is.True(next == 10 || next == 11)
			if next == 11 {
				rec, err := l.Read(10)
				is.NoErr(err)
				is.Equal(string(rec.Value), "lost")
			}
			for off := range uint64(10) {
				rec, err := l.Read(off)
				is.NoErr(err)
				is.Equal(rec.Value, value(off))
			}
			off, err := l.Append(value(l.NextOffset()))
			is.NoErr(err)
			is.Equal(off+1, l.NextOffset())
		})
	}
}

// Segment creation and deletion sync the directory, so a crash cannot lose a segment file whose
// records were acknowledged.
func TestDirectorySyncedOnCreateAndDelete(t *testing.T) {
	is := is.New(t)
	fs := faultfs.New()
	l := openLog(t, t.TempDir(), storelog.Options{FS: fs, MaxSegmentRecords: 2})
	before := fs.Count(faultfs.OpSyncDir, "")
	appendN(t, l, 3) // one roll
	is.True(fs.Count(faultfs.OpSyncDir, "") > before)
	before = fs.Count(faultfs.OpSyncDir, "")
	is.NoErr(l.Truncate(2)) // deletes segment 0
	is.True(fs.Count(faultfs.OpSyncDir, "") > before)
}

// Concurrent Appends share fsyncs: far fewer fsyncs than appends, every append still durable.
func TestGroupCommitSharesFsyncs(t *testing.T) {
	fs := faultfs.New()
	dir := t.TempDir()
	l, err := storelog.Open(dir, storelog.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 100
	// A disk whose fsync takes 2 ms, so that the test does not depend on how fast this machine's
	// fsync is relative to its (race-detector-slowed) CPU.
	fs.SetFault(func(op faultfs.Op, path string) error {
		if op == faultfs.OpSync {
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	})
	before := fs.Count(faultfs.OpSync, ".store")
	var wg sync.WaitGroup
	a := &acked{vals: map[uint64][]byte{}}
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				v := []byte{byte(w), byte(i)}
				off, err := l.Append(v)
				if err != nil {
					t.Error(err)
					return
				}
				a.add(off, v)
			}
		})
	}
	wg.Wait()
	fs.SetFault(nil)
	syncs := fs.Count(faultfs.OpSync, ".store") - before
	t.Logf("%d appends, %d fsyncs", writers*each, syncs)
	if syncs*4 > writers*each {
		t.Fatalf("%d fsyncs for %d appends: group commit is not sharing fsyncs", syncs, writers*each)
	}
	if err := fs.Crash(rand.New(rand.NewPCG(5, 6))); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, dir, storelog.Options{FS: fs})
	verifyAfterCrash(t, l, a)
	if uint64(len(a.vals)) != l.NextOffset() {
		t.Fatalf("%d acknowledged, log holds %d", len(a.vals), l.NextOffset())
	}
}

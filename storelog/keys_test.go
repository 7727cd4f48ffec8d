package storelog_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/dislog/dislog/storelog"
	"github.com/dislog/dislog/storelog/faultfs"
	"github.com/matryer/is"
)

// keyedLog is a log and a model of it: the key of every offset the log holds.
type keyedLog struct {
	t    *testing.T
	l    *storelog.Log
	keys map[uint64]uint64
}

func newKeyedLog(t *testing.T, l *storelog.Log) *keyedLog {
	return &keyedLog{t: t, l: l, keys: map[uint64]uint64{}}
}

// add appends one batch with the given keys and records them in the model.
func (k *keyedLog) add(keys ...uint64) {
	k.t.Helper()
	values := make([][]byte, len(keys))
	next := k.l.NextOffset()
	for i := range values {
		values[i] = value(next + uint64(i))
	}
	first, err := k.l.AppendBatchKeyed(values, keys, 0)
	if err != nil || first != next {
		k.t.Fatalf("append keys %v: first %d, %v; want first %d", keys, first, err, next)
	}
	for i, key := range keys {
		k.keys[first+uint64(i)] = key
	}
}

// search is SearchKey by a scan of the model over [LowestOffset, NextOffset): the last offset with
// a key at most key, or false.
func (k *keyedLog) search(key uint64) (uint64, bool) {
	var found uint64
	ok := false
	for off := k.l.LowestOffset(); off < k.l.NextOffset(); off++ {
		if k.keys[off] <= key {
			found, ok = off, true
		}
	}
	return found, ok
}

// check compares every record's key with the model, through Read, ReadBatch and Scan, and
// SearchKey with the scan for every key from below the lowest to past the highest.
func (k *keyedLog) check() {
	k.t.Helper()
	low, next := k.l.LowestOffset(), k.l.NextOffset()
	for off := low; off < next; off++ {
		rec, err := k.l.Read(off)
		if err != nil || rec.Key != k.keys[off] {
			k.t.Fatalf("read %d: key %d, %v; want key %d", off, rec.Key, err, k.keys[off])
		}
		if key, err := k.l.KeyAt(off); err != nil || key != k.keys[off] {
			k.t.Fatalf("KeyAt(%d) = %d, %v; want %d", off, key, err, k.keys[off])
		}
	}
	recs, err := k.l.ReadBatch(nil, low, int(next-low), 1<<30)
	if low == next {
		recs, err = nil, nil
	}
	if err != nil || uint64(len(recs)) != next-low {
		k.t.Fatalf("read batch [%d, %d): %d records, %v", low, next, len(recs), err)
	}
	for _, rec := range recs {
		if rec.Key != k.keys[rec.Offset] {
			k.t.Fatalf("read batch: offset %d has key %d, want %d", rec.Offset, rec.Key, k.keys[rec.Offset])
		}
	}
	for rec, err := range k.l.Scan(low, next) {
		if err != nil || rec.Key != k.keys[rec.Offset] {
			k.t.Fatalf("scan: offset %d has key %d, %v; want %d", rec.Offset, rec.Key, err, k.keys[rec.Offset])
		}
	}
	top := uint64(0)
	for off := low; off < next; off++ {
		top = max(top, k.keys[off])
	}
	bottom := uint64(0)
	if low < next && k.keys[low] > 2 {
		bottom = k.keys[low] - 2
	}
	for key := bottom; key <= top+2; key++ {
		got, err := k.l.SearchKey(key)
		want, ok := k.search(key)
		if !ok {
			if !errors.Is(err, storelog.ErrOffsetOutOfRange) {
				k.t.Fatalf("SearchKey(%d) = %d, %v; want ErrOffsetOutOfRange (log [%d, %d))", key, got, err, low, next)
			}
			continue
		}
		if err != nil || got != want {
			k.t.Fatalf("SearchKey(%d) = %d, %v; want %d (log [%d, %d))", key, got, err, want, low, next)
		}
	}
	for _, off := range []uint64{low - 1, next} {
		if _, err := k.l.KeyAt(off); !errors.Is(err, storelog.ErrOffsetOutOfRange) {
			k.t.Fatalf("KeyAt(%d) outside [%d, %d): %v, want ErrOffsetOutOfRange", off, low, next, err)
		}
	}
	if _, err := k.l.SearchKey(^uint64(0)); low < next && err != nil {
		k.t.Fatalf("SearchKey(max) on a log of [%d, %d): %v", low, next, err)
	}
}

func TestKeysRoundTripAndPlainAppendsKeyByOffset(t *testing.T) {
	is := is.New(t)
	l := openLog(t, t.TempDir(), storelog.Options{MaxSegmentRecords: 4})
	k := newKeyedLog(t, l)

	// Plain appends key each record with its offset.
	appendN(t, l, 3)
	for off := range uint64(3) {
		k.keys[off] = off
	}
	// Keys ahead of the offsets, with duplicates, across segments.
	k.add(10, 10, 10)
	k.add(10, 12, 20, 20, 20, 21)
	// A plain append now repeats the last key: its offset (12) is below it.
	off, err := l.Append([]byte("plain"))
	is.NoErr(err)
	is.Equal(off, uint64(12))
	k.keys[off] = 21
	rec, err := l.Read(off)
	is.NoErr(err)
	is.Equal(rec.Key, uint64(21))
	k.check()

	first, err := l.AppendBatchAt([][]byte{value(13), value(14)}, 0)
	is.NoErr(err)
	k.keys[first], k.keys[first+1] = 21, 21
	// Offsets catch up with the keys: plain appends repeat key 21 up to offset 21, then go on by
	// offset.
	batch := make([][]byte, 10)
	first, err = l.AppendBatch(batch)
	is.NoErr(err)
	is.Equal(first, uint64(15))
	for off := first; off < first+10; off++ {
		k.keys[off] = max(off, 21)
	}
	is.Equal(k.keys[24], uint64(24))
	k.check()

	// An empty keyed batch writes nothing.
	next, err := l.AppendBatchKeyed(nil, nil, 0)
	is.NoErr(err)
	is.Equal(next, l.NextOffset())
}

// dirContents reads every file in dir.
func dirContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

// A batch whose keys decrease, or start below the last record's key, or do not match the records in
// number, is refused whole: the log, its files and its next key are unchanged.
func TestKeyOrderIsRefusedWhole(t *testing.T) {
	dir := t.TempDir()
	// SyncNever: no zeros written ahead in the background, so the files change only by appends.
	l := openLog(t, dir, storelog.Options{MaxSegmentRecords: 4, Sync: storelog.SyncNever})
	k := newKeyedLog(t, l)
	k.add(5, 6, 7)
	files := dirContents(t, dir)
	cases := []struct {
		name string
		keys []uint64
		n    int
	}{
		{"keys that decrease inside the batch", []uint64{7, 9, 8}, 3},
		{"a first key below the last record's", []uint64{6, 8}, 2},
		{"fewer keys than records", []uint64{8}, 2},
		{"more keys than records", []uint64{8, 9}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			values := make([][]byte, c.n)
			for i := range values {
				values[i] = []byte("x")
			}
			if _, err := l.AppendBatchKeyed(values, c.keys, 0); !errors.Is(err, storelog.ErrKeyOrder) {
				t.Fatalf("append keys %v: %v, want ErrKeyOrder", c.keys, err)
			}
			if next := l.NextOffset(); next != 3 {
				t.Fatalf("next offset %d after a refused batch, want 3", next)
			}
			for name, b := range dirContents(t, dir) {
				if files[name] != b {
					t.Fatalf("a refused batch changed %s", name)
				}
			}
		})
	}
	k.add(7, 8) // the last key may repeat
	k.check()
}

// Keys survive a clean close, a process crash (a directory copied while the log is open, so the
// active segment is rebuilt from its store) and a power loss (faultfs), and the order is enforced
// against the last key found on disk.
func TestKeysSurviveReopenAndCrash(t *testing.T) {
	t.Run("clean close", func(t *testing.T) {
		dir := t.TempDir()
		opts := storelog.Options{MaxSegmentRecords: 4}
		l, err := storelog.Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		k := newKeyedLog(t, l)
		for i := range uint64(9) {
			k.add(100+i*2, 100+i*2, 101+i*2)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		k.l = openLog(t, dir, opts)
		k.check()
		if _, err := k.l.AppendBatchKeyed([][]byte{nil}, []uint64{116}, 0); !errors.Is(err, storelog.ErrKeyOrder) {
			t.Fatalf("a key below the last after reopen: %v, want ErrKeyOrder", err)
		}
		k.add(117)
		k.check()
	})
	t.Run("process crash", func(t *testing.T) {
		src := t.TempDir()
		l := openLog(t, src, storelog.Options{MaxSegmentRecords: 4})
		k := newKeyedLog(t, l)
		for i := range uint64(6) {
			k.add(i*3, i*3+1)
		}
		dir := copyDir(t, src)
		k.l = openLog(t, dir, storelog.Options{MaxSegmentRecords: 4})
		k.check()
		k.add(16, 17)
		k.check()
	})
	t.Run("crash right after a roll", func(t *testing.T) {
		// The active segment is empty; the order holds against the sealed segment's last key.
		src := t.TempDir()
		l := openLog(t, src, storelog.Options{MaxSegmentRecords: 4})
		k := newKeyedLog(t, l)
		k.add(1, 2, 3, 50)
		k.add(60)
		dir := copyDir(t, src)
		for _, ext := range []string{".store", ".index"} {
			if err := os.Truncate(segFile(dir, 4, ext), 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Remove(filepath.Join(dir, "storelog.meta")); err != nil {
			t.Fatal(err)
		}
		delete(k.keys, 4)
		k.l = openLog(t, dir, storelog.Options{MaxSegmentRecords: 4})
		if next := k.l.NextOffset(); next != 4 {
			t.Fatalf("next offset %d, want 4", next)
		}
		if _, err := k.l.AppendBatchKeyed([][]byte{nil}, []uint64{49}, 0); !errors.Is(err, storelog.ErrKeyOrder) {
			t.Fatalf("a key below the sealed segment's last: %v, want ErrKeyOrder", err)
		}
		k.add(50)
		k.check()
	})
	t.Run("power loss", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		fs := faultfs.New()
		dir := t.TempDir()
		opts := storelog.Options{FS: fs, MaxSegmentRecords: 8}
		acked := map[uint64]uint64{}
		key := uint64(0)
		for round := range 20 {
			l, err := storelog.Open(dir, opts)
			if err != nil {
				t.Fatalf("round %d: open after crash: %v", round, err)
			}
			k := &keyedLog{t: t, l: l, keys: acked}
			if next := l.NextOffset(); next != uint64(len(acked)) {
				t.Fatalf("round %d: the log ends at %d after the crash, %d records were acknowledged", round, next, len(acked))
			}
			k.check()
			for range rng.IntN(10) {
				n := 1 + rng.IntN(4)
				keys := make([]uint64, n)
				for i := range keys {
					key += uint64(rng.IntN(3))
					keys[i] = key
				}
				k.add(keys...)
			}
			// Every batch was fsynced; the index, written through its mapping and never fsynced
			// while active, may come back torn or zeroed and is rebuilt from the frames' keys.
			if err := fs.Crash(rng); err != nil {
				t.Fatal(err)
			}
			l.Close()
		}
	})
}

// SearchKey across segment boundaries, after head truncation, tail truncation and Reset.
func TestSearchKeyAfterTruncations(t *testing.T) {
	is := is.New(t)
	l := openLog(t, t.TempDir(), storelog.Options{MaxSegmentRecords: 3})
	k := newKeyedLog(t, l)

	_, err := l.SearchKey(0)
	is.True(errors.Is(err, storelog.ErrOffsetOutOfRange)) // empty log

	for i := range uint64(20) {
		k.add(10+i, 10+i) // two records a key; pairs straddle segment boundaries
	}
	k.check()

	is.NoErr(l.Truncate(7)) // inside a segment: offset 7 has key 13, offset 6 (gone) has 13 too
	k.check()
	off, err := l.SearchKey(13)
	is.NoErr(err)
	is.Equal(off, uint64(7))
	_, err = l.SearchKey(12)
	is.True(errors.Is(err, storelog.ErrOffsetOutOfRange))

	is.NoErr(l.TruncateAfter(24)) // offsets [7, 24]: keys up to 22
	k.check()
	// Keys after a tail truncation are checked against the new last record.
	_, err = l.AppendBatchKeyed([][]byte{nil}, []uint64{21}, 0)
	is.True(errors.Is(err, storelog.ErrKeyOrder))
	k.add(22, 23, 40)
	k.check()

	is.NoErr(l.Reset(100))
	_, err = l.SearchKey(1 << 40)
	is.True(errors.Is(err, storelog.ErrOffsetOutOfRange))
	k.add(3, 4, 4, 4, 5) // an empty log after Reset takes any key
	k.check()

	is.NoErr(l.Truncate(l.NextOffset())) // empty, but the records stay in the files
	_, err = l.SearchKey(5)
	is.True(errors.Is(err, storelog.ErrOffsetOutOfRange))
	_, err = l.AppendBatchKeyed([][]byte{nil}, []uint64{4}, 0)
	is.True(errors.Is(err, storelog.ErrKeyOrder))
	k.add(5, 9)
	k.check()
}

// Property: on random non-decreasing key runs with duplicates and jumps, appended in random batches
// over small segments and cut by random head and tail truncations, SearchKey agrees with a linear
// scan for every key.
func TestSearchKeyMatchesAScan(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			l := openLog(t, t.TempDir(), storelog.Options{MaxSegmentRecords: uint32(1 + rng.IntN(7))})
			k := newKeyedLog(t, l)
			key := uint64(rng.IntN(5))
			for range 40 {
				n := rng.IntN(6)
				keys := make([]uint64, n)
				for i := range keys {
					switch rng.IntN(4) {
					case 0, 1: // a duplicate
					case 2:
						key++
					default:
						key += uint64(rng.IntN(20))
					}
					keys[i] = key
				}
				k.add(keys...)
				low, next := l.LowestOffset(), l.NextOffset()
				switch rng.IntN(8) {
				case 0:
					if next > low {
						if err := l.Truncate(low + uint64(rng.IntN(int(next-low)))); err != nil {
							t.Fatal(err)
						}
					}
				case 1:
					if next > low+1 {
						cut := low + uint64(rng.IntN(int(next-low)))
						if err := l.TruncateAfter(cut); err != nil {
							t.Fatal(err)
						}
						key = k.keys[cut]
					}
				}
				k.check()
			}
		})
	}
}

package storelog_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dislog/dislog/storelog"
	"github.com/dislog/dislog/storelog/faultfs"
)

// frameHeaderSize is the size of a store frame's header (doc.go).
const frameHeaderSize = 36

// hundredBytes is a 100-byte value unique to i.
func hundredBytes(i uint64) []byte {
	return bytes.Repeat(fmt.Appendf(nil, "%04d", i), 25)
}

// crashedCopy appends batches (each acknowledged, SyncEveryBatch) and returns a copy of the
// directory taken while the log is still open, as a process that exited without Close leaves it,
// with the store file's bytes and the position of every record's frame.
func crashedCopy(t *testing.T, batches [][][]byte) (dir string, store []byte, frames []int) {
	t.Helper()
	src := t.TempDir()
	l, err := storelog.Open(src, storelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pos := storeHeaderSize
	for _, b := range batches {
		if _, err := l.AppendBatch(b); err != nil {
			t.Fatal(err)
		}
		for _, v := range b {
			frames = append(frames, pos)
			pos += frameHeaderSize + len(v)
		}
	}
	dir = copyDir(t, src)
	store, err = os.ReadFile(segFile(dir, 0, ".store"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, store, frames
}

// The reproduction of issue 14, for every record and every field of its frame: ten acknowledged
// 100-byte records, the process exits without Close, one bit of one record flips. Open fails with
// ErrCorrupt naming the file, the position and the offset, and cuts nothing, for every record that a
// later record proves was fsynced. Only the last record has nothing after it to prove it: its damage
// reads as a torn write, and it alone is cut (the limit doc.go states).
func TestBitFlipAfterCrashIsCorruptionNotATornTail(t *testing.T) {
	var batches [][][]byte
	for i := range uint64(10) {
		batches = append(batches, [][]byte{hundredBytes(i)})
	}
	src, store, frames := crashedCopy(t, batches)
	fields := []struct {
		name string
		at   int
	}{{"length", 1}, {"crc", 5}, {"offset", 8}, {"time", 17}, {"key", 26}, {"synced", 33}, {"value", frameHeaderSize + 40}}
	for rec, pos := range frames {
		for _, f := range fields {
			t.Run(fmt.Sprintf("record %d, %s", rec, f.name), func(t *testing.T) {
				dir := copyDir(t, src)
				b := bytes.Clone(store)
				b[pos+f.at] ^= 0x10
				path := segFile(dir, 0, ".store")
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				l, err := storelog.Open(dir, storelog.Options{})
				if rec == len(frames)-1 {
					if err != nil {
						t.Fatalf("open with the last record damaged: %v", err)
					}
					defer l.Close()
					checkHundred(t, l, uint64(rec))
					return
				}
				if err == nil {
					l.Close()
					t.Fatalf("open succeeded with acknowledged record %d damaged", rec)
				}
				for _, want := range []string{path, fmt.Sprintf("offset %d", rec), fmt.Sprintf("position %d", pos)} {
					if !errors.Is(err, storelog.ErrCorrupt) || !strings.Contains(err.Error(), want) {
						t.Fatalf("open: %v; want ErrCorrupt naming %q", err, want)
					}
				}
				if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
					t.Fatalf("the failed open changed the store file")
				}
			})
		}
	}
}

// The same with batches of three records: damage in any record of any batch but the last is
// corruption; damage in the last batch cuts that batch whole.
func TestBitFlipInBatchesAfterCrash(t *testing.T) {
	var batches [][][]byte
	for i := range uint64(4) {
		batches = append(batches, [][]byte{hundredBytes(3 * i), hundredBytes(3*i + 1), hundredBytes(3*i + 2)})
	}
	src, store, frames := crashedCopy(t, batches)
	for rec, pos := range frames {
		t.Run(fmt.Sprintf("record %d", rec), func(t *testing.T) {
			dir := copyDir(t, src)
			b := bytes.Clone(store)
			b[pos+frameHeaderSize+7] ^= 1
			if err := os.WriteFile(segFile(dir, 0, ".store"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := storelog.Open(dir, storelog.Options{})
			if rec >= 9 {
				if err != nil {
					t.Fatalf("open with the last batch damaged: %v", err)
				}
				defer l.Close()
				checkHundred(t, l, uint64(rec))
				return
			}
			if !errors.Is(err, storelog.ErrCorrupt) {
				t.Fatalf("open with record %d of an acknowledged batch damaged: %v, want ErrCorrupt", rec, err)
			}
		})
	}
}

// A log closed cleanly records its store as fsynced to the end: after the next crash, damage
// anywhere in what it held is corruption, even in its last record.
func TestBitFlipAfterCleanCloseAndCrash(t *testing.T) {
	src := t.TempDir()
	l, err := storelog.Open(src, storelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(10) {
		if _, err := l.Append(hundredBytes(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = storelog.Open(src, storelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := copyDir(t, src) // the reopened log, crashed before it took a write
	path := segFile(dir, 0, ".store")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last := storeHeaderSize + 9*(frameHeaderSize+100)
	b[last+frameHeaderSize+50] ^= 4
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := storelog.Open(dir, storelog.Options{}); !errors.Is(err, storelog.ErrCorrupt) ||
		!strings.Contains(err.Error(), "offset 9") || !strings.Contains(err.Error(), "fsynced up to") {
		t.Fatalf("open: %v, want ErrCorrupt for offset 9 below the fsynced floor", err)
	}
}

func checkHundred(t *testing.T, l *storelog.Log, want uint64) {
	t.Helper()
	if l.NextOffset() != want {
		t.Fatalf("log holds %d records, want %d", l.NextOffset(), want)
	}
	for i := range want {
		rec, err := l.Read(i)
		if err != nil || !bytes.Equal(rec.Value, hundredBytes(i)) {
			t.Fatalf("record %d: %q, %v", i, rec.Value, err)
		}
	}
}

// Power losses that tear only unsynced bytes (dropped, torn, zeroed, pages persisted out of order,
// overwritten preallocated pages reverted) never read as corruption: Open succeeds and keeps at
// least every synced record, and what it keeps beyond them is what was written.
func TestPowerLossInUnsyncedWindowRecoversToLastSync(t *testing.T) {
	seeds := 200
	if testing.Short() {
		seeds = 60
	}
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 14))
		fs := faultfs.New()
		dir := t.TempDir()
		opts := storelog.Options{FS: fs, Sync: storelog.SyncInterval, SyncInterval: 1 << 40, MaxSegmentBytes: 64 << 10}
		l, err := storelog.Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		synced := uint64(5 + rng.IntN(40))
		var n uint64
		for n < synced {
			if _, err := l.Append(value(n)); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		for range 1 + rng.IntN(6) { // unsynced batches of 1..40 records, some spanning pages
			var batch [][]byte
			for range 1 + rng.IntN(40) {
				batch = append(batch, bytes.Repeat(value(n), 1+rng.IntN(20)))
				n++
			}
			if _, err := l.AppendBatch(batch); err != nil {
				t.Fatal(err)
			}
		}
		if err := fs.Crash(rng); err != nil {
			t.Fatal(err)
		}
		l.Close()
		l, err = storelog.Open(dir, opts)
		if err != nil {
			t.Fatalf("seed %d: open after losing only unsynced bytes: %v", seed, err)
		}
		if l.NextOffset() < synced || l.NextOffset() > n {
			t.Fatalf("seed %d: log holds %d records; %d synced, %d written", seed, l.NextOffset(), synced, n)
		}
		for off := range l.NextOffset() {
			rec, err := l.Read(off)
			if err != nil || !bytes.HasPrefix(rec.Value, value(off)) {
				t.Fatalf("seed %d: record %d: %q, %v", seed, off, rec.Value, err)
			}
		}
		l.Close()
	}
}

// Bytes a store file holds past its records that were written by another segment (a recycled file,
// or one this file replaced with the same name) never pass for records: each frame's checksum is
// seeded with its segment's id. Here a second log's frames for the same offsets, at the same
// positions, follow the first log's records after a crash.
func TestStaleFramesOfAnotherSegmentAreNotRecords(t *testing.T) {
	var batches [][][]byte
	for i := range uint64(10) {
		batches = append(batches, [][]byte{hundredBytes(i)})
	}
	_, other, frames := crashedCopy(t, batches)
	dir, store, _ := crashedCopy(t, batches[:3])
	b := append(bytes.Clone(store[:frames[3]]), other[frames[3]:frames[9]+frameHeaderSize+100]...)
	if err := os.WriteFile(segFile(dir, 0, ".store"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, dir, storelog.Options{})
	checkHundred(t, l, 3)
	after, err := os.ReadFile(segFile(dir, 0, ".store"))
	if err != nil {
		t.Fatal(err)
	}
	if len(after) < frames[3] || bytes.ContainsFunc(after[frames[3]:], func(r rune) bool { return r != 0 }) {
		t.Fatalf("the stale frames were not cut (only zeros written ahead may follow the last record)")
	}
}

// A directory written by format version 1 or 2 (before records had keys) is refused with
// ErrUnsupportedVersion, saying which, whether the meta file or a store header gives it away.
func TestOlderFormatIsRefused(t *testing.T) {
	for _, version := range []uint32{1, 2} {
		for _, file := range []string{"storelog.meta", "00000000000000000000.store"} {
			t.Run(fmt.Sprintf("version %d in %s", version, file), func(t *testing.T) {
				dir := t.TempDir()
				l := openLog(t, dir, storelog.Options{})
				appendN(t, l, 3)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(dir, file)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				binary.LittleEndian.PutUint32(b[4:], version)
				if file != "storelog.meta" {
					binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], crc32.MakeTable(crc32.Castagnoli)))
					if err := os.Remove(filepath.Join(dir, "storelog.meta")); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf("version %d", version)
				if _, err := storelog.Open(dir, storelog.Options{}); !errors.Is(err, storelog.ErrUnsupportedVersion) ||
					!strings.Contains(err.Error(), want) {
					t.Fatalf("open of a %s log: %v, want ErrUnsupportedVersion naming %s", want, err, want)
				}
			})
		}
	}
}

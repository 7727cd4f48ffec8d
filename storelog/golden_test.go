package storelog

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// update rewrites testdata/golden from today's writer: go test -run Golden -update. Only for a
// deliberate format change, which also needs a new formatVersion (see doc.go).
var update = flag.Bool("update", false, "rewrite the golden data directory under testdata/golden")

const goldenDir = "testdata/golden"

// The golden log: 14 records in segments of 4 records, the head truncated to offset 6, so that the
// directory holds three segments (base 4 and 8 sealed, base 12 active) and a non-zero low watermark,
// closed cleanly. Record i has value goldenValue(i), time goldenTime(i) and key goldenKey(i).
const (
	goldenRecords = 14
	goldenLowest  = 6
)

func goldenValue(i uint64) []byte {
	return bytes.Repeat(fmt.Appendf(nil, "record %d;", i), int(i%3)+1)
}

// goldenKey gives records 2j and 2j+1 the key 1000+3j: keys that are not offsets, with duplicates.
func goldenKey(i uint64) uint64 { return 1000 + 3*(i/2) }

// goldenTime steps by irregular amounts from 2026-01-01T00:00:00Z; records 4 and 5 share a time.
func goldenTime(i uint64) int64 {
	if i == 5 {
		i = 4
	}
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano() + int64(i*i)*int64(time.Millisecond) + int64(i)
}

// writeGolden writes the golden log into dir, with segment ids 0x1d0000000000000<n> in order of
// creation instead of random ones, so that its bytes are reproducible.
func writeGolden(t *testing.T, dir string) {
	t.Helper()
	ids := uint64(0x1d00000000000000)
	newSegmentID = func() uint64 { ids++; return ids }
	defer func() { newSegmentID = randomSegmentID }()
	// SyncNever: no zeros written ahead of the active segment's records (see Preallocation in doc.go),
	// which would make the files 1 MiB and depend on timing. The format is the same under every policy.
	l, err := Open(dir, Options{MaxSegmentRecords: 4, Sync: SyncNever,
		Clock: func() time.Time { return time.Unix(0, goldenTime(goldenRecords)) }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(goldenRecords) {
		if _, err := l.AppendBatchKeyed([][]byte{goldenValue(i)}, []uint64{goldenKey(i)}, goldenTime(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Truncate(goldenLowest); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func readDirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string][]byte)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// Today's code writes the golden data directory byte for byte: same files, same bytes. A change of
// the format (a header field, the frame layout, the checksum's seed, the index or the meta file)
// fails here. With -update it rewrites the directory instead.
func TestGoldenWrite(t *testing.T) {
	dir := t.TempDir()
	writeGolden(t, dir)
	got := readDirFiles(t, dir)
	if *update {
		if err := os.RemoveAll(goldenDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range got {
			if err := os.WriteFile(filepath.Join(goldenDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := readDirFiles(t, goldenDir)
	names := func(m map[string][]byte) []string {
		return slices.Sorted(func(yield func(string) bool) {
			for k := range m {
				if !yield(k) {
					return
				}
			}
		})
	}
	if !slices.Equal(names(got), names(want)) {
		t.Fatalf("the log writes the files %v, the golden directory holds %v (go test -run Golden -update rewrites it)", names(got), names(want))
	}
	for name, b := range want {
		if g := got[name]; !bytes.Equal(g, b) {
			at := 0
			for at < min(len(g), len(b)) && g[at] == b[at] {
				at++
			}
			t.Errorf("%s: %d bytes written, %d golden, first difference at byte %d", name, len(g), len(b), at)
		}
	}
}

// Today's code opens the golden data directory and reads every record with the value, time and
// offset it was written with; the head below the low watermark is gone.
func TestGoldenRead(t *testing.T) {
	dir := t.TempDir() // Open rewrites the meta file: work on a copy
	for name, b := range readDirFiles(t, goldenDir) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Open(dir, Options{MaxSegmentRecords: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if lo, next := l.LowestOffset(), l.NextOffset(); lo != goldenLowest || next != goldenRecords {
		t.Fatalf("the golden log holds [%d, %d), want [%d, %d)", lo, next, goldenLowest, goldenRecords)
	}
	if _, err := l.Read(goldenLowest - 1); err == nil {
		t.Fatalf("offset %d, below the low watermark, reads", goldenLowest-1)
	}
	n := uint64(goldenLowest)
	for rec, err := range l.Scan(goldenLowest, goldenRecords) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Offset != n || rec.Time != goldenTime(n) || rec.Key != goldenKey(n) || !bytes.Equal(rec.Value, goldenValue(n)) {
			t.Fatalf("record %d reads as offset %d, time %d, key %d, value %q; want time %d, key %d, value %q",
				n, rec.Offset, rec.Time, rec.Key, rec.Value, goldenTime(n), goldenKey(n), goldenValue(n))
		}
		n++
	}
	if n != goldenRecords {
		t.Fatalf("the scan stopped at %d, want %d", n, goldenRecords)
	}
	if off, err := l.OffsetForTime(goldenTime(9)); err != nil || off != 9 {
		t.Fatalf("OffsetForTime(time of 9) = %d, %v", off, err)
	}
	if off, err := l.SearchKey(goldenKey(9) + 1); err != nil || off != 9 {
		t.Fatalf("SearchKey(key of 9, plus 1) = %d, %v; want 9", off, err)
	}
}

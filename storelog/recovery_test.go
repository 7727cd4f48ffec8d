package storelog_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dislog/dislog/storelog"
	"github.com/matryer/is"
)

// storeHeaderSize is the size of the header at the start of every store file (doc.go).
const storeHeaderSize = 32

func segFile(dir string, base uint64, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, ext))
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// The last batch is torn at every byte position: reopen keeps exactly the whole records before the
// cut, never invents one, and appends go on right after them. Each cut is tried with the index as the
// clean close left it (longer than the store) and with a zero-filled index tail. With -short, only
// the cuts near frame boundaries and in frame headers.
func TestTornTailAtEveryByte(t *testing.T) {
	const before, batch = 5, 4
	src := t.TempDir()
	l, err := storelog.Open(src, storelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, before)
	cleanSize := l.Stats().Bytes // the store's records end there; zeros written ahead may follow
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = storelog.Open(src, storelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The meta file a crash during the batch would leave: written by Open, it records the store as
	// fsynced up to cleanSize, and no clean close.
	openMeta, err := os.ReadFile(filepath.Join(src, "storelog.meta"))
	if err != nil {
		t.Fatal(err)
	}
	var vals [][]byte
	for i := range batch {
		vals = append(vals, value(before+uint64(i)))
	}
	if _, err := l.AppendBatch(vals); err != nil {
		t.Fatal(err)
	}
	fullSize := l.Stats().Bytes
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	frame := (fullSize - cleanSize) / batch

	for _, zeroIndex := range []bool{false, true} {
		for cut := cleanSize; cut <= fullSize; cut++ {
			// -short keeps the cuts around each frame's boundaries and inside its header: the full
			// loop takes over a minute under -race.
			if in := (cut - cleanSize) % frame; testing.Short() && in > 1 && in != frameHeaderSize-1 && in != frameHeaderSize && in != frame-1 {
				continue
			}
			t.Run(fmt.Sprintf("cut at %d, zeroed index %v", cut, zeroIndex), func(t *testing.T) {
				dir := copyDir(t, src)
				if err := os.WriteFile(filepath.Join(dir, "storelog.meta"), openMeta, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(segFile(dir, 0, ".store"), cut); err != nil {
					t.Fatal(err)
				}
				if zeroIndex {
					idx := segFile(dir, 0, ".index")
					if err := os.Truncate(idx, 0); err != nil {
						t.Fatal(err)
					}
					if err := os.Truncate(idx, 1<<16); err != nil {
						t.Fatal(err)
					}
				}
				l := openLog(t, dir, storelog.Options{})
				whole := uint64(before + (cut-cleanSize)/frame)
				checkRecords(t, l, 0, whole)
				off, err := l.Append(value(whole))
				if err != nil || off != whole {
					t.Fatalf("append after recovery: %d, %v", off, err)
				}
				checkRecords(t, l, 0, whole+1)
			})
		}
	}
}

// An unclean shutdown leaves an index longer than the store and full of stale entries: recovery trusts
// the store's checksums, not the index.
func TestIndexLongerThanStoreAfterCrash(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	l, err := storelog.Open(dir, storelog.Options{})
	is.NoErr(err)
	appendN(t, l, 20)
	size := l.Stats().Bytes
	is.NoErr(l.Close())
	// Pretend the process died: no clean-close record, store cut back to 7 records.
	is.NoErr(os.Remove(filepath.Join(dir, "storelog.meta")))
	size7 := storeHeaderSize + (size-storeHeaderSize)/20*7
	is.NoErr(os.Truncate(segFile(dir, 0, ".store"), int64(size7)))

	l = openLog(t, dir, storelog.Options{})
	checkRecords(t, l, 0, 7)
}

// A flipped bit anywhere in a record of a trusted (sealed) segment is reported as ErrCorrupt on read,
// never returned as data, and the neighbouring records still read.
func TestBitFlipsAreDetected(t *testing.T) {
	src := t.TempDir()
	l, err := storelog.Open(src, storelog.Options{MaxSegmentRecords: 3})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 6) // segment 0 holds 0..2, sealed
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	store, err := os.ReadFile(segFile(src, 0, ".store"))
	if err != nil {
		t.Fatal(err)
	}
	frame := (len(store) - storeHeaderSize) / 3
	for bit := 0; bit < frame*8; bit++ {
		pos := storeHeaderSize + frame + bit/8 // inside record 1
		dir := copyDir(t, src)
		b := bytes.Clone(store)
		b[pos] ^= 1 << (bit % 8)
		if err := os.WriteFile(segFile(dir, 0, ".store"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := storelog.Open(dir, storelog.Options{MaxSegmentRecords: 3})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Read(1); !errors.Is(err, storelog.ErrCorrupt) {
			t.Fatalf("bit %d of record 1 flipped: read gave %v, want ErrCorrupt", bit, err)
		}
		for _, off := range []uint64{0, 2, 3} {
			if rec, err := l.Read(off); err != nil || !bytes.Equal(rec.Value, value(off)) {
				t.Fatalf("bit %d flipped in record 1: record %d: %q %v", bit, off, rec.Value, err)
			}
		}
		l.Close()
	}
}

func TestDirectoryProblems(t *testing.T) {
	build := func(t *testing.T) string {
		dir := t.TempDir()
		l, err := storelog.Open(dir, storelog.Options{MaxSegmentRecords: 4})
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 10)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Run("an index left by an interrupted deletion is removed", func(t *testing.T) {
		dir := build(t)
		os.Remove(segFile(dir, 0, ".store")) // the head segment's deletion stopped half-way
		l := openLog(t, dir, storelog.Options{MaxSegmentRecords: 4})
		if _, err := os.Stat(segFile(dir, 0, ".index")); !os.IsNotExist(err) {
			t.Fatalf("orphan index still there: %v", err)
		}
		if l.LowestOffset() != 4 {
			t.Fatalf("lowest offset %d, want 4", l.LowestOffset())
		}
		checkRecords(t, l, 4, 10)
	})
	t.Run("stray files are skipped", func(t *testing.T) {
		dir := build(t)
		for _, name := range []string{"README", "0001.store", "notanumber0000000000.index", "00000000000000000004.store.bak"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		l := openLog(t, dir, storelog.Options{MaxSegmentRecords: 4})
		checkRecords(t, l, 0, 10)
	})
	cases := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		wantErr error
		mention string
	}{
		{"a newer format version", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "storelog.meta"))
			b[4] = 9
			os.WriteFile(filepath.Join(dir, "storelog.meta"), b, 0o644)
		}, storelog.ErrUnsupportedVersion, "version 9"},
		{"a damaged meta file", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "storelog.meta"))
			b[10] ^= 1
			os.WriteFile(filepath.Join(dir, "storelog.meta"), b, 0o644)
		}, storelog.ErrCorrupt, "checksum"},
		{"a sealed segment without its index", func(t *testing.T, dir string) {
			os.Remove(segFile(dir, 4, ".index"))
		}, storelog.ErrCorrupt, "no index"},
		{"a middle segment whose store is gone", func(t *testing.T, dir string) {
			os.Remove(segFile(dir, 4, ".store"))
		}, storelog.ErrCorrupt, "next segment starts at 8"},
		{"a missing middle segment", func(t *testing.T, dir string) {
			os.Remove(segFile(dir, 4, ".store"))
			os.Remove(segFile(dir, 4, ".index"))
		}, storelog.ErrCorrupt, "next segment starts at 8"},
		{"a sealed index cut mid-entry", func(t *testing.T, dir string) {
			os.Truncate(segFile(dir, 4, ".index"), 17)
		}, storelog.ErrCorrupt, "not a whole number"},
	}
	for _, c := range cases {
		t.Run(c.name+" is a clear error", func(t *testing.T) {
			dir := build(t)
			c.damage(t, dir)
			_, err := storelog.Open(dir, storelog.Options{MaxSegmentRecords: 4})
			if !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("open: %v, want %v mentioning %q", err, c.wantErr, c.mention)
			}
		})
	}
}

package storelog_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dislog/dislog/storelog"
)

// FuzzRecover opens a log whose active segment's store and index files hold arbitrary bytes (as after
// a crash: no clean-close record). Open must not panic; it either refuses the segment with
// ErrCorrupt or ErrUnsupportedVersion (a damaged header, or damage it can prove is not a torn write),
// or keeps records that all read back without error, and then takes an append at its next offset.
func FuzzRecover(f *testing.F) {
	seed := f.TempDir()
	l, err := storelog.Open(seed, storelog.Options{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range uint64(4) {
		if _, err := l.Append(value(i)); err != nil {
			f.Fatal(err)
		}
	}
	size := l.Stats().Bytes
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	store, _ := os.ReadFile(segFile(seed, 0, ".store"))
	store = store[:size] // without the zeros written ahead, which make a slow seed
	index, _ := os.ReadFile(segFile(seed, 0, ".index"))
	f.Add(store, index[:96]) // four 24-byte entries
	f.Add(store[:len(store)-3], index[:96])
	f.Add(store, make([]byte, 192))
	f.Add([]byte{}, []byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 100), bytes.Repeat([]byte{0xff}, 72))

	f.Fuzz(func(t *testing.T, store, index []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(segFile(dir, 0, ".store"), store, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(segFile(dir, 0, ".index"), index, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := storelog.Open(dir, storelog.Options{MaxSegmentRecords: 64})
		if errors.Is(err, storelog.ErrCorrupt) || errors.Is(err, storelog.ErrUnsupportedVersion) {
			return
		}
		if err != nil {
			t.Fatalf("open of arbitrary active segment: %v", err)
		}
		defer l.Close()
		for rec, err := range l.Scan(l.LowestOffset(), l.NextOffset()) {
			if err != nil {
				t.Fatalf("recovered offset %d unreadable: %v", rec.Offset, err)
			}
		}
		next := l.NextOffset()
		off, err := l.Append([]byte("after"))
		if err != nil || off != next {
			t.Fatalf("append after recovery: %d, %v; want %d", off, err, next)
		}
		if rec, err := l.Read(off); err != nil || string(rec.Value) != "after" {
			t.Fatalf("read back %d: %q, %v", off, rec.Value, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "storelog.meta")); err != nil {
			t.Fatal(err)
		}
	})
}

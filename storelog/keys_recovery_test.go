package storelog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Recovery keeps only frames whose keys do not decrease: a checksummed frame with a key below the
// record before it is a bad frame. As the last frame it is cut like a torn write; followed by an
// intact frame that says it was fsynced, it is corruption and nothing is cut.
func TestRecoveryRefusesAKeyThatDecreases(t *testing.T) {
	const id = 0x1d
	seed := frameSeed(id)
	store := func(keys []uint64, synced []uint32) []byte {
		b := encodeStoreHeader(storeHeader{base: 0, id: id})
		for i, k := range keys {
			b = appendFrame(b, seed, uint64(i), 1, k, synced[i], []byte("value"))
		}
		return b
	}
	frame := uint32(frameHeaderSize + len("value"))
	t.Run("the last frame is cut", func(t *testing.T) {
		dir := t.TempDir()
		b := store([]uint64{5, 6, 3}, []uint32{storeHeaderSize, storeHeaderSize, storeHeaderSize})
		if err := os.WriteFile(filepath.Join(dir, "00000000000000000000.store"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if next := l.NextOffset(); next != 2 {
			t.Fatalf("next offset %d after recovery, want 2 (the frame with key 3 cut)", next)
		}
		if _, err := l.AppendBatchKeyed([][]byte{nil}, []uint64{5}, 0); !errors.Is(err, ErrKeyOrder) {
			t.Fatalf("append of key 5 after a last key of 6: %v, want ErrKeyOrder", err)
		}
	})
	t.Run("a later synced frame makes it corruption", func(t *testing.T) {
		dir := t.TempDir()
		third := storeHeaderSize + 2*frame
		b := store([]uint64{5, 6, 3, 7}, []uint32{storeHeaderSize, storeHeaderSize, storeHeaderSize, third + frame})
		path := filepath.Join(dir, "00000000000000000000.store")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open: %v, want ErrCorrupt", err)
		}
		if after, _ := os.ReadFile(path); string(after) != string(b) {
			t.Fatalf("the failed open changed the store file")
		}
	})
}

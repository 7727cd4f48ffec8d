package faultfs_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/dislog/dislog/storelog/faultfs"
	"github.com/matryer/is"
)

func write(t *testing.T, fs *faultfs.FS, path string, b []byte, sync bool) {
	t.Helper()
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func content(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// Creations, removals and renames last through a crash only if a directory fsync followed them.
func TestDirectoryChangesNeedADirectoryFsync(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, synced := range []bool{false, true} {
		is := is.New(t)
		dir := t.TempDir()
		fs := faultfs.New()
		a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
		write(t, fs, a, []byte("a"), true)
		write(t, fs, b, []byte("b"), true)
		is.NoErr(fs.SyncDir(dir))

		write(t, fs, c, []byte("c"), true) // created
		is.NoErr(fs.Remove(a))             // removed
		is.NoErr(fs.Rename(c, b))          // renamed over b
		names, err := fs.ReadDir(dir)
		is.NoErr(err)
		is.Equal(names, []string{"b"}) // no trace of the links kept for undoing
		if synced {
			is.NoErr(fs.SyncDir(dir))
		}
		is.NoErr(fs.Crash(rng))
		if synced {
			is.Equal(content(b), "c")
			_, errA := os.Stat(a)
			_, errC := os.Stat(c)
			is.True(os.IsNotExist(errA) && os.IsNotExist(errC))
		} else {
			is.Equal(content(a), "a") // the removal was undone
			is.Equal(content(b), "b") // the rename was undone and the replaced file is back
			_, errC := os.Stat(c)
			is.True(os.IsNotExist(errC)) // the creation was undone
		}
		entries, err := os.ReadDir(dir)
		is.NoErr(err)
		for _, e := range entries {
			is.True(e.Name() == "a" || e.Name() == "b") // no links left behind
		}
	}
}

// An overwrite of fsynced bytes that was not fsynced itself survives a crash, is reverted, or is
// torn by sector, at random; an fsynced one always survives.
func TestUnsyncedOverwritesMayBeLostOrTorn(t *testing.T) {
	old := bytes.Repeat([]byte{'o'}, 8192)
	outcomes := map[string]bool{}
	for seed := range uint64(40) {
		dir := t.TempDir()
		fs := faultfs.New()
		path := filepath.Join(dir, "f")
		write(t, fs, path, old, true)
		if err := fs.SyncDir(dir); err != nil {
			t.Fatal(err)
		}
		f, err := fs.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(bytes.Repeat([]byte{'n'}, 4096), 0); err != nil { // synced below
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(bytes.Repeat([]byte{'u'}, 4096), 4096); err != nil { // never synced
			t.Fatal(err)
		}
		f.Close()
		if err := fs.Crash(rand.New(rand.NewPCG(seed, 2))); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || len(b) != 8192 {
			t.Fatalf("after crash: %d bytes, %v", len(b), err)
		}
		if !bytes.Equal(b[:4096], bytes.Repeat([]byte{'n'}, 4096)) {
			t.Fatalf("seed %d: the synced overwrite was lost", seed)
		}
		switch second := b[4096:]; {
		case bytes.Equal(second, bytes.Repeat([]byte{'u'}, 4096)):
			outcomes["kept"] = true
		case bytes.Equal(second, old[4096:]):
			outcomes["reverted"] = true
		default:
			for s := 0; s < 4096; s += 512 {
				sector := second[s : s+512]
				if !bytes.Equal(sector, bytes.Repeat([]byte{'u'}, 512)) && !bytes.Equal(sector, old[:512]) {
					t.Fatalf("seed %d: sector %d is neither old nor new", seed, s/512)
				}
			}
			outcomes["torn"] = true
		}
	}
	if len(outcomes) != 3 {
		t.Fatalf("outcomes seen: %v, want kept, reverted and torn", outcomes)
	}
}

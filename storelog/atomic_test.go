package storelog_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dislog/dislog/storelog"
	"github.com/dislog/dislog/storelog/faultfs"
	"github.com/matryer/is"
)

// A power loss at any step of WriteFileAtomic leaves the old content or the new, whole, never a
// torn, empty or missing file; once it returns, the new content survives. The crash is modelled by
// failing the n-th file operation and every one after it (the machine stopped there), then throwing
// away what was not durable; n runs over every step, and each crash is tried with several seeds.
func TestWriteFileAtomicSurvivesPowerLossAtEveryStep(t *testing.T) {
	old := bytes.Repeat([]byte("old content\n"), 700) // more than a page, so a torn write shows
	new := bytes.Repeat([]byte("NEW CONTENT, LONGER\n"), 900)
	for _, existed := range []bool{true, false} {
		for n := 0; ; n++ {
			done := false
			for seed := range uint64(8) {
				is := is.New(t)
				dir := t.TempDir()
				path := filepath.Join(dir, "state")
				fs := faultfs.New()
				if existed {
					is.NoErr(storelog.WriteFileAtomic(fs, path, old, 0o600))
				}
				ops := 0
				fs.SetFault(func(faultfs.Op, string) error {
					if ops++; ops > n {
						return faultfs.ErrInjected
					}
					return nil
				})
				err := storelog.WriteFileAtomic(fs, path, new, 0o600)
				fs.SetFault(nil)
				if err != nil && !errors.Is(err, faultfs.ErrInjected) {
					t.Fatalf("step %d: %v", n, err)
				}
				is.NoErr(fs.Crash(rand.New(rand.NewPCG(seed, uint64(n)))))

				got, rerr := os.ReadFile(path)
				switch {
				case err == nil && (rerr != nil || !bytes.Equal(got, new)):
					t.Fatalf("existed %v, step %d, seed %d: returned nil but the file holds %d bytes (%v) after a crash",
						existed, n, seed, len(got), rerr)
				case rerr != nil && (existed || !os.IsNotExist(rerr)):
					t.Fatalf("existed %v, step %d, seed %d: %v", existed, n, seed, rerr)
				case rerr == nil && !bytes.Equal(got, new) && !(existed && bytes.Equal(got, old)):
					t.Fatalf("existed %v, step %d, seed %d: torn file of %d bytes", existed, n, seed, len(got))
				}
				if err == nil {
					fi, err := os.Stat(path)
					is.NoErr(err)
					is.Equal(fi.Mode().Perm(), os.FileMode(0o600))
					done = true
				}
				// A later write over what the crash left works (a stale temporary file is replaced).
				is.NoErr(storelog.WriteFileAtomic(fs, path, old, 0o600))
				got, rerr = os.ReadFile(path)
				is.NoErr(rerr)
				is.True(bytes.Equal(got, old))
				names, rerr := fs.ReadDir(dir)
				is.NoErr(rerr)
				is.Equal(strings.Join(names, ","), "state") // no temporary file left once a write succeeds
			}
			if done {
				if n < 4 {
					t.Fatalf("WriteFileAtomic succeeded after only %d file operations", n)
				}
				break
			}
		}
	}
}

// A temporary file a crash left behind is replaced, not reused: the new file gets the permissions
// asked for, and no temporary file remains.
func TestWriteFileAtomicReplacesAStaleTemporaryFile(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	is.NoErr(os.WriteFile(path+".tmp", []byte("stale, and longer than the new content"), 0o644))
	is.NoErr(storelog.WriteFileAtomic(storelog.OSFS(), path, []byte("secret"), 0o600))
	got, err := os.ReadFile(path)
	is.NoErr(err)
	is.Equal(string(got), "secret")
	fi, err := os.Stat(path)
	is.NoErr(err)
	is.Equal(fi.Mode().Perm(), os.FileMode(0o600))
	_, err = os.Stat(path + ".tmp")
	is.True(os.IsNotExist(err))
}

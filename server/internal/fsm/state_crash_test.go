package fsm

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/dislog/dislog/storelog"
	"github.com/dislog/dislog/storelog/faultfs"
	"github.com/matryer/is"
)

// A power loss at any step of writing the metadata file leaves the old state or the new one, which
// Open reads; once writeState returns, the new one survives. The crash fails the n-th file
// operation and every one after it, then throws away what was not durable (storelog/faultfs).
func TestStateFileSurvivesPowerLossAtEveryStep(t *testing.T) {
	for n := 0; ; n++ {
		is := is.New(t)
		dir := t.TempDir()
		old, new := newState(), newState()
		old.Index, new.Index = 1, 2
		is.NoErr(writeState(storelog.OSFS(), dir, &old))

		fs := faultfs.New()
		ops := 0
		fs.SetFault(func(faultfs.Op, string) error {
			if ops++; ops > n {
				return faultfs.ErrInjected
			}
			return nil
		})
		err := writeState(fs, dir, &new)
		fs.SetFault(nil)
		if err != nil && !errors.Is(err, faultfs.ErrInjected) {
			t.Fatalf("step %d: %v", n, err)
		}
		is.NoErr(fs.Crash(rand.New(rand.NewPCG(uint64(n), 1))))

		f, reg, oerr := tryOpenFSM(t, dir)
		if oerr != nil {
			t.Fatalf("step %d: open after a crash: %v", n, oerr)
		}
		f.mu.RLock()
		got := f.state.Index
		f.mu.RUnlock()
		is.NoErr(reg.Close())
		switch {
		case err == nil && got != 2:
			t.Fatalf("step %d: writeState returned, but after a crash the state is at index %d", n, got)
		case got != 1 && got != 2:
			t.Fatalf("step %d: after a crash the state is at index %d", n, got)
		}
		if err == nil {
			if n < 4 {
				t.Fatalf("writeState succeeded after only %d file operations", n)
			}
			return
		}
	}
}

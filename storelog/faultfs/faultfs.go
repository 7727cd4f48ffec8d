// Package faultfs is a storelog.FS for tests that can fail any file operation and can simulate a
// power loss: Crash throws away what was never made durable, the way a kernel that lost its page
// cache would.
//
// It tracks, per file, how many bytes an fsync made durable and whether the file's directory entry
// was made durable by a directory fsync. Crash then, per file:
//   - removes files whose directory entry was never synced;
//   - for the bytes past the synced size, chosen at random: drops them all, keeps a random prefix
//     (a torn write), keeps them with a random range zeroed (pages that never reached the disk), or
//     keeps them all (they happened to be written back).
//
// Writes through a memory mapping (storelog's index) bypass the FS; Crash treats them like any other
// unsynced bytes past the synced size. Renames and removals are taken as durable when done: storelog
// syncs the directory right after each. File handles opened before a Crash fail every call but Close.
package faultfs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"

	"github.com/dislog/dislog/storelog"
)

// Op is a kind of file operation, passed to a fault hook.
type Op int

const (
	OpOpen Op = iota
	OpWrite
	OpSync
	OpSyncDir
	OpTruncate
	OpRemove
	OpRename
)

func (o Op) String() string {
	return [...]string{"open", "write", "sync", "syncdir", "truncate", "remove", "rename"}[o]
}

// ErrInjected is the error a Fail rule returns.
var ErrInjected = errors.New("faultfs: injected fault")

// ErrCrashed is returned by files opened before the last Crash.
var ErrCrashed = errors.New("faultfs: file handle from before a crash")

// FS is the fault-injecting file system. Its zero value is not usable; call New.
type FS struct {
	mu    sync.RWMutex // file operations hold it for reading, Crash for writing
	gen   int
	state map[string]*fileState
	fault func(op Op, path string) error

	statsMu sync.Mutex
	counts  map[countKey]int
}

type countKey struct {
	op  Op
	ext string
}

type fileState struct {
	synced  int64
	durable bool
}

// New returns an FS over the operating system's files.
func New() *FS {
	return &FS{state: map[string]*fileState{}, counts: map[countKey]int{}}
}

// SetFault installs a hook called before every operation; a non-nil error fails the operation (a
// failing write first writes half its bytes, as a torn write would). nil removes the hook.
func (fs *FS) SetFault(hook func(op Op, path string) error) {
	fs.statsMu.Lock()
	defer fs.statsMu.Unlock()
	fs.fault = hook
}

// FailOnce returns a hook that fails the first op on a path with the given suffix, then passes.
func FailOnce(op Op, suffix string) func(Op, string) error {
	var once sync.Once
	return func(o Op, path string) error {
		var err error
		if o == op && (suffix == "" || filepath.Ext(path) == suffix) {
			once.Do(func() { err = fmt.Errorf("%w: %s %s", ErrInjected, op, path) })
		}
		return err
	}
}

// Count is how many times op was attempted on paths with the given extension (".store"), or on
// any path for "".
func (fs *FS) Count(op Op, ext string) int {
	fs.statsMu.Lock()
	defer fs.statsMu.Unlock()
	if ext != "" {
		return fs.counts[countKey{op, ext}]
	}
	n := 0
	for k, c := range fs.counts {
		if k.op == op {
			n += c
		}
	}
	return n
}

func (fs *FS) before(op Op, path string) error {
	fs.statsMu.Lock()
	fs.counts[countKey{op, filepath.Ext(path)}]++
	hook := fs.fault
	fs.statsMu.Unlock()
	if hook != nil {
		return hook(op, path)
	}
	return nil
}

func (fs *FS) OpenFile(name string, flag int, perm os.FileMode) (storelog.File, error) {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	if err := fs.before(OpOpen, name); err != nil {
		return nil, err
	}
	_, statErr := os.Stat(name)
	f, err := storelog.OSFS().OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	fs.statsMu.Lock()
	if _, ok := fs.state[name]; !ok {
		if os.IsNotExist(statErr) {
			fs.state[name] = &fileState{}
		} else if fi, err := f.Stat(); err == nil {
			fs.state[name] = &fileState{synced: fi.Size(), durable: true}
		}
	}
	fs.statsMu.Unlock()
	return &file{File: f, fs: fs, path: name, gen: fs.gen}, nil
}

func (fs *FS) Remove(name string) error {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	if err := fs.before(OpRemove, name); err != nil {
		return err
	}
	fs.statsMu.Lock()
	delete(fs.state, name)
	fs.statsMu.Unlock()
	return os.Remove(name)
}

func (fs *FS) Rename(oldpath, newpath string) error {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	if err := fs.before(OpRename, oldpath); err != nil {
		return err
	}
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	fs.statsMu.Lock()
	if st, ok := fs.state[oldpath]; ok {
		fs.state[newpath] = &fileState{synced: st.synced, durable: true}
		delete(fs.state, oldpath)
	}
	fs.statsMu.Unlock()
	return nil
}

func (fs *FS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }

func (fs *FS) ReadDir(name string) ([]string, error) { return storelog.OSFS().ReadDir(name) }

func (fs *FS) SyncDir(name string) error {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	if err := fs.before(OpSyncDir, name); err != nil {
		return err
	}
	if err := storelog.OSFS().SyncDir(name); err != nil {
		return err
	}
	fs.statsMu.Lock()
	for path, st := range fs.state {
		if filepath.Dir(path) == filepath.Clean(name) {
			st.durable = true
		}
	}
	fs.statsMu.Unlock()
	return nil
}

// Crash simulates a power loss, choosing with rng what survives of each file's unsynced bytes.
//
// Each surviving file's crash image is written to a new file renamed over the old one, so a process
// still holding the old files (handles, memory mappings) goes on touching the old inodes and never
// the files a reopen sees, just as a process that died could not. Files opened before the crash fail
// every call but Close from now on; close them to release their descriptors.
func (fs *FS) Crash(rng *rand.Rand) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.gen++
	fs.statsMu.Lock()
	defer fs.statsMu.Unlock()
	for path, st := range fs.state {
		if !st.durable {
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				return err
			}
			delete(fs.state, path)
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if size := int64(len(b)); size > st.synced {
			unsynced := size - st.synced
			switch rng.IntN(4) {
			case 0: // lost
				b = b[:st.synced]
			case 1: // torn
				b = b[:st.synced+rng.Int64N(unsynced+1)]
			case 2: // holes
				from := st.synced + rng.Int64N(unsynced)
				clear(b[from:min(size, from+1+rng.Int64N(64<<10))])
			}
		}
		st.synced = int64(len(b))
		if err := os.WriteFile(path+".crash", b, 0o644); err != nil {
			return err
		}
		if err := os.Rename(path+".crash", path); err != nil {
			return err
		}
	}
	return nil
}

type file struct {
	storelog.File
	fs   *FS
	path string
	gen  int
}

// op runs an operation under the crash lock, failing it if the handle predates a crash or the hook
// says so.
func (f *file) op(op Op, do func() error) error {
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	if f.gen != f.fs.gen {
		return ErrCrashed
	}
	if err := f.fs.before(op, f.path); err != nil {
		return err
	}
	return do()
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	if f.gen != f.fs.gen {
		return 0, ErrCrashed
	}
	return f.File.ReadAt(p, off)
}

func (f *file) WriteAt(p []byte, off int64) (n int, err error) {
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	if f.gen != f.fs.gen {
		return 0, ErrCrashed
	}
	if err := f.fs.before(OpWrite, f.path); err != nil {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, err
	}
	return f.File.WriteAt(p, off)
}

func (f *file) Write(p []byte) (n int, err error) {
	err = f.op(OpWrite, func() error { n, err = f.File.Write(p); return err })
	return n, err
}

func (f *file) Sync() error {
	return f.op(OpSync, func() error {
		if err := f.File.Sync(); err != nil {
			return err
		}
		fi, err := f.File.Stat()
		if err != nil {
			return err
		}
		f.fs.statsMu.Lock()
		if st, ok := f.fs.state[f.path]; ok {
			st.synced = fi.Size()
		}
		f.fs.statsMu.Unlock()
		return nil
	})
}

func (f *file) Truncate(size int64) error {
	return f.op(OpTruncate, func() error {
		if err := f.File.Truncate(size); err != nil {
			return err
		}
		f.fs.statsMu.Lock()
		if st, ok := f.fs.state[f.path]; ok && size < st.synced {
			st.synced = size
		}
		f.fs.statsMu.Unlock()
		return nil
	})
}

// Package faultfs is a storelog.FS for tests that can fail any file operation and can simulate a
// power loss: Crash throws away what was never made durable, the way a kernel that lost its page
// cache would.
//
// It tracks, per file, how many bytes an fsync made durable and which pages below that were
// overwritten since (keeping their durable bytes), and, per directory, the creations, removals and
// renames made since the directory's last fsync. Crash then:
//   - undoes, newest first, every creation, removal and rename that no directory fsync followed, as
//     pebble's crashable MemFS does: a created file vanishes, a removed one comes back, a renamed
//     one goes back to its old name and the file it replaced comes back;
//   - for each overwritten page below the synced size, chosen at random: keeps the new bytes, keeps
//     the durable ones, or mixes the two by 512-byte sector (a torn page);
//   - for the bytes past the synced size, chosen at random: drops them all, keeps a random prefix (a
//     torn write), keeps them with a random range zeroed, keeps or zeroes each 4 KiB page on its own
//     (pages persisted out of order), or keeps them all.
//
// Writes through a memory mapping (storelog's index) bypass the FS; Crash treats them like any other
// unsynced bytes past the synced size, and keeps those below it. A truncation, and the creation of a
// directory, are taken as durable when done. Removed files are kept as hard links named .faultfs-*
// in their directory until a directory fsync (ReadDir does not list them). File handles opened before
// a Crash fail every call but Close.
package faultfs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
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
	mu      sync.RWMutex // file operations hold it for reading, Crash for writing
	gen     int
	state   map[string]*fileState // every file the FS has seen, by its current path
	pending map[string][]dirOp    // per directory, the changes since its last fsync
	stashes int
	fault   func(op Op, path string) error

	statsMu sync.Mutex // guards the fields above but mu and gen, and every fileState
	counts  map[countKey]int
}

type countKey struct {
	op  Op
	ext string
}

const (
	pageSize   = 4096
	sectorSize = 512
	stashName  = ".faultfs-"
)

type fileState struct {
	synced int64            // bytes an fsync made durable
	orig   map[int64][]byte // pages below synced written since the last fsync: their durable bytes
}

type dirOpKind int

const (
	opCreate dirOpKind = iota
	opRemove
	opRename
)

// dirOp is a directory change not yet made durable, with what undoing it needs.
type dirOp struct {
	kind  dirOpKind
	path  string     // the file created or removed, or the rename's new path
	from  string     // a rename's old path
	stash string     // a hard link to the removed file, or to the one a rename replaced ("" if none)
	state *fileState // the removed file's state
	prev  *fileState // the state of the file a rename replaced
}

// New returns an FS over the operating system's files.
func New() *FS {
	return &FS{state: map[string]*fileState{}, pending: map[string][]dirOp{}, counts: map[countKey]int{}}
}

// SetFault installs a hook called before every operation; a non-nil error fails the operation (a
// failing write first writes half its bytes, as a torn write would). nil removes the hook.
func (fs *FS) SetFault(hook func(op Op, path string) error) {
	fs.statsMu.Lock()
	defer fs.statsMu.Unlock()
	fs.fault = hook
}

// Fail returns a hook that fails every op on a path with the given suffix (any path for ""), until
// it is removed.
func Fail(op Op, suffix string) func(Op, string) error {
	return func(o Op, path string) error {
		if o == op && (suffix == "" || filepath.Ext(path) == suffix) {
			return fmt.Errorf("%w: %s %s", ErrInjected, op, path)
		}
		return nil
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
	defer fs.statsMu.Unlock()
	st, ok := fs.state[name]
	switch {
	case os.IsNotExist(statErr):
		st = &fileState{}
		fs.state[name] = st
		fs.addOp(dirOp{kind: opCreate, path: name})
	case !ok:
		st = &fileState{}
		if fi, err := f.Stat(); err == nil {
			st.synced = fi.Size()
		}
		fs.state[name] = st
	case flag&os.O_TRUNC != 0:
		st.synced, st.orig = 0, nil
	}
	return &file{File: f, fs: fs, path: name, st: st, gen: fs.gen}, nil
}

// addOp records a directory change. The caller holds statsMu.
func (fs *FS) addOp(op dirOp) {
	dir := filepath.Dir(op.path)
	fs.pending[dir] = append(fs.pending[dir], op)
}

// stash keeps the file at path reachable under a hidden name in its directory, for an undo.
// The caller holds statsMu.
func (fs *FS) stash(path string) (string, error) {
	fs.stashes++
	link := filepath.Join(filepath.Dir(path), fmt.Sprintf("%s%d", stashName, fs.stashes))
	return link, os.Link(path, link)
}

// stateOf is the state of a file the FS may not have seen. The caller holds statsMu.
func (fs *FS) stateOf(path string) *fileState {
	if st, ok := fs.state[path]; ok {
		return st
	}
	st := &fileState{}
	if fi, err := os.Stat(path); err == nil {
		st.synced = fi.Size()
	}
	return st
}

func (fs *FS) Remove(name string) error {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	if err := fs.before(OpRemove, name); err != nil {
		return err
	}
	fs.statsMu.Lock()
	defer fs.statsMu.Unlock()
	st := fs.stateOf(name)
	link, err := fs.stash(name)
	if err != nil {
		return err
	}
	if err := os.Remove(name); err != nil {
		os.Remove(link)
		return err
	}
	delete(fs.state, name)
	fs.addOp(dirOp{kind: opRemove, path: name, stash: link, state: st})
	return nil
}

// Rename renames oldpath to newpath, which must be in the same directory.
func (fs *FS) Rename(oldpath, newpath string) error {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	if err := fs.before(OpRename, oldpath); err != nil {
		return err
	}
	if filepath.Dir(oldpath) != filepath.Dir(newpath) {
		return fmt.Errorf("faultfs: rename %s to %s: only renames within a directory are modelled", oldpath, newpath)
	}
	fs.statsMu.Lock()
	defer fs.statsMu.Unlock()
	op := dirOp{kind: opRename, path: newpath, from: oldpath}
	if _, err := os.Stat(newpath); err == nil {
		op.prev = fs.stateOf(newpath)
		if op.stash, err = fs.stash(newpath); err != nil {
			return err
		}
	}
	st := fs.stateOf(oldpath)
	if err := os.Rename(oldpath, newpath); err != nil {
		if op.stash != "" {
			os.Remove(op.stash)
		}
		return err
	}
	delete(fs.state, oldpath)
	fs.state[newpath] = st
	fs.addOp(op)
	return nil
}

func (fs *FS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }

// ReadDir lists a directory, leaving out the links the FS keeps to undo removals.
func (fs *FS) ReadDir(name string) ([]string, error) {
	names, err := storelog.OSFS().ReadDir(name)
	if err != nil {
		return nil, err
	}
	kept := names[:0]
	for _, n := range names {
		if !strings.HasPrefix(n, stashName) {
			kept = append(kept, n)
		}
	}
	return kept, nil
}

// SyncDir makes the directory's creations, removals and renames durable.
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
	defer fs.statsMu.Unlock()
	dir := filepath.Clean(name)
	for _, op := range fs.pending[dir] {
		if op.stash != "" {
			if err := os.Remove(op.stash); err != nil {
				return err
			}
		}
	}
	delete(fs.pending, dir)
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
	for _, ops := range fs.pending {
		for i := len(ops) - 1; i >= 0; i-- {
			if err := fs.undo(ops[i]); err != nil {
				return err
			}
		}
	}
	clear(fs.pending)
	for path, st := range fs.state {
		fi, err := os.Stat(path)
		if os.IsNotExist(err) || err == nil && fi.IsDir() {
			delete(fs.state, path) // removed behind the FS's back, or a renamed directory
			continue
		}
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		b = crashImage(rng, b, st)
		st.synced, st.orig = int64(len(b)), nil
		// The file keeps its permissions, as it would through a real power loss.
		if err := os.WriteFile(path+".crash", b, fi.Mode().Perm()); err != nil {
			return err
		}
		if err := os.Rename(path+".crash", path); err != nil {
			return err
		}
	}
	return nil
}

// undo reverts one directory change. The caller holds statsMu. A change in a directory removed
// behind the FS's back (os.RemoveAll) has nothing left to revert.
func (fs *FS) undo(op dirOp) error {
	if _, err := os.Stat(filepath.Dir(op.path)); os.IsNotExist(err) {
		delete(fs.state, op.path)
		delete(fs.state, op.from)
		return nil
	}
	switch op.kind {
	case opCreate:
		if err := os.Remove(op.path); err != nil && !os.IsNotExist(err) {
			return err
		}
		delete(fs.state, op.path)
	case opRemove:
		if err := os.Rename(op.stash, op.path); err != nil {
			return err
		}
		fs.state[op.path] = op.state
	case opRename:
		if err := os.Rename(op.path, op.from); err != nil {
			return err
		}
		fs.state[op.from] = fs.state[op.path]
		delete(fs.state, op.path)
		if op.stash != "" {
			if err := os.Rename(op.stash, op.path); err != nil {
				return err
			}
			fs.state[op.path] = op.prev
		}
	}
	return nil
}

// crashImage is what of b, a file's bytes now, survives a power loss given its durable state.
func crashImage(rng *rand.Rand, b []byte, st *fileState) []byte {
	for page, orig := range st.orig {
		at := page * pageSize
		if at >= int64(len(b)) {
			continue
		}
		switch rng.IntN(3) {
		case 0: // the new bytes reached the disk
		case 1: // they did not
			copy(b[at:], orig)
		case 2: // some sectors did
			for s := int64(0); s < int64(len(orig)); s += sectorSize {
				if rng.IntN(2) == 0 {
					copy(b[at+s:], orig[s:min(s+sectorSize, int64(len(orig)))])
				}
			}
		}
	}
	size := int64(len(b))
	if size <= st.synced {
		return b
	}
	unsynced := size - st.synced
	switch rng.IntN(5) {
	case 0: // lost
		b = b[:st.synced]
	case 1: // torn
		b = b[:st.synced+rng.Int64N(unsynced+1)]
	case 2: // holes
		from := st.synced + rng.Int64N(unsynced)
		clear(b[from:min(size, from+1+rng.Int64N(64<<10))])
	case 3: // pages persisted out of order
		for at := st.synced / pageSize * pageSize; at < size; at += pageSize {
			if rng.IntN(2) == 0 {
				clear(b[max(at, st.synced):min(size, at+pageSize)])
			}
		}
	}
	return b
}

type file struct {
	storelog.File
	fs   *FS
	path string
	st   *fileState
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

// keepDurable saves the durable bytes of the pages below the synced size that a write of n bytes at
// off is about to overwrite, unless they are saved already. The caller holds fs.mu.
func (f *file) keepDurable(off int64, n int) error {
	f.fs.statsMu.Lock()
	defer f.fs.statsMu.Unlock()
	st := f.st
	for page := off / pageSize; page*pageSize < min(off+int64(n), st.synced); page++ {
		if _, ok := st.orig[page]; ok {
			continue
		}
		orig := make([]byte, min(pageSize, st.synced-page*pageSize))
		if _, err := f.File.ReadAt(orig, page*pageSize); err != nil {
			return err
		}
		if st.orig == nil {
			st.orig = map[int64][]byte{}
		}
		st.orig[page] = orig
	}
	return nil
}

func (f *file) WriteAt(p []byte, off int64) (n int, err error) {
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	if f.gen != f.fs.gen {
		return 0, ErrCrashed
	}
	if err := f.keepDurable(off, len(p)); err != nil {
		return 0, err
	}
	if err := f.fs.before(OpWrite, f.path); err != nil {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, err
	}
	return f.File.WriteAt(p, off)
}

// Write writes at the end of the file: storelog writes sequentially only to files it just made.
func (f *file) Write(p []byte) (n int, err error) {
	err = f.op(OpWrite, func() error {
		fi, err := f.File.Stat()
		if err != nil {
			return err
		}
		if err := f.keepDurable(fi.Size(), len(p)); err != nil {
			return err
		}
		n, err = f.File.Write(p)
		return err
	})
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
		f.st.synced, f.st.orig = fi.Size(), nil
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
		defer f.fs.statsMu.Unlock()
		if st := f.st; size < st.synced {
			st.synced = size
			for page, orig := range st.orig {
				switch at := page * pageSize; {
				case at >= size:
					delete(st.orig, page)
				case at+int64(len(orig)) > size:
					st.orig[page] = orig[:size-at]
				}
			}
		}
		return nil
	})
}

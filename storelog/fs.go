package storelog

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// FS is the file system seam the log does all its file work through, so that tests can fail a write
// or an fsync, or throw away what was never synced (package faultfs). Paths are ordinary OS paths.
type FS interface {
	// OpenFile opens a file like os.OpenFile.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Remove removes a file.
	Remove(name string) error
	// Rename renames a file, replacing newpath atomically.
	Rename(oldpath, newpath string) error
	// MkdirAll makes a directory and its parents.
	MkdirAll(path string, perm os.FileMode) error
	// ReadDir lists the names in a directory.
	ReadDir(name string) ([]string, error)
	// SyncDir makes the directory's entries (creations, removals, renames) durable.
	SyncDir(name string) error
}

// File is an open file. Fd must be a real descriptor: the log memory-maps index and store files.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Writer
	io.Closer
	// Sync makes the file's data durable (fdatasync on Linux).
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Fd() uintptr
	Name() string
}

// OSFS returns the operating system's file system.
func OSFS() FS { return osFS{} }

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (osFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }

func (osFS) ReadDir(name string) ([]string, error) {
	entries, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

func (osFS) SyncDir(name string) error {
	d, err := os.Open(name)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// osFile is an *os.File whose Sync is fdatasync: the store is append-only, and fdatasync still
// flushes the file size, which is all the metadata a reader needs.
type osFile struct{ *os.File }

func (f osFile) Sync() error {
	for {
		err := unix.Fdatasync(int(f.File.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// writeBack writes [off, off+n) of f to the disk and waits for it, without the fsync that would
// make it durable (sync_file_range): it empties the page cache of dirty pages that a later fsync of
// the same file would otherwise have to write.
func writeBack(f File, off, n int64) error {
	for {
		err := unix.SyncFileRange(int(f.Fd()), off, n,
			unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		if err != unix.EINTR {
			return err
		}
	}
}

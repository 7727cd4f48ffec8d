package storelog

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces the file at path with data so that a reader, and a crash at any point,
// finds either the old file or the new one, whole: it writes data to path+".tmp", fsyncs it, renames
// it over path and fsyncs the directory. Once it returns, the new file survives a crash. A stale
// temporary file from an earlier crash is removed first, so the new file gets perm; the directory must
// exist. The log writes its meta file this way; other packages that keep small files next to logs
// (state, configuration, certificates) use it through the same FS so that crash tests cover them.
func WriteFileAtomic(fs FS, path string, data []byte, perm os.FileMode) error {
	tmp := path + tmpSuffix
	f, err := fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, iofs.ErrExist) {
		// Left by a crash: remove it rather than truncate it, so that the new file gets perm.
		if err = fs.Remove(tmp); err == nil {
			f, err = fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		}
	}
	if err != nil {
		return fmt.Errorf("storelog: write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, path)
	}
	if err == nil {
		err = fs.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("storelog: write %s: %w", path, err)
	}
	return nil
}

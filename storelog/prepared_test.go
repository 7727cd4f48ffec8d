package storelog_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/storelog"
	"github.com/dislog/dislog/storelog/faultfs"
)

const preparedFile = "storelog.prepared"

// preparedOptions make segments of 4 KiB (about 100 records of value(i)), so that a test reaches
// the half-full mark that starts the preparation of the next segment after about 50 appends.
func preparedOptions(fs storelog.FS) storelog.Options {
	return storelog.Options{FS: fs, MaxSegmentBytes: 4096}
}

// waitPrepared waits for the preallocator to finish the next segment's file.
func waitPrepared(t *testing.T, dir string, size int64) {
	t.Helper()
	waitFor(t, 10*time.Second, "the prepared segment file", func() bool {
		fi, err := os.Stat(filepath.Join(dir, preparedFile))
		return err == nil && fi.Size() == size
	})
}

// appendUntilSegments appends records until the log has n segments.
func appendUntilSegments(t *testing.T, l *storelog.Log, n int) {
	t.Helper()
	for range 1000 {
		if l.Stats().Segments >= n {
			return
		}
		appendN(t, l, 1)
	}
	t.Fatalf("%d segments after 1,000 appends, want %d", l.Stats().Segments, n)
}

// Once the active segment is half full the next segment's store file is prepared whole in the
// background, and the roll adopts it (renames it to the new segment's name) instead of creating
// a file; the records around the roll read back, before and after a reopen.
func TestRollAdoptsThePreparedSegment(t *testing.T) {
	fs := faultfs.New()
	dir := t.TempDir()
	opts := preparedOptions(fs)
	l := openLog(t, dir, opts)
	appendN(t, l, 60)
	waitPrepared(t, dir, 4096)
	if got := fs.Count(faultfs.OpRename, ".prepared"); got != 0 {
		t.Fatalf("prepared file renamed %d times before any roll", got)
	}
	appendUntilSegments(t, l, 2)
	if got := fs.Count(faultfs.OpRename, ".prepared"); got != 1 {
		t.Fatalf("prepared file renamed %d times by one roll, want 1 (adopted)", got)
	}
	if _, err := os.Stat(filepath.Join(dir, preparedFile)); !os.IsNotExist(err) {
		t.Fatalf("prepared file still there after the roll adopted it: %v", err)
	}
	next := l.NextOffset()
	appendN(t, l, 10)
	checkRecords(t, l, 0, next+10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	checkRecords(t, l, 0, next+10)
}

// Power losses with a prepared file present, after the roll adopted it, and after an adoption that
// failed half-way: every acknowledged record survives, Open copes with what is left of the prepared
// file (kept, adopted or removed), and the log rolls on.
func TestCrashAroundThePreparedSegment(t *testing.T) {
	stages := []struct {
		name  string
		fault func(op faultfs.Op, path string) error // during the roll; the roll fails
	}{
		{name: "prepared, not adopted"},
		{name: "adopted, records in it"},
		{name: "header fsync fails", fault: faultfs.Fail(faultfs.OpSync, ".prepared")},
		{name: "rename fails", fault: faultfs.Fail(faultfs.OpRename, ".prepared")},
		{name: "directory fsync after the rename fails", fault: faultfs.Fail(faultfs.OpSyncDir, "")},
	}
	seeds := uint64(8)
	if testing.Short() {
		seeds = 2
	}
	for _, st := range stages {
		t.Run(st.name, func(t *testing.T) {
			for seed := range seeds {
				rng := rand.New(rand.NewPCG(seed, 14))
				fs := faultfs.New()
				dir := t.TempDir()
				opts := preparedOptions(fs)
				l, err := storelog.Open(dir, opts)
				if err != nil {
					t.Fatal(err)
				}
				appendN(t, l, 60)
				waitPrepared(t, dir, 4096)
				switch {
				case st.fault != nil:
					fs.SetFault(st.fault)
					for err == nil {
						if l.Stats().Segments > 1 {
							t.Fatal("the roll succeeded despite the fault")
						}
						_, err = l.Append(value(l.NextOffset()))
					}
					fs.SetFault(nil)
					if !errors.Is(err, storelog.ErrFailed) || !errors.Is(err, faultfs.ErrInjected) {
						t.Fatalf("roll failed with %v, want ErrFailed wrapping the injected fault", err)
					}
				case st.name == "adopted, records in it":
					appendUntilSegments(t, l, 2)
					appendN(t, l, 5)
				}
				acked := l.NextOffset()
				if err := fs.Crash(rng); err != nil {
					t.Fatal(err)
				}
				l.Close()

				l, err = storelog.Open(dir, opts)
				if err != nil {
					t.Fatalf("seed %d: open after the crash: %v", seed, err)
				}
				checkRecords(t, l, 0, acked)
				// The log rolls on, through the prepared file or a new one, twice.
				appendUntilSegments(t, l, l.Stats().Segments+2)
				next := l.NextOffset()
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				l = openLog(t, dir, opts)
				checkRecords(t, l, 0, next)
			}
		})
	}
}

// Open removes an unfinished prepared file and one made for another segment size, and keeps a
// whole one for the next roll.
func TestOpenHandlesLeftoverPreparedFiles(t *testing.T) {
	write := func(t *testing.T, path string, size int) {
		t.Helper()
		if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("unfinished or the wrong size: removed", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, preparedFile+".tmp"), 4096)
		write(t, filepath.Join(dir, preparedFile), 1000)
		l := openLog(t, dir, preparedOptions(nil))
		for _, name := range []string{preparedFile + ".tmp", preparedFile} {
			if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
				t.Fatalf("%s left by Open: %v", name, err)
			}
		}
		appendN(t, l, 10)
		checkRecords(t, l, 0, 10)
	})
	t.Run("whole: adopted by the next roll", func(t *testing.T) {
		fs := faultfs.New()
		dir := t.TempDir()
		write(t, filepath.Join(dir, preparedFile), 4096)
		l := openLog(t, dir, preparedOptions(fs))
		appendN(t, l, 10) // below half: nothing new is prepared
		appendUntilSegments(t, l, 2)
		if got := fs.Count(faultfs.OpRename, ".prepared"); got != 1 {
			t.Fatalf("prepared file renamed %d times, want 1 (adopted by the roll)", got)
		}
		checkRecords(t, l, 0, l.NextOffset())
	})
}

// Close stops the preparation of a segment file part-way instead of waiting for a segment of zeros,
// and the next Open removes what it left.
func TestCloseStopsThePreparation(t *testing.T) {
	fs := faultfs.New()
	dir := t.TempDir()
	opts := storelog.Options{FS: fs, MaxSegmentBytes: 8 << 20} // 64 pieces of zeros to prepare
	l, err := storelog.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Every write of the prepared file waits until the log is closed, so Close comes part-way.
	started := make(chan struct{})
	var once sync.Once
	fs.SetFault(func(op faultfs.Op, path string) error {
		if op != faultfs.OpWrite || filepath.Base(path) != preparedFile+".tmp" {
			return nil
		}
		once.Do(func() { close(started) })
		deadline := time.Now().Add(10 * time.Second)
		for !errors.Is(l.Sync(), storelog.ErrClosed) {
			if time.Now().After(deadline) {
				return errors.New("the log was not closed within 10 s")
			}
			time.Sleep(time.Millisecond) // polling the predicate above
		}
		return nil
	})
	if _, err := l.Append(make([]byte, 4<<20)); err != nil { // past half of the segment
		t.Fatal(err)
	}
	<-started
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fs.SetFault(nil)
	if _, err := os.Stat(filepath.Join(dir, preparedFile)); !os.IsNotExist(err) {
		t.Fatalf("a whole prepared file after Close stopped its preparation: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, preparedFile+".tmp"))
	if err != nil || fi.Size() >= 8<<20 {
		t.Fatalf("want a part-written %s.tmp, got %v, %v", preparedFile, fi, err)
	}
	l = openLog(t, dir, opts)
	if _, err := os.Stat(filepath.Join(dir, preparedFile+".tmp")); !os.IsNotExist(err) {
		t.Fatalf("Open left the unfinished prepared file: %v", err)
	}
	if l.NextOffset() != 1 {
		t.Fatalf("next offset %d after reopen, want 1", l.NextOffset())
	}
}

// With NoPreallocate nothing is written ahead of the appends: the store file holds the records and
// nothing else, so every byte of the log is written once; the log reopens with every record.
func TestNoPreallocateWritesEachByteOnce(t *testing.T) {
	dir := t.TempDir()
	l, err := storelog.Open(dir, storelog.Options{NoPreallocate: true, MaxSegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 300)
	stores, err := filepath.Glob(filepath.Join(dir, "*.store"))
	if err != nil || len(stores) == 0 {
		t.Fatalf("no store files: %v", err)
	}
	var onDisk int64
	for _, s := range stores {
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		onDisk += fi.Size()
	}
	if want := l.Stats().Bytes; onDisk != want {
		t.Fatalf("store files hold %d bytes, the records %d: something was written ahead", onDisk, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "storelog.prepared")); !os.IsNotExist(err) {
		t.Fatalf("a next segment was prepared: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = storelog.Open(dir, storelog.Options{NoPreallocate: true, MaxSegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.NextOffset() != 300 {
		t.Fatalf("reopened with next offset %d, want 300", l.NextOffset())
	}
	for o := range uint64(300) {
		if _, err := l.Read(o); err != nil {
			t.Fatalf("read %d: %v", o, err)
		}
	}
}

package storelog_test

import (
	"errors"
	"testing"

	"github.com/dislog/dislog/storelog"
	"github.com/dislog/dislog/storelog/faultfs"
	"github.com/matryer/is"
)

func TestTruncateHead(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	opts := storelog.Options{MaxSegmentRecords: 10}
	l, err := storelog.Open(dir, opts)
	is.NoErr(err)
	appendN(t, l, 35)

	is.NoErr(l.Truncate(13)) // inside segment 10: segment 0 goes, 10..12 become unreadable
	is.Equal(l.LowestOffset(), uint64(13))
	is.Equal(l.Stats().Segments, 3)
	_, err = l.Read(12)
	is.True(errors.Is(err, storelog.ErrOffsetOutOfRange))
	checkRecords(t, l, 13, 35)

	is.NoErr(l.Truncate(5)) // below the low watermark: nothing to do
	is.Equal(l.LowestOffset(), uint64(13))
	is.True(errors.Is(l.Truncate(36), storelog.ErrOffsetOutOfRange))

	is.NoErr(l.Close())
	l = openLog(t, dir, opts) // the low watermark is persisted
	is.Equal(l.LowestOffset(), uint64(13))
	checkRecords(t, l, 13, 35)

	is.NoErr(l.Truncate(35)) // everything, keeping the next offset
	is.Equal(l.LowestOffset(), uint64(35))
	is.Equal(l.NextOffset(), uint64(35))
	appendN(t, l, 2)
	checkRecords(t, l, 35, 37)
}

func TestTruncateAfter(t *testing.T) {
	cases := []struct {
		name      string
		keepUpTo  uint64
		wantNext  uint64
		wantError error
	}{
		{"inside the active segment", 33, 34, nil},
		{"inside a sealed segment, dropping later ones", 14, 15, nil},
		{"at a segment's last record", 19, 20, nil},
		{"at the last record does nothing", 34, 35, nil},
		{"past the end does nothing", 100, 35, nil},
		{"just below the lowest offset empties the log", 4, 5, nil},
		{"below that is out of range", 3, 35, storelog.ErrOffsetOutOfRange},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			dir := t.TempDir()
			opts := storelog.Options{MaxSegmentRecords: 10}
			l, err := storelog.Open(dir, opts)
			is.NoErr(err)
			appendN(t, l, 35)
			is.NoErr(l.Truncate(5))
			err = l.TruncateAfter(c.keepUpTo)
			is.True(errors.Is(err, c.wantError))
			is.Equal(l.NextOffset(), c.wantNext)
			checkRecords(t, l, 5, c.wantNext)
			// New records go right after the kept ones, and everything survives a reopen.
			appendN(t, l, 12)
			checkRecords(t, l, 5, c.wantNext+12)
			is.NoErr(l.Close())
			l = openLog(t, dir, opts)
			is.Equal(l.LowestOffset(), uint64(5))
			checkRecords(t, l, 5, c.wantNext+12)
		})
	}
}

func TestReset(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	opts := storelog.Options{MaxSegmentRecords: 10}
	l, err := storelog.Open(dir, opts)
	is.NoErr(err)
	appendN(t, l, 25)
	for _, first := range []uint64{1000, 7} { // forwards and backwards
		is.NoErr(l.Reset(first))
		is.Equal(l.LowestOffset(), first)
		is.Equal(l.NextOffset(), first)
		is.Equal(l.Stats().Segments, 1)
		_, err = l.Read(first)
		is.True(errors.Is(err, storelog.ErrOffsetOutOfRange))
		appendN(t, l, 3)
		checkRecords(t, l, first, first+3)
	}
	is.NoErr(l.Close())
	l = openLog(t, dir, opts)
	is.Equal(l.LowestOffset(), uint64(7))
	checkRecords(t, l, 7, 10)
}

// Deleting segment files can be slow (a file system that discards blocks); appends must not wait for
// it. A remove held up by the file system blocks Truncate, never Append.
func TestAppendsDoNotWaitForSegmentDeletion(t *testing.T) {
	is := is.New(t)
	fs := faultfs.New()
	l := openLog(t, t.TempDir(), storelog.Options{FS: fs, MaxSegmentRecords: 4})
	appendN(t, l, 10)
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	fs.SetFault(func(op faultfs.Op, path string) error {
		if op == faultfs.OpRemove {
			entered <- struct{}{}
			<-release
		}
		return nil
	})
	truncated := make(chan error, 1)
	go func() { truncated <- l.Truncate(8) }()
	<-entered // Truncate is inside a remove
	appendN(t, l, 5)
	checkRecords(t, l, 8, 15)
	is.Equal(l.LowestOffset(), uint64(8))
	close(release)
	is.NoErr(<-truncated)
	fs.SetFault(nil)
}

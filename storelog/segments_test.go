package storelog_test

import (
	"testing"
	"time"

	"github.com/dislog/dislog/storelog"
	"github.com/matryer/is"
)

func TestSegmentsDescribeEverySegmentOldestFirst(t *testing.T) {
	is := is.New(t)
	clock := newFakeClock()
	dir := t.TempDir()
	opts := storelog.Options{MaxSegmentRecords: 10, Clock: clock.Now}
	l := openLog(t, dir, opts)
	start := clock.Now().UnixNano()
	appendN(t, l, 10) // segment 0, sealed
	clock.Advance(time.Minute)
	appendN(t, l, 15) // segment 10, sealed; segment 20 active with 5
	is.NoErr(l.Truncate(4))

	check := func(l *storelog.Log) {
		t.Helper()
		segs, err := l.Segments()
		is.NoErr(err)
		is.Equal(len(segs), 3)
		var total int64
		for i, want := range []storelog.SegmentInfo{
			{Base: 0, Next: 10, NewestTime: start},
			{Base: 10, Next: 20, NewestTime: clock.Now().UnixNano()},
			{Base: 20, Next: 25, NewestTime: clock.Now().UnixNano(), Active: true},
		} {
			got := segs[i]
			is.True(got.Bytes > 0)
			total += got.Bytes
			got.Bytes = 0
			is.Equal(got, want)
		}
		is.Equal(total, l.Stats().Bytes)
	}
	check(l)
	// Found on disk by Open, not opened yet.
	is.NoErr(l.Close())
	l = openLog(t, dir, opts)
	check(l)

	// Truncate(Next) of a segment deletes it and those before it.
	is.NoErr(l.Truncate(20))
	segs, err := l.Segments()
	is.NoErr(err)
	is.Equal(len(segs), 1)
	is.True(segs[0].Active)
}

package storelog_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/storelog"
	"github.com/matryer/is"
)

func TestRetentionByBytes(t *testing.T) {
	is := is.New(t)
	l := openLog(t, t.TempDir(), storelog.Options{MaxSegmentRecords: 10, RetentionBytes: 1200})
	appendN(t, l, 100) // 100 records of 36+13 bytes: 10 segments of 32+490 bytes
	is.NoErr(l.ApplyRetention())
	st := l.Stats()
	is.True(st.Bytes <= 1200)
	is.Equal(st.Segments, 2) // one sealed of 522 bytes + the (full) active one
	is.Equal(st.LowestOffset, uint64(80))
	checkRecords(t, l, 80, 100)
	_, err := l.Read(79)
	is.True(errors.Is(err, storelog.ErrOffsetOutOfRange))
}

func TestRetentionByAgeNeverTakesTheActiveSegment(t *testing.T) {
	is := is.New(t)
	clock := newFakeClock()
	dir := t.TempDir()
	opts := storelog.Options{MaxSegmentRecords: 10, RetentionAge: time.Hour, Clock: clock.Now}
	l, err := storelog.Open(dir, opts)
	is.NoErr(err)
	appendN(t, l, 20) // segments 0 and 10 sealed at this time
	clock.Advance(50 * time.Minute)
	appendN(t, l, 15) // segment 20 sealed, 30 active
	clock.Advance(20 * time.Minute)
	is.NoErr(l.ApplyRetention())
	is.Equal(l.LowestOffset(), uint64(20))
	clock.Advance(5 * time.Hour)
	is.NoErr(l.ApplyRetention())
	is.Equal(l.LowestOffset(), uint64(30)) // all old, but the active segment stays
	checkRecords(t, l, 30, 35)

	// Segments found on disk by Open (not yet opened) are aged by their newest record too.
	appendN(t, l, 10)
	is.NoErr(l.Close())
	clock.Advance(2 * time.Hour)
	l = openLog(t, dir, opts)
	is.NoErr(l.ApplyRetention())
	is.Equal(l.LowestOffset(), uint64(40))
}

func TestRetentionRunsInTheBackground(t *testing.T) {
	l := openLog(t, t.TempDir(), storelog.Options{
		MaxSegmentRecords: 10, RetentionBytes: 500, RetentionCheckInterval: 5 * time.Millisecond,
	})
	appendN(t, l, 100)
	waitFor(t, 10*time.Second, "background retention to drop old segments", func() bool { return l.LowestOffset() >= 90 })
}

// Readers of the oldest records race with retention deleting their segments: each read returns the
// right record or ErrOffsetOutOfRange, never other bytes, and nothing crashes on an unmapped file.
func TestReadersRaceRetention(t *testing.T) {
	l := openLog(t, t.TempDir(), storelog.Options{MaxSegmentRecords: 8, RetentionBytes: 400, Sync: storelog.SyncNever})
	appendN(t, l, 64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad sync.Once
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				off := l.LowestOffset()
				rec, err := l.Read(off)
				if err == nil && !bytes.Equal(rec.Value, value(off)) || err != nil && !errors.Is(err, storelog.ErrOffsetOutOfRange) {
					bad.Do(func() { t.Errorf("read %d during retention: %q, %v", off, rec.Value, err) })
				}
			}
		})
	}
	for range 200 {
		appendN(t, l, 4)
		if err := l.ApplyRetention(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	checkRecords(t, l, l.LowestOffset(), 864)
}

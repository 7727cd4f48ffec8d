package storelog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dislog/dislog/storelog"
	"github.com/matryer/is"
)

func value(i uint64) []byte { return fmt.Appendf(nil, "record-%06d", i) }

// waitFor polls cond until it holds, failing the test at the deadline.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

func openLog(t *testing.T, dir string, opts storelog.Options) *storelog.Log {
	t.Helper()
	l, err := storelog.Open(dir, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func appendN(t *testing.T, l *storelog.Log, n int) {
	t.Helper()
	for range n {
		off := l.NextOffset()
		got, err := l.Append(value(off))
		if err != nil || got != off {
			t.Fatalf("append: offset %d, err %v, want offset %d", got, err, off)
		}
	}
}

// checkRecords asserts that [from, to) reads back as value(i) and that the log ends at to.
func checkRecords(t *testing.T, l *storelog.Log, from, to uint64) {
	t.Helper()
	for off := from; off < to; off++ {
		rec, err := l.Read(off)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		if rec.Offset != off || !bytes.Equal(rec.Value, value(off)) {
			t.Fatalf("read %d: got offset %d value %q", off, rec.Offset, rec.Value)
		}
	}
	if got := l.NextOffset(); got != to {
		t.Fatalf("next offset %d, want %d", got, to)
	}
}

func TestAppendAndRead(t *testing.T) {
	is := is.New(t)
	l := openLog(t, t.TempDir(), storelog.Options{})
	is.Equal(l.LowestOffset(), uint64(0))
	is.Equal(l.NextOffset(), uint64(0)) // empty: lowest == next

	off, err := l.Append([]byte("first"))
	is.NoErr(err)
	is.Equal(off, uint64(0))
	is.Equal(l.NextOffset(), uint64(1)) // one record: next = lowest + 1

	first, err := l.AppendBatch([][]byte{[]byte("a"), {}, []byte("c")})
	is.NoErr(err)
	is.Equal(first, uint64(1))

	for i, want := range []string{"first", "a", "", "c"} {
		rec, err := l.Read(uint64(i))
		is.NoErr(err)
		is.Equal(rec.Offset, uint64(i))
		is.Equal(string(rec.Value), want)
		is.True(rec.Time > 0)
	}
	_, err = l.Read(4)
	is.True(errors.Is(err, storelog.ErrOffsetOutOfRange))

	next, err := l.AppendBatch(nil)
	is.NoErr(err)
	is.Equal(next, uint64(4)) // an empty batch writes nothing
	is.Equal(l.NextOffset(), uint64(4))
}

func TestReopenKeepsEverything(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	opts := storelog.Options{MaxSegmentBytes: 1024}
	l, err := storelog.Open(dir, opts)
	is.NoErr(err)
	appendN(t, l, 200)
	is.True(l.Stats().Segments > 3)
	is.NoErr(l.Close())
	is.True(errors.Is(l.Close(), storelog.ErrClosed))
	_, err = l.Append([]byte("x"))
	is.True(errors.Is(err, storelog.ErrClosed))
	_, err = l.Read(0)
	is.True(errors.Is(err, storelog.ErrClosed))

	l = openLog(t, dir, opts)
	checkRecords(t, l, 0, 200)
	appendN(t, l, 10)
	checkRecords(t, l, 0, 210)
}

func TestRollOnSizeAndRecordCount(t *testing.T) {
	cases := []struct {
		name    string
		opts    storelog.Options
		records int
		want    int
	}{
		{"rolls when the store would pass MaxSegmentBytes", storelog.Options{MaxSegmentBytes: 32 + (36+13)*10}, 25, 3},
		{"rolls when the index holds MaxSegmentRecords", storelog.Options{MaxSegmentRecords: 4}, 10, 3},
		{"a batch larger than a segment spills into new segments", storelog.Options{MaxSegmentRecords: 3}, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := openLog(t, t.TempDir(), c.opts)
			appendN(t, l, c.records)
			if got := l.Stats().Segments; got != c.want {
				t.Fatalf("segments %d, want %d", got, c.want)
			}
			checkRecords(t, l, 0, uint64(c.records))
		})
	}
	t.Run("one batch spanning segments keeps consecutive offsets", func(t *testing.T) {
		is := is.New(t)
		l := openLog(t, t.TempDir(), storelog.Options{MaxSegmentRecords: 3})
		batch := make([][]byte, 10)
		for i := range batch {
			batch[i] = value(uint64(i))
		}
		first, err := l.AppendBatch(batch)
		is.NoErr(err)
		is.Equal(first, uint64(0))
		is.Equal(l.Stats().Segments, 4)
		checkRecords(t, l, 0, 10)
	})
}

// fakeClock is a settable clock for age-based rolls and retention.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestRollOnAge(t *testing.T) {
	is := is.New(t)
	clock := newFakeClock()
	l := openLog(t, t.TempDir(), storelog.Options{MaxSegmentAge: time.Hour, Clock: clock.Now})
	appendN(t, l, 5)
	clock.Advance(30 * time.Minute)
	appendN(t, l, 5)
	is.Equal(l.Stats().Segments, 1)
	clock.Advance(31 * time.Minute)
	appendN(t, l, 1) // the append rolls
	is.Equal(l.Stats().Segments, 2)
	clock.Advance(2 * time.Hour)
	is.NoErr(l.ApplyRetention()) // an idle aged segment rolls in the background pass too
	is.Equal(l.Stats().Segments, 3)
	checkRecords(t, l, 0, 11)
}

func TestOffsetForTime(t *testing.T) {
	is := is.New(t)
	clock := newFakeClock()
	start := clock.Now().UnixNano()
	l := openLog(t, t.TempDir(), storelog.Options{MaxSegmentRecords: 7, Clock: clock.Now})
	for range 50 {
		appendN(t, l, 1)
		clock.Advance(time.Second)
	}
	cases := []struct {
		at   int64
		want uint64
	}{
		{start - 1, 0},
		{start, 0},
		{start + 1, 1},
		{start + int64(20*time.Second), 20},
		{start + int64(49*time.Second), 49},
		{start + int64(50*time.Second), 50}, // after every record: the next offset
	}
	for _, c := range cases {
		got, err := l.OffsetForTime(c.at)
		is.NoErr(err)
		is.Equal(got, c.want)
	}
	clock.Advance(-time.Hour) // a clock that steps back never makes times decrease
	appendN(t, l, 1)
	last, err := l.Read(50)
	is.NoErr(err)
	prev, err := l.Read(49)
	is.NoErr(err)
	is.True(last.Time >= prev.Time)
}

func TestScan(t *testing.T) {
	is := is.New(t)
	l := openLog(t, t.TempDir(), storelog.Options{MaxSegmentRecords: 4})
	appendN(t, l, 20)
	var got []uint64
	for rec, err := range l.Scan(3, 17) {
		is.NoErr(err)
		is.Equal(rec.Value, value(rec.Offset))
		got = append(got, rec.Offset)
	}
	is.Equal(len(got), 14)
	is.Equal(got[0], uint64(3))
	is.Equal(got[13], uint64(16))

	var lastErr error
	n := 0
	for _, err := range l.Scan(18, 25) {
		lastErr = err
		n++
	}
	is.Equal(n, 3) // 18, 19, then the error at 20
	is.True(errors.Is(lastErr, storelog.ErrOffsetOutOfRange))
}

func TestBadInput(t *testing.T) {
	is := is.New(t)
	l := openLog(t, t.TempDir(), storelog.Options{MaxRecordBytes: 100})
	appendN(t, l, 3)

	_, err := l.AppendBatch([][]byte{[]byte("ok"), make([]byte, 101)})
	is.True(errors.Is(err, storelog.ErrRecordTooLarge))
	is.Equal(l.NextOffset(), uint64(3)) // nothing of the batch was written
	_, err = l.Append(make([]byte, 100))
	is.NoErr(err) // exactly the maximum is fine

	for _, off := range []uint64{4, 5, 1 << 40} {
		_, err := l.Read(off)
		is.True(errors.Is(err, storelog.ErrOffsetOutOfRange))
	}
	is.NoErr(l.Truncate(2))
	_, err = l.Read(1)
	is.True(errors.Is(err, storelog.ErrOffsetOutOfRange)) // below the low watermark

	_, err = storelog.Open(t.TempDir(), storelog.Options{MaxRecordBytes: 1000, MaxSegmentBytes: 1000})
	is.True(errors.Is(err, storelog.ErrInvalidOptions))
	_, err = storelog.Open(t.TempDir(), storelog.Options{Sync: 7})
	is.True(errors.Is(err, storelog.ErrInvalidOptions))
}

func TestWaitWakesOnAppend(t *testing.T) {
	is := is.New(t)
	l := openLog(t, t.TempDir(), storelog.Options{})
	appendN(t, l, 1)
	is.NoErr(l.Wait(context.Background(), 0)) // already there

	woke := make(chan error, 1)
	go func() { woke <- l.Wait(context.Background(), 1) }()
	select {
	case err := <-woke:
		t.Fatalf("Wait returned before the append: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	appendN(t, l, 1)
	select {
	case err := <-woke:
		is.NoErr(err)
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not wake after the append")
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { woke <- l.Wait(ctx, 10) }()
	cancel()
	is.True(errors.Is(<-woke, context.Canceled))

	go func() { woke <- l.Wait(context.Background(), 10) }()
	is.NoErr(l.Close())
	is.True(errors.Is(<-woke, storelog.ErrClosed))
}

// One writer and many readers, under the race detector: readers only ever see whole records that were
// appended, at their offsets.
func TestConcurrentReadersAndWriter(t *testing.T) {
	l := openLog(t, t.TempDir(), storelog.Options{MaxSegmentRecords: 64, Sync: storelog.SyncNever})
	const total = 3000
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 4 {
		wg.Go(func() {
			seen := uint64(0)
			for seen < total {
				next := l.NextOffset()
				for off := seen; off < next; off++ {
					rec, err := l.Read(off)
					if err != nil || !bytes.Equal(rec.Value, value(off)) {
						errs <- fmt.Errorf("reader %d: offset %d: %q, %v", r, off, rec.Value, err)
						return
					}
				}
				seen = next
				if seen >= total {
					return
				}
				if err := l.Wait(context.Background(), seen); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := uint64(0); i < total; i += 3 {
		if _, err := l.AppendBatch([][]byte{value(i), value(i + 1), value(i + 2)}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestReadBatch(t *testing.T) {
	is := is.New(t)
	l := openLog(t, t.TempDir(), storelog.Options{MaxSegmentRecords: 4})
	appendN(t, l, 10)
	cases := []struct {
		name                 string
		from                 uint64
		maxRecords, maxBytes int
		want                 []uint64
	}{
		{"across segments up to maxRecords", 2, 5, 1 << 20, []uint64{2, 3, 4, 5, 6}},
		{"stops at the end of the log", 7, 100, 1 << 20, []uint64{7, 8, 9}},
		{"stops before maxBytes", 0, 100, 30, []uint64{0, 1}},
		{"returns one record even over maxBytes", 5, 100, 1, []uint64{5}},
	}
	for _, c := range cases {
		recs, err := l.ReadBatch(nil, c.from, c.maxRecords, c.maxBytes)
		is.NoErr(err)
		var got []uint64
		for _, r := range recs {
			is.Equal(r.Value, value(r.Offset)) // each value is its own record's
			got = append(got, r.Offset)
		}
		is.Equal(got, c.want) // c.name
	}
	recs, err := l.ReadBatch(nil, 1, 3, 1<<20)
	is.NoErr(err)
	recs[0].Value = append(recs[0].Value, 'x') // values do not overlap: appending to one leaves the next alone
	is.Equal(recs[1].Value, value(2))
	_, err = l.ReadBatch(nil, 10, 5, 1<<20)
	is.True(errors.Is(err, storelog.ErrOffsetOutOfRange))
}

func TestAppendBatchAtKeepsGivenTimes(t *testing.T) {
	is := is.New(t)
	l := openLog(t, t.TempDir(), storelog.Options{})
	first, err := l.AppendBatchAt([][]byte{[]byte("a"), []byte("b")}, 1000)
	is.NoErr(err)
	_, err = l.AppendBatchAt([][]byte{[]byte("c")}, 500) // earlier than the last: raised to it
	is.NoErr(err)
	_, err = l.AppendBatchAt([][]byte{[]byte("d")}, 2000)
	is.NoErr(err)
	var times []int64
	for rec, err := range l.Scan(first, l.NextOffset()) {
		is.NoErr(err)
		times = append(times, rec.Time)
	}
	is.Equal(times, []int64{1000, 1000, 1000, 2000})
	off, err := l.OffsetForTime(1500)
	is.NoErr(err)
	is.Equal(off, uint64(3))
}

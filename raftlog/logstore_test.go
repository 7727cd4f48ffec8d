package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/storelog"
	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

func openLogStore(t *testing.T, dir string, opts Options) *LogStore {
	t.Helper()
	s, err := OpenLogStore(dir, opts)
	if err != nil {
		t.Fatalf("open log store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// entry is the entry these tests store at index i: its data says which index it belongs to.
func entry(i uint64) *raft.Log {
	return &raft.Log{
		Index:      i,
		Term:       i/100 + 1,
		Type:       raft.LogCommand,
		Data:       fmt.Appendf(nil, "entry %d", i),
		AppendedAt: time.Unix(1_700_000_000, int64(i)),
	}
}

func entries(first, last uint64) []*raft.Log {
	var logs []*raft.Log
	for i := first; i <= last; i++ {
		logs = append(logs, entry(i))
	}
	return logs
}

func store(t *testing.T, s raft.LogStore, first, last uint64) {
	t.Helper()
	if err := s.StoreLogs(entries(first, last)); err != nil {
		t.Fatalf("StoreLogs [%d, %d]: %v", first, last, err)
	}
}

// checkRange asserts that s holds exactly [first, last], each index reading back as entry(i), and
// that the indexes just outside are missing. first == 0 means empty.
func checkRange(t *testing.T, s raft.LogStore, first, last uint64) {
	t.Helper()
	is := is.NewRelaxed(t)
	gotFirst, err := s.FirstIndex()
	is.NoErr(err)
	gotLast, err := s.LastIndex()
	is.NoErr(err)
	if gotFirst != first || gotLast != last {
		t.Fatalf("store holds [%d, %d], want [%d, %d]", gotFirst, gotLast, first, last)
	}
	var l raft.Log
	if first > 1 {
		is.True(s.GetLog(first-1, &l) == raft.ErrLogNotFound) // below the first index
	}
	is.True(s.GetLog(last+1, &l) == raft.ErrLogNotFound) // past the last index
	if first == 0 {
		return
	}
	for i := first; i <= last; i++ {
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if want := entry(i); l.Index != i || !bytes.Equal(l.Data, want.Data) || l.Term != want.Term {
			t.Fatalf("GetLog(%d) = index %d term %d data %q, want %q", i, l.Index, l.Term, l.Data, want.Data)
		}
	}
}

func TestEmptyStoreHasNoIndexes(t *testing.T) {
	is := is.New(t)
	s := openLogStore(t, t.TempDir(), Options{})
	checkRange(t, s, 0, 0)
	var l raft.Log
	for _, i := range []uint64{0, 1, 2, 1 << 40} {
		is.True(s.GetLog(i, &l) == raft.ErrLogNotFound) // exactly raft.ErrLogNotFound, not wrapped
	}
	commit, err := s.GetCommitIndex()
	is.NoErr(err)
	is.Equal(commit, uint64(0))
	is.True(s.IsMonotonic())
}

func TestEveryFieldRoundTrips(t *testing.T) {
	cases := []struct {
		name string
		log  raft.Log
	}{
		{"a command with every field set", raft.Log{Term: 7, Type: raft.LogCommand, Data: []byte("hello"), Extensions: []byte{0, 1, 2, 0xff}, AppendedAt: time.Unix(1_700_000_000, 123_456_789)}},
		{"a configuration entry", raft.Log{Term: 1, Type: raft.LogConfiguration, Data: bytes.Repeat([]byte{0xab}, 5000)}},
		{"a no-op with no data and a zero time", raft.Log{Term: 3, Type: raft.LogNoop}},
		{"the largest term and type", raft.Log{Term: 1<<64 - 1, Type: raft.LogType(255), Data: []byte{0}}},
		{"a time before 1970", raft.Log{Term: 2, Type: raft.LogBarrier, AppendedAt: time.Date(1900, 1, 2, 3, 4, 5, 6, time.UTC)}},
		{"extensions but no data", raft.Log{Term: 2, Extensions: []byte("ext")}},
	}
	is := is.New(t)
	dir := t.TempDir()
	s := openLogStore(t, dir, Options{})
	var logs []*raft.Log
	for i, c := range cases {
		l := c.log
		l.Index = uint64(i + 1)
		logs = append(logs, &l)
	}
	is.NoErr(s.StoreLogs(logs))

	check := func(t *testing.T, s *LogStore) {
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				is := is.New(t)
				want := logs[i]
				var got raft.Log
				is.NoErr(s.GetLog(want.Index, &got))
				is.Equal(got.Index, want.Index)
				is.Equal(got.Term, want.Term)
				is.Equal(got.Type, want.Type)
				is.Equal(got.Data, want.Data)
				is.Equal(got.Extensions, want.Extensions)
				is.True(got.AppendedAt.Equal(want.AppendedAt))
				is.Equal(got.AppendedAt.IsZero(), want.AppendedAt.IsZero())
			})
		}
	}
	t.Run("before reopening", func(t *testing.T) { check(t, s) })
	is.NoErr(s.Close())
	t.Run("after reopening", func(t *testing.T) { check(t, openLogStore(t, dir, Options{})) })
}

func TestGetLogOfMissingIndexIsExactlyErrLogNotFound(t *testing.T) {
	is := is.New(t)
	s := openLogStore(t, t.TempDir(), Options{})
	store(t, s, 1, 100)
	is.NoErr(s.DeleteRange(1, 10))
	var l raft.Log
	for _, i := range []uint64{0, 1, 10, 101, 1 << 63} {
		err := s.GetLog(i, &l)
		is.True(err == raft.ErrLogNotFound) // raft compares with ==
	}
	is.NoErr(s.GetLog(11, &l))
}

func TestStoreLogsRefusesNonContiguousBatches(t *testing.T) {
	cases := []struct {
		name string
		logs []*raft.Log
	}{
		{"a gap inside the batch", []*raft.Log{entry(11), entry(12), entry(14)}},
		{"a batch that starts past the next index", entries(12, 15)},
		{"a batch that overlaps the last entries", entries(9, 12)},
		{"a repeated index", []*raft.Log{entry(11), entry(11)}},
		{"indexes going down", []*raft.Log{entry(12), entry(11)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			s := openLogStore(t, t.TempDir(), Options{})
			store(t, s, 1, 10)
			err := s.StoreLogs(c.logs)
			is.True(errors.Is(err, ErrNonContiguous))
			checkRange(t, s, 1, 10) // nothing of the batch is stored
			store(t, s, 11, 20)     // and the store takes the next good batch
			checkRange(t, s, 1, 20)
		})
	}
}

func TestStoreLogsIsAtomicWhenAnEntryIsTooLarge(t *testing.T) {
	is := is.New(t)
	s := openLogStore(t, t.TempDir(), Options{MaxEntryBytes: 1024})
	store(t, s, 1, 5)
	logs := entries(6, 9)
	logs[2].Data = make([]byte, 2000)
	err := s.StoreLogs(logs)
	is.True(errors.Is(err, storelog.ErrRecordTooLarge))
	checkRange(t, s, 1, 5)
	store(t, s, 6, 9)
	checkRange(t, s, 1, 9)
}

func TestFirstStoreLogsMayStartAtAnyIndex(t *testing.T) {
	for _, first := range []uint64{0, 1, 2, 1000, 1 << 40} {
		t.Run(fmt.Sprintf("starting at %d", first), func(t *testing.T) {
			is := is.New(t)
			dir := t.TempDir()
			s := openLogStore(t, dir, Options{})
			is.NoErr(s.StoreLogs(entries(first, first+9)))
			last, err := s.LastIndex()
			is.NoErr(err)
			is.Equal(last, first+9)
			var l raft.Log
			is.NoErr(s.GetLog(first+9, &l))
			is.Equal(l.Index, first+9)
			is.NoErr(s.Close())
			s = openLogStore(t, dir, Options{})
			last, err = s.LastIndex()
			is.NoErr(err)
			is.Equal(last, first+9)
		})
	}
}

func TestDeleteRange(t *testing.T) {
	cases := []struct {
		name                string
		min, max            uint64
		wantFirst, wantLast uint64 // 0, 0: empty
		err                 error
	}{
		{"a head range compacts the log", 1, 40, 41, 100, nil},
		{"a head range that starts below the first index", 0, 40, 41, 100, nil},
		{"a single head entry", 1, 1, 2, 100, nil},
		{"a tail range cuts a conflict", 61, 100, 1, 60, nil},
		{"a tail range past the last index", 61, 1 << 62, 1, 60, nil},
		{"a single tail entry", 100, 100, 1, 99, nil},
		{"everything", 1, 100, 0, 0, nil},
		{"more than everything", 0, 1<<64 - 1, 0, 0, nil},
		{"a range past the end does nothing", 101, 200, 1, 100, nil},
		{"an upside-down range does nothing", 50, 40, 1, 100, nil},
		{"a range in the middle would leave a gap", 40, 60, 1, 100, ErrMiddleRange},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			dir := t.TempDir()
			// Small segments, so that deletions cross segment files.
			opts := Options{MaxSegmentBytes: 1024, MaxEntryBytes: 256}
			s := openLogStore(t, dir, opts)
			for i := uint64(1); i <= 100; i += 10 {
				store(t, s, i, i+9)
			}
			err := s.DeleteRange(c.min, c.max)
			if c.err != nil {
				is.True(errors.Is(err, c.err))
			} else {
				is.NoErr(err)
			}
			checkRange(t, s, c.wantFirst, c.wantLast)
			is.NoErr(s.Close())

			s = openLogStore(t, dir, opts)
			checkRange(t, s, c.wantFirst, c.wantLast) // the deletion is durable

			// The log goes on: after the last entry, or from anywhere once it is empty.
			next := c.wantLast + 1
			if c.wantLast == 0 {
				next = 5000
			}
			store(t, s, next, next+9)
			first := c.wantFirst
			if first == 0 {
				first = next
			}
			checkRange(t, s, first, next+9)
		})
	}
}

func TestCommitIndexIsPersistedOnlyWithTheNextStoreLogs(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	s := openLogStore(t, dir, Options{})
	commit := func(s *LogStore) uint64 {
		c, err := s.GetCommitIndex()
		is.NoErr(err)
		return c
	}

	is.NoErr(s.StageCommitIndex(5))
	is.Equal(commit(s), uint64(0)) // staged, not persisted
	store(t, s, 1, 10)
	is.Equal(commit(s), uint64(5))

	is.NoErr(s.StageCommitIndex(8))
	is.NoErr(s.Close())
	s = openLogStore(t, dir, Options{})
	is.Equal(commit(s), uint64(5)) // the staged 8 was never stored

	is.NoErr(s.StageCommitIndex(100))
	store(t, s, 11, 12)
	is.Equal(commit(s), uint64(12)) // never past the last index
	is.NoErr(s.Close())
	s = openLogStore(t, dir, Options{})
	is.Equal(commit(s), uint64(12))

	is.NoErr(s.DeleteRange(11, 12))
	is.Equal(commit(s), uint64(5)) // what entry 10 carries
	is.NoErr(s.Close())
	s = openLogStore(t, dir, Options{})
	is.Equal(commit(s), uint64(5))

	is.NoErr(s.DeleteRange(1, 10))
	is.Equal(commit(s), uint64(0))
}

// TestReadsRunConcurrentlyWithWrites is for the race detector: raft reads from replication and FSM
// goroutines while its main goroutine stores and its snapshot goroutine compacts.
func TestReadsRunConcurrentlyWithWrites(t *testing.T) {
	is := is.New(t)
	s := openLogStore(t, t.TempDir(), Options{MaxSegmentBytes: 4096, MaxEntryBytes: 512})
	store(t, s, 1, 10)
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var l raft.Log
			for {
				select {
				case <-done:
					return
				default:
				}
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				for i := first; i <= last && i > 0; i++ {
					err := s.GetLog(i, &l)
					if err == raft.ErrLogNotFound {
						continue // compacted meanwhile
					}
					if err != nil || l.Index != i || !bytes.Equal(l.Data, entry(i).Data) {
						errs <- fmt.Errorf("GetLog(%d) = %d %q, %v", i, l.Index, l.Data, err)
						return
					}
				}
			}
		}()
	}
	for i := uint64(11); i <= 1000; i += 10 {
		store(t, s, i, i+9)
		if i%100 == 1 {
			is.NoErr(s.DeleteRange(1, i-50))
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

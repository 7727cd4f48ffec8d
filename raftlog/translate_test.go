package raftlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/dislog/dislog/storelog/faultfs"
	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

// recordsData is the data of a command carrying n records, as the translation tests write it.
func recordsData(n uint64, tag string) []byte { return fmt.Appendf(nil, "records=%d;%s", n, tag) }

// recordsOf is the Options.Records of the translation tests: the count a command's data names;
// raft's own entries and other commands carry none.
func recordsOf(l *raft.Log) uint64 {
	if l.Type != raft.LogCommand {
		return 0
	}
	rest, ok := strings.CutPrefix(string(l.Data), "records=")
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(rest[:strings.IndexByte(rest, ';')], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// translated is the model of a translated log: every entry the store holds, with its base and
// record count.
type translated struct {
	entries []modelEntry // in index order
}

type modelEntry struct {
	index, base, n uint64
	typ            raft.LogType
}

// next is the base the entry after the model's last gets, or base if it holds none.
func (m *translated) next(base uint64) uint64 {
	if len(m.entries) == 0 {
		return base
	}
	e := m.entries[len(m.entries)-1]
	return e.base + e.n
}

// randomEntries makes n entries from index first on with bases from base on: commands of 0 to 5
// records, commands without a count, no-ops and configuration entries, in term term. It returns them
// and their model.
func randomEntries(rng *rand.Rand, first, base uint64, n int, term uint64) ([]*raft.Log, []modelEntry) {
	var logs []*raft.Log
	var model []modelEntry
	for i := range uint64(n) {
		l := &raft.Log{Index: first + i, Term: term, Type: raft.LogCommand}
		switch rng.IntN(6) {
		case 0:
			l.Type = raft.LogNoop
		case 1:
			l.Type, l.Data = raft.LogConfiguration, []byte("configuration")
		case 2:
			l.Data = []byte("a command without records")
		default:
			l.Data = recordsData(uint64(rng.IntN(6)), fmt.Sprintf("index %d term %d", l.Index, term))
		}
		logs = append(logs, l)
		model = append(model, modelEntry{index: l.Index, base: base, n: recordsOf(l), typ: l.Type})
		base += recordsOf(l)
	}
	return logs, model
}

// storeRandom stores count random entries after the model's last (or from index first on an empty
// model, with base), in batches of 1 to 8, and adds them to the model.
func (m *translated) storeRandom(t *testing.T, rng *rand.Rand, s *LogStore, first, base uint64, count int, term uint64) {
	t.Helper()
	if len(m.entries) > 0 {
		first = m.entries[len(m.entries)-1].index + 1
	}
	base = m.next(base)
	for count > 0 {
		n := min(count, 1+rng.IntN(8))
		logs, model := randomEntries(rng, first, base, n, term)
		if err := s.StoreLogs(logs); err != nil {
			t.Fatalf("StoreLogs [%d, %d]: %v", first, first+uint64(n)-1, err)
		}
		m.entries = append(m.entries, model...)
		first += uint64(n)
		base = m.next(base)
		count -= n
	}
}

// check asserts that the store's translation is the model's: FirstOffset, NextOffset, and EntryOf
// for every offset held and for those just outside.
func (m *translated) check(t *testing.T, s *LogStore) {
	t.Helper()
	var first, next uint64
	if len(m.entries) > 0 {
		first, next = m.entries[0].base, m.next(0)
	}
	if got := s.FirstOffset(); got != first {
		t.Fatalf("FirstOffset = %d, want %d", got, first)
	}
	if got := s.NextOffset(); got != next {
		t.Fatalf("NextOffset = %d, want %d", got, next)
	}
	var l raft.Log
	for _, e := range m.entries {
		for off := e.base; off < e.base+e.n; off++ {
			index, base, err := s.EntryOf(off)
			if err != nil || index != e.index || base != e.base {
				t.Fatalf("EntryOf(%d) = %d, %d, %v; want entry %d with base %d", off, index, base, err, e.index, e.base)
			}
		}
		if err := s.GetLog(e.index, &l); err != nil || l.Type != e.typ || recordsOf(&l) != e.n {
			t.Fatalf("GetLog(%d) = type %v, %d records, %v; want %v, %d", e.index, l.Type, recordsOf(&l), err, e.typ, e.n)
		}
	}
	outside := []uint64{next, next + 1}
	if first > 0 {
		outside = append(outside, first-1)
	}
	for _, off := range outside {
		if _, _, err := s.EntryOf(off); !errors.Is(err, ErrOffsetNotFound) {
			t.Fatalf("EntryOf(%d) with the store holding [%d, %d): %v, want ErrOffsetNotFound", off, first, next, err)
		}
	}
}

// dropHead removes the model's entries below index.
func (m *translated) dropHead(index uint64) {
	for len(m.entries) > 0 && m.entries[0].index < index {
		m.entries = m.entries[1:]
	}
}

// dropTail removes the model's entries from index on.
func (m *translated) dropTail(index uint64) {
	for len(m.entries) > 0 && m.entries[len(m.entries)-1].index >= index {
		m.entries = m.entries[:len(m.entries)-1]
	}
}

func translateOptions() Options {
	return Options{MaxSegmentRecords: 16, Records: recordsOf}
}

// Random mixes of commands with and without records, no-ops and configuration entries, stored in
// batches, then tail deletions replaced by entries of other counts, head deletions and reopens:
// EntryOf finds every offset's entry and base as a model says.
func TestTranslationFollowsEntries(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 12))
			dir := t.TempDir()
			s := openLogStore(t, dir, translateOptions())
			m := &translated{}
			m.check(t, s)
			m.storeRandom(t, rng, s, 1, 0, 40, 1)
			m.check(t, s)
			term := uint64(1)
			for round := range 12 {
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				switch rng.IntN(4) {
				case 0: // a conflict: the tail goes, entries of another term and other counts replace it
					from := first + 1 + uint64(rng.IntN(int(last-first)))
					if err := s.DeleteRange(from, last); err != nil {
						t.Fatal(err)
					}
					m.dropTail(from)
					m.check(t, s)
					term++
				case 1: // compaction
					to := first + uint64(rng.IntN(int(last-first)))
					if err := s.DeleteRange(first, to); err != nil {
						t.Fatal(err)
					}
					m.dropHead(to + 1)
					m.check(t, s)
				case 2: // restart
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					s = openLogStore(t, dir, translateOptions())
					m.check(t, s)
				}
				m.storeRandom(t, rng, s, 0, 0, 1+rng.IntN(30), term)
				m.check(t, s)
				if t.Failed() {
					t.Fatalf("round %d", round)
				}
			}
		})
	}
}

// After DeleteRange of everything (raft after installing a snapshot), the next StoreLogs asks
// BaseAt for its base, with its first index; a new store asks too, and without BaseAt starts at 0.
func TestTranslationAfterEverythingIsDeletedUsesBaseAt(t *testing.T) {
	is := is.New(t)
	rng := rand.New(rand.NewPCG(7, 7))
	var asked []uint64
	opts := translateOptions()
	opts.BaseAt = func(index uint64) uint64 {
		asked = append(asked, index)
		return 1000 + index
	}
	s := openLogStore(t, t.TempDir(), opts)
	m := &translated{}
	m.storeRandom(t, rng, s, 1, 1001, 20, 1)
	m.check(t, s)
	is.Equal(asked, []uint64{1})

	last, err := s.LastIndex()
	is.NoErr(err)
	is.NoErr(s.DeleteRange(1, last))
	m.entries = nil
	m.check(t, s) // empty: nothing found, both offsets 0

	// The snapshot was at index 500: the log starts again at 501 with the base BaseAt gives.
	m.storeRandom(t, rng, s, 501, 1501, 20, 2)
	m.check(t, s)
	is.Equal(asked, []uint64{1, 501})
	_, _, err = s.EntryOf(1500)
	is.True(errors.Is(err, ErrOffsetNotFound))

	// Deleting everything when the next index is where the log went on asks again too: the entries
	// deleted need not be those the snapshot covered.
	last, err = s.LastIndex()
	is.NoErr(err)
	is.NoErr(s.DeleteRange(501, last))
	m.entries = nil
	m.storeRandom(t, rng, s, last+1, 1000+last+1, 5, 2)
	m.check(t, s)
	is.Equal(asked, []uint64{1, 501, last + 1})

	plain := openLogStore(t, t.TempDir(), translateOptions())
	m = &translated{}
	m.storeRandom(t, rng, plain, 1, 0, 10, 1)
	m.check(t, plain)
}

// Without Options.Records the store keeps no translation: EntryOf says so, and the offsets are 0.
func TestNoTranslationWithoutRecords(t *testing.T) {
	is := is.New(t)
	s := openLogStore(t, t.TempDir(), Options{})
	store(t, s, 1, 10)
	_, _, err := s.EntryOf(0)
	is.True(errors.Is(err, ErrNoTranslation))
	is.Equal(s.FirstOffset(), uint64(0))
	is.Equal(s.NextOffset(), uint64(0))
}

// Power losses (storelog's faultfs) at random points: the reopened store's translation holds for
// every entry it kept, and goes on from its last entry.
func TestTranslationSurvivesPowerLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	dir := t.TempDir()
	fs := faultfs.New()
	opts := translateOptions()
	opts.FS = fs
	m := &translated{}
	s, err := OpenLogStore(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		m.storeRandom(t, rng, s, 1, 0, 1+rng.IntN(30), 1)
		if first, last := m.entries[0].index, m.entries[len(m.entries)-1].index; round%4 == 3 && last > first {
			to := first + uint64(rng.IntN(int(last-first)))
			if err := s.DeleteRange(first, to); err != nil {
				t.Fatal(err)
			}
			m.dropHead(to + 1)
		}
		// Every StoreLogs returned, so it was fsynced: the crash may only take the index's
		// unsynced pages, which storelog rebuilds from the frames and their keys.
		if err := fs.Crash(rng); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if s, err = OpenLogStore(dir, opts); err != nil {
			t.Fatalf("round %d: open after crash: %v", round, err)
		}
		m.check(t, s)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

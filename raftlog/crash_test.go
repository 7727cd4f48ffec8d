package raftlog

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/dislog/dislog/storelog/faultfs"
	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

// crashChildEnv names the store directory of a crash child: a test binary started with it set runs
// crashChild instead of the tests.
const crashChildEnv = "RAFTLOG_CRASH_CHILD_DIR"

// crashOptions keep segments small, so that the crash tests cross segment rolls often.
var crashOptions = Options{MaxSegmentBytes: 32 << 10, MaxSegmentRecords: 256, MaxEntryBytes: 1024}

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

// crashData is the data of the entry at index i written in term: its length varies with i, and it
// names both, so that an entry read back can be checked, and one left over from an older term told
// apart.
func crashData(i, term uint64) []byte {
	b := fmt.Appendf(nil, "%d/%d/", i, term)
	for len(b) < 20+int(i*37%300) {
		b = append(b, byte(i))
	}
	return b
}

func crashBatch(first uint64, n int, term uint64) []*raft.Log {
	logs := make([]*raft.Log, n)
	for k := range logs {
		i := first + uint64(k)
		logs[k] = &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: crashData(i, term)}
	}
	return logs
}

// crashChild stores batches from the store's last index on and prints the last index of each batch
// once StoreLogs has returned, until it is killed. It gives up after a minute, so that a parent that
// died cannot leave it running.
func crashChild(dir string) int {
	s, err := OpenLogStore(dir, crashOptions)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	next, err := s.LastIndex()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	next++
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), next))
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		logs := crashBatch(next, 1+rng.IntN(16), 1)
		last := next + uint64(len(logs)) - 1
		s.StageCommitIndex(next - 1)
		if err := s.StoreLogs(logs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if _, err := fmt.Fprintln(os.Stdout, last); err != nil {
			return 2
		}
		next = last + 1
	}
	return 0
}

// checkCrashStore opens the store in dir and asserts what raft needs after a crash: it holds
// [wantFirst, last] with last >= acked, with no gap, and every entry in it reads back with the data
// and term that terms gives it (terms[i] for index i; 1 past its end). It returns last.
func checkCrashStore(t *testing.T, s *LogStore, wantFirst, acked uint64, terms []uint64) uint64 {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if acked > 0 && (first != wantFirst || last < acked) {
		t.Fatalf("store holds [%d, %d], want [%d, >= %d]", first, last, wantFirst, acked)
	}
	var l raft.Log
	for i := first; i <= last && i > 0; i++ {
		term := uint64(1)
		if i < uint64(len(terms)) {
			term = terms[i]
		}
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("store holds [%d, %d] but GetLog(%d): %v", first, last, i, err)
		}
		if l.Index != i || l.Term != term || !bytes.Equal(l.Data, crashData(i, term)) {
			t.Fatalf("GetLog(%d) = index %d term %d data %q, want term %d", i, l.Index, l.Term, l.Data, term)
		}
	}
	commit, err := s.GetCommitIndex()
	if err != nil || commit > last {
		t.Fatalf("GetCommitIndex = %d, %v with last index %d", commit, err, last)
	}
	return last
}

// TestSIGKILLDuringStoreLogsLosesNoAcknowledgedEntry kills a child process at random points of a
// StoreLogs loop, again and again on one store, and checks the store after every kill.
func TestSIGKILLDuringStoreLogsLosesNoAcknowledgedEntry(t *testing.T) {
	runs := 100
	if testing.Short() {
		runs = 10
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var acked uint64
	for run := range runs {
		acked = max(acked, killChild(t, dir, 1+rng.IntN(60)))
		s := openLogStore(t, dir, crashOptions)
		last := checkCrashStore(t, s, 1, acked, nil)
		if err := s.Close(); err != nil {
			t.Fatalf("run %d: close: %v", run, err)
		}
		acked = last
	}
}

// killChild starts a crash child on dir, SIGKILLs it once it has acknowledged killAfter batches, and
// returns the highest index it acknowledged.
func killChild(t *testing.T, dir string, killAfter int) uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The deadline: a child that stops acknowledging is killed and fails the test below.
	watchdog := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer watchdog.Stop()
	var acked uint64
	lines := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		i, err := strconv.ParseUint(sc.Text(), 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		acked = max(acked, i)
		if lines++; lines == killAfter {
			cmd.Process.Kill() // SIGKILL; the lines already printed are still read
		}
	}
	cmd.Wait()
	if lines < killAfter {
		t.Fatalf("child stopped after %d of %d acknowledgements: %s", lines, killAfter, stderr.String())
	}
	return acked
}

// TestLostUnsyncedWritesLoseNoAcknowledgedEntry simulates power losses through storelog's fault
// file system: whatever was not fsynced is dropped, torn or zeroed at random, sometimes in the middle
// of a StoreLogs whose fsync failed, and the store must come back with every acknowledged entry, with
// its compactions and tail deletions intact, and no entry from before a tail deletion resurrected.
func TestLostUnsyncedWritesLoseNoAcknowledgedEntry(t *testing.T) {
	rounds := 200
	if testing.Short() {
		rounds = 30
	}
	is := is.New(t)
	dir := t.TempDir()
	fs := faultfs.New()
	opts := crashOptions
	opts.FS = fs
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	t.Logf("seed %d", seed)

	terms := []uint64{0} // terms[i] is the term of the entry at index i
	term, first, acked := uint64(1), uint64(1), uint64(0)
	s := openLogStore(t, dir, opts)
	for round := range rounds {
		for range rng.IntN(40) {
			switch n := rng.IntN(20); {
			case n == 0 && acked > first+10: // compaction
				upTo := first + rng.Uint64N(acked-first)
				is.NoErr(s.DeleteRange(first, upTo))
				first = upTo + 1
			case n == 1 && acked > first+10: // a conflict cuts the tail; the new leader's term follows
				from := acked - rng.Uint64N(acked-first)
				is.NoErr(s.DeleteRange(from, acked))
				acked, terms = from-1, terms[:from]
				term++
			default:
				logs := crashBatch(acked+1, 1+rng.IntN(24), term)
				is.NoErr(s.StoreLogs(logs))
				for range logs {
					terms = append(terms, term)
				}
				acked += uint64(len(logs))
			}
		}
		if rng.IntN(2) == 0 {
			// A batch written but never acknowledged: its fsync fails, then the power goes.
			fs.SetFault(faultfs.Fail(faultfs.OpSync, ".store"))
			logs := crashBatch(acked+1, 1+rng.IntN(24), term)
			is.True(s.StoreLogs(logs) != nil)
			fs.SetFault(nil)
			for range logs {
				terms = append(terms, term)
			}
		}
		is.NoErr(fs.Crash(rng))
		s.Close() // fails: its files are from before the crash
		s = openLogStore(t, dir, opts)
		last := checkCrashStore(t, s, first, acked, terms)
		if last < acked || last >= uint64(len(terms)) {
			t.Fatalf("round %d: last index %d, acknowledged %d, written %d", round, last, acked, len(terms)-1)
		}
		acked, terms = last, terms[:last+1]
		if acked < first {
			first = acked + 1 // everything was compacted: the next batch starts the log anew there
		}
	}
}

package chaos

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/server/localcluster"
	"github.com/matryer/is"
)

// syncBuffer collects the run's log for a failed test's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail is the end of the log: the nodes can say a lot.
func (b *syncBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 64<<10 {
		s = "...\n" + s[len(s)-64<<10:]
	}
	return s
}

// runChaos builds dislog with tags and makes a run of cfg with it, logging the report.
func runChaos(t *testing.T, cfg Config, tags ...string) *Report {
	t.Helper()
	if testing.Short() {
		t.Skip("a chaos run of dislog processes: skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := localcluster.BuildDislog(ctx, t.TempDir(), tags...)
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	cfg.Bin, cfg.Log = bin, log
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("%v\nthe run's log:\n%s", err, log.tail())
	}
	var out bytes.Buffer
	rep.WriteText(&out)
	t.Log("\n" + out.String())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the run's log:\n%s", log.tail())
		}
	})
	return rep
}

// TestHealthyClusterPassesEveryCheckThroughEveryFault runs a 3-node cluster with two topics of two
// partitions through every kind of fault but remove-readd (which takes half a minute: the next
// test), each at least twice, with a rate that keeps porcupine's work small, and expects every
// check to pass.
func TestHealthyClusterPassesEveryCheckThroughEveryFault(t *testing.T) {
	is := is.New(t)
	faults := []Fault{Kill, Pause, PartitionLeader, PartitionSplit, PartitionOneWay, LeaderMove}
	rep := runChaos(t, Config{
		Nodes: 3, Duration: 90 * time.Second, Seed: 8, Clients: 6, Topics: 2, Partitions: 2, Rate: 300,
		Faults: faults, FaultDuration: 2500 * time.Millisecond, FaultInterval: 1500 * time.Millisecond,
	})
	for _, f := range faults {
		if rep.Injected[f] < 2 {
			t.Errorf("%s injected %d times, want at least 2", f, rep.Injected[f])
		}
	}
	is.True(rep.Ops[OpProduce].OK > 1000) // the clients got work done between the faults
	is.True(rep.Ops[OpRead].OK > 500)
	is.True(rep.Ops[OpFetch].OK > 100)
	for _, c := range rep.Checks {
		if c.Verdict != Pass {
			t.Errorf("%s: %s: %s %v", c.Name, c.Verdict, c.Summary, c.Details)
		}
	}
	is.True(rep.Valid())
}

// TestANodeRemovedForGoodIsReplacedByAnEmptyOne kills a node of three for good: the cluster
// removes it past the failed-remove grace period and places its partitions' replicas on the other
// two, a new node takes its place under a new ID, and every check passes, each partition read back
// from the replicas it has in the end.
func TestANodeRemovedForGoodIsReplacedByAnEmptyOne(t *testing.T) {
	is := is.New(t)
	rep := runChaos(t, Config{
		Nodes: 3, Duration: 45 * time.Second, Seed: 3, Clients: 4, Topics: 2, Partitions: 2, Rate: 200,
		Faults: []Fault{RemoveReadd}, MaxFaults: 1, FaultInterval: time.Second, FailedRemoveAfter: 5 * time.Second,
	})
	is.Equal(rep.Injected[RemoveReadd], 1)
	is.True(strings.Contains(rep.Faults[0].What, "-2 added empty in its place")) // a new node, a new ID
	is.True(rep.Ops[OpProduce].OK > 500)
	for _, c := range rep.Checks {
		if c.Verdict != Pass {
			t.Errorf("%s: %s: %s %v", c.Name, c.Verdict, c.Summary, c.Details)
		}
	}
}

// TestBrokenServerLosesAcknowledgedWritesWhenItsLeaderIsCutOff runs the dislog_unsafe build, whose
// leader acknowledges the produces it holds when it loses its leadership, through partitions of
// the leader: the clients, which are never cut off, go on producing to the isolated leader until
// it steps down, and the checker must find the writes it acknowledged lost.
func TestBrokenServerLosesAcknowledgedWritesWhenItsLeaderIsCutOff(t *testing.T) {
	is := is.New(t)
	rep := runChaos(t, Config{
		Nodes: 3, Duration: 15 * time.Second, Seed: 1, Clients: 6, Topics: 1, Rate: 500,
		Faults: []Fault{PartitionLeader}, MaxFaults: 3, FaultDuration: 2 * time.Second, FaultInterval: 2 * time.Second,
	}, "dislog_unsafe")
	is.True(rep.Injected[PartitionLeader] >= 1)
	lost := rep.Check("no lost acknowledged writes")
	is.True(lost != nil)
	is.Equal(lost.Verdict, Fail) // the acknowledged writes of the cut-off leader are gone
	is.True(!rep.Valid())
}

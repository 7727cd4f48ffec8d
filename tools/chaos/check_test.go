package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

// ms is a time in a test history.
func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func produce(client int, value string, offset uint64, call, ret int, outcome Outcome) Op {
	return Op{Client: client, Kind: OpProduce, Topic: "t", Value: value, Offset: offset, Call: ms(call), Return: ms(ret), Outcome: outcome}
}

func read(client int, offset uint64, value string, call, ret int) Op {
	return Op{Client: client, Kind: OpRead, Topic: "t", Offset: offset, Value: value, OutOfRange: value == "", Call: ms(call), Return: ms(ret), Outcome: OK, Node: "node2"}
}

// oneTopic is what nodes read back of partition 0 of topic t, node i's values at i; node1 leads.
func oneTopic(nodes ...[]string) *finalLogs {
	var names []string
	for i := range nodes {
		names = append(names, "node"+string(rune('1'+i)))
	}
	t0 := Log{Topic: "t"}
	l := newFinalLogs(names, []Log{t0})
	for i, values := range nodes {
		l.add(t0, i, values, nil)
	}
	return l
}

func TestLinearizabilityOfALogHistory(t *testing.T) {
	tests := []struct {
		name    string
		ops     []Op
		final   []string
		verdict Verdict
		explain string // in the details of a failure
	}{
		{
			name: "concurrent produces and reads that agree pass",
			ops: []Op{
				produce(0, "a", 0, 0, 10, OK), produce(1, "b", 1, 5, 20, OK),
				read(2, 1, "b", 15, 18), // b's produce had not returned, but it was written
				read(2, 2, "", 21, 22),
			},
			final: []string{"a", "b"}, verdict: Pass,
		},
		{
			name: "an indeterminate produce may land at any later point",
			ops: []Op{
				produce(0, "x", 0, 0, 10, Indeterminate), produce(1, "a", 0, 20, 30, OK),
				produce(1, "b", 2, 40, 50, OK), read(2, 1, "x", 60, 70),
			},
			final: []string{"a", "x", "b"}, verdict: Pass,
		},
		{
			name:  "an indeterminate produce that never landed passes too",
			ops:   []Op{produce(0, "x", 0, 0, 10, Indeterminate), produce(1, "a", 0, 20, 30, OK), read(2, 1, "", 40, 50)},
			final: []string{"a"}, verdict: Pass,
		},
		{
			name:  "OUT_OF_RANGE after the write was acknowledged is a stale read",
			ops:   []Op{produce(0, "a", 0, 0, 10, OK), read(1, 0, "", 20, 30)},
			final: []string{"a"}, verdict: Fail, explain: "stale read: client 1: read t/0@0 on node2",
		},
		{
			name:  "OUT_OF_RANGE after another read saw the offset is a stale read",
			ops:   []Op{produce(0, "a", 0, 0, 100, OK), read(1, 0, "a", 10, 20), read(2, 0, "", 30, 40)},
			final: []string{"a"}, verdict: Fail, explain: "stale read: client 2",
		},
		{
			name:  "two produces acknowledged at one offset fail",
			ops:   []Op{produce(0, "a", 0, 0, 10, OK), produce(1, "b", 0, 0, 10, OK)},
			final: []string{"a"}, verdict: Fail, explain: "one offset acknowledged twice",
		},
		{
			name:  "a read of a value the offset does not hold fails",
			ops:   []Op{produce(0, "a", 0, 0, 10, OK), read(1, 0, "zz", 20, 30)},
			final: []string{"a"}, verdict: Fail, explain: `wrong value: client 1: read t/0@0 on node2, [20ms, 30ms] -> "zz"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			cfg := Config{Bin: "dislog"}
			is.NoErr(cfg.setDefaults())
			c := checkLinearizable(&cfg, tc.ops, oneTopic(tc.final))
			is.Equal(c.Verdict, tc.verdict)
			if tc.explain != "" && !strings.Contains(strings.Join(c.Details, "\n"), tc.explain) {
				t.Errorf("details %q lack %q", c.Details, tc.explain)
			}
		})
	}
}

func TestLostDuplicatedPhantomAndInconsistentRecordsAreFound(t *testing.T) {
	is := is.New(t)
	ops := []Op{
		produce(0, "a", 0, 0, 10, OK),
		produce(0, "b", 1, 20, 30, OK),     // acknowledged, then lost
		produce(1, "c", 0, 20, 30, Failed), // refused: may not be in the log, may be named
		produce(1, "d", 0, 40, 50, Indeterminate),
	}
	logs := oneTopic([]string{"a", "d", "d", "e"}, []string{"a", "d", "x"})

	lost := checkNoLostWrites(ops, logs)
	is.Equal(lost.Verdict, Fail)
	is.Equal(lost.Violations, 1)
	is.True(strings.Contains(lost.Details[0], `offset 1 of t/0 on node1 holds "d", and the value is nowhere in the partition`))

	dups := checkNoDuplicates(logs)
	is.Equal(dups.Violations, 1)
	is.True(strings.Contains(dups.Details[0], `value "d" at offsets 1 and 2`))

	phantoms := checkNoPhantoms(ops, logs)
	is.Equal(phantoms.Violations, 2) // "e" on node1, "x" on node2

	cons := checkConsistent(logs)
	is.Equal(cons.Violations, 2) // offset 2 differs, and the lengths
	is.True(strings.Contains(cons.Details[0], `t/0 offset 2: "d" on node1, "x" on node2`))

	is.Equal(checkNoLostWrites(ops[:1], logs).Verdict, Pass)
	is.Equal(checkConsistent(oneTopic([]string{"a"}, []string{"a"})).Verdict, Pass)
}

func TestConsumerOffsets(t *testing.T) {
	commit := func(offset uint64, at int, outcome Outcome) Op {
		return Op{Client: 0, Kind: OpCommit, Topic: "t", Group: "g0", Offset: offset, Call: ms(at), Return: ms(at + 1), Outcome: outcome}
	}
	fetch := func(offset uint64, committed bool, at int) Op {
		return Op{Client: 0, Kind: OpFetch, Topic: "t", Group: "g0", Offset: offset, Committed: committed, Call: ms(at), Return: ms(at + 1), Outcome: OK}
	}
	tests := []struct {
		name       string
		ops        []Op
		violations int
		stale      bool
	}{
		{"fetches of the last commit pass", []Op{fetch(0, false, 0), commit(3, 10, OK), fetch(3, true, 20), commit(5, 30, OK), fetch(5, true, 40)}, 0, false},
		{"a fetch below an acknowledged commit fails", []Op{commit(3, 10, OK), commit(5, 20, OK), fetch(3, true, 30)}, 1, false},
		{"no offset after an acknowledged commit fails", []Op{commit(3, 10, OK), fetch(0, false, 20)}, 1, false},
		{"an offset never committed fails", []Op{commit(3, 10, OK), fetch(4, true, 20)}, 1, false},
		{"a fetch below the previous one fails", []Op{commit(3, 10, OK), commit(5, 20, Indeterminate), fetch(5, true, 30), fetch(3, true, 40)}, 1, false},
		{"a fetch going back to an indeterminate commit is a stale overwrite", []Op{commit(3, 10, Indeterminate), commit(5, 20, Indeterminate), fetch(5, true, 30), fetch(3, true, 40)}, 0, true},
		{"an indeterminate commit applied late is a stale overwrite, no violation", []Op{commit(3, 10, Indeterminate), commit(5, 20, OK), fetch(3, true, 30)}, 0, true},
		{"a refused commit does not count", []Op{commit(3, 10, Failed), fetch(3, true, 20)}, 1, false},
		{"commits must increase", []Op{commit(5, 10, OK), commit(5, 20, OK)}, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			c := checkOffsets(tc.ops)
			is.Equal(c.Violations, tc.violations)
			is.Equal(!strings.Contains(c.Summary, " 0 stale overwrites"), tc.stale)
		})
	}
}

// Each partition is a log of its own: the same offsets in two partitions of a topic are no
// conflict, a value must be in the partition it was produced to, only the nodes that hold a
// replica are compared, and consumer offsets are per partition.
func TestChecksTakeEachPartitionOnItsOwn(t *testing.T) {
	is := is.New(t)
	p0, p1 := Log{Topic: "t", Partition: 0}, Log{Topic: "t", Partition: 1}
	on := func(op Op, p int) Op { op.Partition = p; return op }
	ops := []Op{
		on(produce(0, "a", 0, 0, 10, OK), 0),
		on(produce(1, "b", 0, 0, 10, OK), 1), // offset 0 again, in another partition
		on(read(2, 0, "b", 20, 30), 1),
		on(read(2, 1, "", 20, 30), 0),
		on(produce(1, "c", 1, 40, 50, OK), 1),
	}
	// Partition 0 on node1 and node2 (node2 leads), partition 1 on node2 and node3; node3's
	// copy of partition 1 lacks c.
	logs := newFinalLogs([]string{"node1", "node2", "node3"}, []Log{p0, p1})
	logs.add(p0, 0, []string{"a"}, nil)
	logs.add(p0, 1, []string{"a"}, nil)
	logs.add(p1, 1, []string{"b", "c"}, nil)
	logs.add(p1, 2, []string{"b"}, nil)
	logs.ref[p0], logs.ref[p1] = 1, 1

	is.Equal(checkNoLostWrites(ops, logs).Verdict, Pass)
	is.Equal(checkNoDuplicates(logs).Verdict, Pass)
	is.Equal(checkNoPhantoms(ops, logs).Verdict, Pass)
	cfg := Config{Bin: "dislog"}
	is.NoErr(cfg.setDefaults())
	lin := checkLinearizable(&cfg, ops, logs)
	is.Equal(lin.Verdict, Pass)
	is.True(strings.Contains(lin.Summary, "in 2 partitions"))
	cons := checkConsistent(logs)
	is.Equal(cons.Violations, 1) // node3's partition 1 is short; node1 and node3 are not compared with each other
	is.True(strings.Contains(cons.Details[0], "t/1: 2 records on node2, 1 on node3"))

	// A value found in the other partition of its topic is a phantom there, and lost here.
	moved := newFinalLogs([]string{"node1"}, []Log{p0, p1})
	moved.add(p0, 0, []string{"a", "c"}, nil)
	moved.add(p1, 0, []string{"b"}, nil)
	phantoms := checkNoPhantoms(ops, moved)
	is.Equal(phantoms.Violations, 1)
	is.True(strings.Contains(phantoms.Details[0], `t/0 on node1: offset 1 holds "c", which no client produced to t/0`))
	is.Equal(checkNoLostWrites(ops, moved).Violations, 1)

	// Commits on partition 0 say nothing of partition 1's offset.
	offsets := checkOffsets([]Op{
		{Client: 0, Kind: OpCommit, Topic: "t", Partition: 0, Group: "g0", Offset: 3, Call: ms(10), Return: ms(11), Outcome: OK},
		{Client: 0, Kind: OpFetch, Topic: "t", Partition: 1, Group: "g0", Call: ms(20), Return: ms(21), Outcome: OK},
		{Client: 0, Kind: OpFetch, Topic: "t", Partition: 0, Group: "g0", Offset: 3, Committed: true, Call: ms(30), Return: ms(31), Outcome: OK},
	})
	is.Equal(offsets.Violations, 0)
	is.True(strings.Contains(offsets.Summary, "2 groups and partitions"))
}

func TestFlagEditsOfACommandLine(t *testing.T) {
	is := is.New(t)
	args := []string{"--data-dir", "/d/node1", "--node-id", "node1", "--bootstrap", "--join", "a:1,b:2", "--addr", "x:1"}
	is.Equal(flagValue(args, "--node-id"), "node1")
	is.Equal(flagValue(args, "--serf-addr"), "")
	args = dropFlag(args, "--bootstrap", false)
	args = dropFlag(args, "--join", true)
	args = setFlag(args, "--node-id", "node1-2")
	args = setFlag(args, "--serf-addr", "y:2")
	is.Equal(args, []string{"--data-dir", "/d/node1", "--node-id", "node1-2", "--addr", "x:1", "--serf-addr", "y:2"})
}

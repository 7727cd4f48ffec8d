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

func oneTopic(nodes ...[]string) *finalLogs {
	l := &finalLogs{topics: []string{"t"}, values: map[string][][]string{"t": nodes}, errs: map[string][]error{"t": make([]error, len(nodes))}}
	for i := range nodes {
		l.nodes = append(l.nodes, "node"+string(rune('1'+i)))
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
			final: []string{"a"}, verdict: Fail, explain: "stale read: client 1: read t@0 on node2",
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
			final: []string{"a"}, verdict: Fail, explain: `wrong value: client 1: read t@0 on node2, [20ms, 30ms] -> "zz"`,
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
	is.True(strings.Contains(lost.Details[0], `offset 1 of t on node1 holds "d", and the value is nowhere in the topic`))

	dups := checkNoDuplicates(logs)
	is.Equal(dups.Violations, 1)
	is.True(strings.Contains(dups.Details[0], `value "d" at offsets 1 and 2`))

	phantoms := checkNoPhantoms(ops, logs)
	is.Equal(phantoms.Violations, 2) // "e" on node1, "x" on node2

	cons := checkConsistent(logs)
	is.Equal(cons.Violations, 2) // offset 2 differs, and the lengths
	is.True(strings.Contains(cons.Details[0], `t offset 2: "d" on node1, "x" on node2`))

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

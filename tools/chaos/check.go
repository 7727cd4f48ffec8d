package chaos

import (
	"cmp"
	"fmt"
	"slices"
)

// Verdict is what a checker concluded.
type Verdict string

const (
	// Pass: no violation.
	Pass Verdict = "pass"
	// Fail: at least one violation.
	Fail Verdict = "fail"
	// Unknown: the checker could not decide (porcupine ran out of time).
	Unknown Verdict = "unknown"
)

// maxDetails bounds the violations a check lists; Violations counts them all.
const maxDetails = 20

// Check is one checker's verdict.
type Check struct {
	Name       string  `json:"name"`
	Verdict    Verdict `json:"verdict"`
	Summary    string  `json:"summary"`
	Violations int     `json:"violations"`
	// Details are the first violations, each naming the operations, nodes and answers involved.
	Details []string `json:"details,omitempty"`
}

func (c *Check) violation(format string, args ...any) {
	c.Violations++
	c.Verdict = Fail
	if len(c.Details) < maxDetails {
		c.Details = append(c.Details, fmt.Sprintf(format, args...))
	}
}

// finalLogs is what the run read back after healing: for each partition of each topic (a log),
// the values by offset of each node that holds a replica of it (nodes whose read failed have an
// error instead).
type finalLogs struct {
	nodes []string // by index
	logs  []Log
	// holders are, per log, the nodes that hold a replica, which were read back.
	holders map[Log][]int
	values  map[Log][][]string // log → node → values (nil for a node that holds none)
	errs    map[Log][]error    // log → node → error of the read
	// ref is, per log, the node whose values are checked against the acknowledgements: the
	// partition's leader (checkConsistent checks that the other replicas hold the same).
	ref map[Log]int
}

func newFinalLogs(nodes []string, logs []Log) *finalLogs {
	return &finalLogs{nodes: nodes, logs: logs, holders: map[Log][]int{}, values: map[Log][][]string{}, errs: map[Log][]error{}, ref: map[Log]int{}}
}

// add records what node n read of log l.
func (f *finalLogs) add(l Log, n int, values []string, err error) {
	if f.values[l] == nil {
		f.values[l] = make([][]string, len(f.nodes))
		f.errs[l] = make([]error, len(f.nodes))
	}
	f.holders[l] = append(f.holders[l], n)
	f.values[l][n], f.errs[l][n] = values, err
}

func (f *finalLogs) refLog(l Log) []string {
	if f.values[l] == nil {
		return nil
	}
	return f.values[l][f.ref[l]]
}

// CheckNoLostWrites: every acknowledged produce's value is at the offset it was acknowledged at,
// in the reference node's final log of its partition.
func checkNoLostWrites(ops []Op, logs *finalLogs) Check {
	c := Check{Name: "no lost acknowledged writes", Verdict: Pass}
	where := map[Log]map[string][]int{} // log → value → offsets
	for _, l := range logs.logs {
		where[l] = map[string][]int{}
		for off, v := range logs.refLog(l) {
			where[l][v] = append(where[l][v], off)
		}
	}
	acked := 0
	for i := range ops {
		op := &ops[i]
		if op.Kind != OpProduce || op.Outcome != OK {
			continue
		}
		acked++
		l := op.Log()
		log := logs.refLog(l)
		if op.Offset < uint64(len(log)) && log[op.Offset] == op.Value {
			continue
		}
		held := "nothing: the partition ends before it"
		if op.Offset < uint64(len(log)) {
			held = fmt.Sprintf("%q", log[op.Offset])
		}
		found := "the value is nowhere in the partition"
		if offs := where[l][op.Value]; len(offs) > 0 {
			found = fmt.Sprintf("the value is at offset(s) %v", offs)
		}
		c.violation("%s; in the end offset %d of %s on %s holds %s, and %s", op, op.Offset, l, logs.nodes[logs.ref[l]], held, found)
	}
	if c.Verdict == Pass {
		c.Summary = fmt.Sprintf("all %d acknowledged writes are at their offsets", acked)
	} else {
		c.Summary = fmt.Sprintf("%d of %d acknowledged writes lost or moved", c.Violations, acked)
	}
	return c
}

// checkNoDuplicates: no value is twice in a partition, on any replica.
func checkNoDuplicates(logs *finalLogs) Check {
	c := Check{Name: "no duplicates", Verdict: Pass}
	records := 0
	for _, l := range logs.logs {
		for _, n := range logs.holders[l] {
			first := map[string]int{}
			for off, v := range logs.values[l][n] {
				records++
				if prev, ok := first[v]; ok {
					c.violation("%s on %s: value %q at offsets %d and %d", l, logs.nodes[n], v, prev, off)
					continue
				}
				first[v] = off
			}
		}
	}
	c.Summary = fmt.Sprintf("%d records read on all replicas, %d duplicates", records, c.Violations)
	return c
}

// checkNoPhantoms: every value in a partition was produced, to that partition, by a client of the
// run.
func checkNoPhantoms(ops []Op, logs *finalLogs) Check {
	c := Check{Name: "no phantom values", Verdict: Pass}
	produced := map[string]Log{} // value → partition
	for i := range ops {
		if ops[i].Kind == OpProduce {
			produced[ops[i].Value] = ops[i].Log()
		}
	}
	for _, l := range logs.logs {
		for _, n := range logs.holders[l] {
			for off, v := range logs.values[l][n] {
				if p, ok := produced[v]; !ok || p != l {
					c.violation("%s on %s: offset %d holds %q, which no client produced to %s", l, logs.nodes[n], off, v, l)
				}
			}
		}
	}
	c.Summary = fmt.Sprintf("%d values that no client produced", c.Violations)
	return c
}

// checkConsistent: every replica of a partition holds the same values at the same offsets, to the
// same end.
func checkConsistent(logs *finalLogs) Check {
	c := Check{Name: "consistent offsets on every node", Verdict: Pass}
	total, shortest, longest := 0, -1, 0
	for _, l := range logs.logs {
		ref := logs.refLog(l)
		if len(logs.holders[l]) == 0 {
			c.violation("%s: no replica was read back", l)
		}
		for _, n := range logs.holders[l] {
			log := logs.values[l][n]
			if err := logs.errs[l][n]; err != nil {
				c.violation("%s on %s: reading it back failed after %d records: %v", l, logs.nodes[n], len(log), err)
				continue
			}
			if n == logs.ref[l] {
				continue
			}
			for off := range min(len(log), len(ref)) {
				if log[off] != ref[off] {
					c.violation("%s offset %d: %q on %s, %q on %s", l, off, ref[off], logs.nodes[logs.ref[l]], log[off], logs.nodes[n])
					break
				}
			}
			if len(log) != len(ref) {
				c.violation("%s: %d records on %s, %d on %s", l, len(ref), logs.nodes[logs.ref[l]], len(log), logs.nodes[n])
			}
		}
		total += len(ref)
		if shortest < 0 || len(ref) < shortest {
			shortest = len(ref)
		}
		longest = max(longest, len(ref))
	}
	replicas := 0
	for _, l := range logs.logs {
		replicas += len(logs.holders[l])
	}
	c.Summary = fmt.Sprintf("%d nodes; %d partitions of %d to %d records, %d in all, read from %d replicas", len(logs.nodes), len(logs.logs), max(shortest, 0), longest, total, replicas)
	return c
}

// checkOffsets checks each consumer group's committed offsets. One client owns each group and
// makes one call at a time, so its operations are ordered. Per group and partition of a topic:
//
//   - the client commits strictly increasing offsets (commits that were refused aside);
//   - a fetch that succeeds returns an offset the group committed or tried to commit before the
//     fetch, never one it did not;
//   - it says "no offset committed" only if no commit was acknowledged before it;
//   - it never returns less than the highest commit acknowledged before it, nor less than the
//     previous fetch returned, unless the offset it returns is that of a commit whose outcome was
//     indeterminate: such a request may still be applied after later commits (the group's offset
//     is the last commit applied, as in Kafka), which is allowed and counted as a stale overwrite.
func checkOffsets(ops []Op) Check {
	c := Check{Name: "consumer offsets monotonic", Verdict: Pass}
	type key struct {
		group string
		log   Log
	}
	byKey := map[key][]*Op{}
	var keys []key
	for i := range ops {
		op := &ops[i]
		if op.Kind != OpCommit && op.Kind != OpFetch {
			continue
		}
		k := key{op.Group, op.Log()}
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], op)
	}
	commits, fetches, stale := 0, 0, 0
	for _, k := range keys {
		seq := byKey[k]
		slices.SortFunc(seq, func(a, b *Op) int { return cmp.Compare(a.Call, b.Call) })
		var (
			tried         = map[uint64]Outcome{} // offsets committed (ok or indeterminate)
			lastCommit    = int64(-1)
			ackedMax      = int64(-1)
			lastFetch     = int64(-1)
			lastFetchedOp *Op
		)
		for _, op := range seq {
			switch {
			case op.Kind == OpCommit && op.Outcome != Failed:
				commits++
				if int64(op.Offset) <= lastCommit {
					c.violation("%s: not above the group's previous commit %d (a harness bug)", op, lastCommit)
				}
				lastCommit = int64(op.Offset)
				tried[op.Offset] = op.Outcome
				if op.Outcome == OK {
					ackedMax = int64(op.Offset)
				}
			case op.Kind == OpFetch && op.Outcome == OK:
				fetches++
				if !op.Committed {
					if ackedMax >= 0 {
						c.violation("%s: but offset %d was acknowledged before", op, ackedMax)
					}
					continue
				}
				got := int64(op.Offset)
				outcome, ok := tried[op.Offset]
				switch {
				case !ok:
					c.violation("%s: the group never committed offset %d", op, op.Offset)
				case got < ackedMax && outcome != Indeterminate:
					c.violation("%s: below offset %d, acknowledged before", op, ackedMax)
				case got < lastFetch && outcome != Indeterminate:
					c.violation("%s: below the previous fetch (%s)", op, lastFetchedOp)
				case got < ackedMax || got < lastFetch:
					stale++
				}
				lastFetch, lastFetchedOp = got, op
			}
		}
	}
	c.Summary = fmt.Sprintf("%d groups and partitions, %d commits, %d fetches, %d stale overwrites by indeterminate commits", len(keys), commits, fetches, stale)
	return c
}

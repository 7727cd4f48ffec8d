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

// finalLogs is what the run read back after healing: for each topic, each node's values by offset
// (nodes whose read failed have an error instead).
type finalLogs struct {
	nodes  []string
	topics []string
	values map[string][][]string // topic → node → values
	errs   map[string][]error    // topic → node → error of the read
	// ref is node ref's values of each topic: the leader's, against which acknowledgements are
	// checked (CheckConsistent checks that the others hold the same).
	ref int
}

func (f *finalLogs) refLog(topic string) []string { return f.values[topic][f.ref] }

// CheckNoLostWrites: every acknowledged produce's value is at the offset it was acknowledged at,
// in the reference node's final log.
func checkNoLostWrites(ops []Op, logs *finalLogs) Check {
	c := Check{Name: "no lost acknowledged writes", Verdict: Pass}
	where := map[string]map[string][]int{} // topic → value → offsets
	for _, t := range logs.topics {
		where[t] = map[string][]int{}
		for off, v := range logs.refLog(t) {
			where[t][v] = append(where[t][v], off)
		}
	}
	acked := 0
	for i := range ops {
		op := &ops[i]
		if op.Kind != OpProduce || op.Outcome != OK {
			continue
		}
		acked++
		log := logs.refLog(op.Topic)
		if op.Offset < uint64(len(log)) && log[op.Offset] == op.Value {
			continue
		}
		held := "nothing: the topic ends before it"
		if op.Offset < uint64(len(log)) {
			held = fmt.Sprintf("%q", log[op.Offset])
		}
		found := "the value is nowhere in the topic"
		if offs := where[op.Topic][op.Value]; len(offs) > 0 {
			found = fmt.Sprintf("the value is at offset(s) %v", offs)
		}
		c.violation("%s; in the end offset %d of %s on %s holds %s, and %s", op, op.Offset, op.Topic, logs.nodes[logs.ref], held, found)
	}
	if c.Verdict == Pass {
		c.Summary = fmt.Sprintf("all %d acknowledged writes are at their offsets", acked)
	} else {
		c.Summary = fmt.Sprintf("%d of %d acknowledged writes lost or moved", c.Violations, acked)
	}
	return c
}

// checkNoDuplicates: no value is twice in a topic, on any node.
func checkNoDuplicates(logs *finalLogs) Check {
	c := Check{Name: "no duplicates", Verdict: Pass}
	records := 0
	for _, t := range logs.topics {
		for n, log := range logs.values[t] {
			first := map[string]int{}
			for off, v := range log {
				records++
				if prev, ok := first[v]; ok {
					c.violation("%s on %s: value %q at offsets %d and %d", t, logs.nodes[n], v, prev, off)
					continue
				}
				first[v] = off
			}
		}
	}
	c.Summary = fmt.Sprintf("%d records read on all nodes, %d duplicates", records, c.Violations)
	return c
}

// checkNoPhantoms: every value in a topic was produced, to that topic, by a client of the run.
func checkNoPhantoms(ops []Op, logs *finalLogs) Check {
	c := Check{Name: "no phantom values", Verdict: Pass}
	produced := map[string]string{} // value → topic
	for i := range ops {
		if ops[i].Kind == OpProduce {
			produced[ops[i].Value] = ops[i].Topic
		}
	}
	for _, t := range logs.topics {
		for n, log := range logs.values[t] {
			for off, v := range log {
				if produced[v] != t {
					c.violation("%s on %s: offset %d holds %q, which no client produced to %s", t, logs.nodes[n], off, v, t)
				}
			}
		}
	}
	c.Summary = fmt.Sprintf("%d values that no client produced", c.Violations)
	return c
}

// checkConsistent: every node holds the same values at the same offsets, to the same end.
func checkConsistent(logs *finalLogs) Check {
	c := Check{Name: "consistent offsets on every node", Verdict: Pass}
	for _, t := range logs.topics {
		ref := logs.refLog(t)
		for n, log := range logs.values[t] {
			if err := logs.errs[t][n]; err != nil {
				c.violation("%s on %s: reading it back failed after %d records: %v", t, logs.nodes[n], len(log), err)
				continue
			}
			if n == logs.ref {
				continue
			}
			for off := range min(len(log), len(ref)) {
				if log[off] != ref[off] {
					c.violation("%s offset %d: %q on %s, %q on %s", t, off, ref[off], logs.nodes[logs.ref], log[off], logs.nodes[n])
					break
				}
			}
			if len(log) != len(ref) {
				c.violation("%s: %d records on %s, %d on %s", t, len(ref), logs.nodes[logs.ref], len(log), logs.nodes[n])
			}
		}
	}
	lens := make([]int, len(logs.topics))
	for i, t := range logs.topics {
		lens[i] = len(logs.refLog(t))
	}
	c.Summary = fmt.Sprintf("%d nodes, topics of %v records", len(logs.nodes), lens)
	return c
}

// checkOffsets checks each consumer group's committed offsets. One client owns each group and
// makes one call at a time, so its operations are ordered. Per group and topic:
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
	type key struct{ group, topic string }
	byKey := map[key][]*Op{}
	var keys []key
	for i := range ops {
		op := &ops[i]
		if op.Kind != OpCommit && op.Kind != OpFetch {
			continue
		}
		k := key{op.Group, op.Topic}
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
	c.Summary = fmt.Sprintf("%d groups and topics, %d commits, %d fetches, %d stale overwrites by indeterminate commits", len(keys), commits, fetches, stale)
	return c
}

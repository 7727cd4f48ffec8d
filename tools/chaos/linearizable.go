package chaos

import (
	"fmt"
	"hash/maphash"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/benbjohnson/immutable"
)

// The model of one partition of a topic for porcupine: a log that produces append to and reads index.
//
//	produce(v) -> o        legal iff o == len(log); then log = log + [v]
//	produce(v) -> unknown  (indeterminate) always legal; log = log + [v]
//	read(o) -> v           legal iff o < len(log) and log[o] == v
//	read(o) -> OUT_OF_RANGE legal iff o >= len(log)
//
// An indeterminate produce never returned: following porcupine's convention its return time is
// after every other operation's, so it may take effect at any point after its call, or, placed
// last, not at all. Failed produces did nothing and are left out, and so are reads that got no
// answer. Only reads with read_your_writes are in the history, the reads the server promises to
// be linearizable.

type produceInput struct{ value string }

type produceOutput struct {
	offset  uint64
	unknown bool
}

type readInput struct{ offset uint64 }

type readOutput struct {
	value      string
	outOfRange bool
}

// logState is an immutable log: a persistent vector for reads by offset, and a list of cells,
// newest first, that shares its tail with the state it came from, so that telling two states
// apart stops where their histories meet.
type logState struct {
	n    int
	hash uint64
	vals *immutable.List[string]
	last *cell
}

type cell struct {
	value string
	prev  *cell
}

var hashSeed = maphash.MakeSeed()

func (s logState) append(v string) logState {
	return logState{
		n:    s.n + 1,
		hash: (s.hash ^ maphash.String(hashSeed, v)) * 1099511628211,
		vals: s.vals.Append(v),
		last: &cell{value: v, prev: s.last},
	}
}

func (s logState) equal(o logState) bool {
	if s.n != o.n || s.hash != o.hash {
		return false
	}
	for a, b := s.last, o.last; a != b; a, b = a.prev, b.prev {
		if a.value != b.value {
			return false
		}
	}
	return true
}

var logModel = porcupine.Model{
	Init: func() any { return logState{vals: immutable.NewList[string]()} },
	Step: func(state, input, output any) (bool, any) {
		s := state.(logState)
		switch in := input.(type) {
		case produceInput:
			out := output.(produceOutput)
			if !out.unknown && out.offset != uint64(s.n) {
				return false, s
			}
			return true, s.append(in.value)
		case readInput:
			out := output.(readOutput)
			if in.offset >= uint64(s.n) {
				return out.outOfRange, s
			}
			return !out.outOfRange && s.vals.Get(int(in.offset)) == out.value, s
		}
		return false, s
	},
	Equal: func(a, b any) bool { return a.(logState).equal(b.(logState)) },
	Hash:  func(s any) uint64 { return s.(logState).hash },
	DescribeOperation: func(input, output any) string {
		switch in := input.(type) {
		case produceInput:
			if out := output.(produceOutput); !out.unknown {
				return fmt.Sprintf("produce(%q) -> %d", in.value, out.offset)
			}
			return fmt.Sprintf("produce(%q) -> ?", in.value)
		case readInput:
			if out := output.(readOutput); !out.outOfRange {
				return fmt.Sprintf("read(%d) -> %q", in.offset, out.value)
			}
			return fmt.Sprintf("read(%d) -> OUT_OF_RANGE", in.offset)
		}
		return "?"
	},
	DescribeState: func(state any) string {
		s := state.(logState)
		if s.n == 0 {
			return "[]"
		}
		return fmt.Sprintf("[%d records, last %q]", s.n, s.last.value)
	},
}

// operations turns a partition's history into porcupine's operations.
func operations(ops []Op, l Log) []porcupine.Operation {
	var out []porcupine.Operation
	for i := range ops {
		op := &ops[i]
		if op.Log() != l {
			continue
		}
		p := porcupine.Operation{ClientId: op.Client, Call: int64(op.Call), Return: int64(op.Return), Metadata: op}
		switch {
		case op.Kind == OpProduce && op.Outcome == OK:
			p.Input, p.Output = produceInput{op.Value}, produceOutput{offset: op.Offset}
		case op.Kind == OpProduce && op.Outcome == Indeterminate:
			p.Input, p.Output, p.Return = produceInput{op.Value}, produceOutput{unknown: true}, math.MaxInt64
		case op.Kind == OpRead && op.Outcome == OK:
			p.Input, p.Output = readInput{op.Offset}, readOutput{value: op.Value, outOfRange: op.OutOfRange}
		default:
			continue
		}
		out = append(out, p)
	}
	return out
}

// checkLinearizable runs porcupine on each partition's produces and reads.
func checkLinearizable(cfg *Config, ops []Op, logs *finalLogs) Check {
	c := Check{Name: "linearizable (porcupine)", Verdict: Pass}
	total, unknown := 0, 0
	for _, t := range logs.logs {
		history := operations(ops, t)
		total += len(history)
		start := time.Now()
		res, info := porcupine.CheckOperationsVerbose(logModel, history, cfg.LinearizabilityTimeout)
		fmt.Fprintf(cfg.Log, "chaos: porcupine: %s, %d operations: %s in %v\n", t, len(history), res, time.Since(start).Round(time.Millisecond))
		switch res {
		case porcupine.Unknown:
			unknown++
			if c.Verdict == Pass {
				c.Verdict = Unknown
			}
		case porcupine.Illegal:
			explained := explain(ops, t, logs)
			for _, e := range explained {
				c.violation("%s", e)
			}
			if len(explained) == 0 {
				c.violation("%s: porcupine finds no linearization; no stale or wrong read explains it (see its visualization)", t)
			}
			if cfg.VisualizeDir != "" {
				path := filepath.Join(cfg.VisualizeDir, fmt.Sprintf("%s-%d.html", t.Topic, t.Partition))
				if err := os.MkdirAll(cfg.VisualizeDir, 0o755); err == nil {
					if err := porcupine.VisualizePath(logModel, info, path); err == nil {
						c.Details = append(c.Details, "porcupine's visualization of "+t.String()+": "+path)
					}
				}
			}
		}
	}
	c.Summary = fmt.Sprintf("%d operations in %d partitions", total, len(logs.logs))
	if unknown > 0 {
		c.Summary += fmt.Sprintf("; porcupine ran out of time (%v) on %d partitions", cfg.LinearizabilityTimeout, unknown)
	}
	return c
}

// explain finds, in a partition's history that porcupine rejects, the operations that show why:
// two produces acknowledged at the same offset, an OUT_OF_RANGE answer for an offset that a write
// acknowledged, or a read answered, before the read was sent (a stale read), and a read of a value
// that is not the one the partition holds at that offset in the end.
func explain(ops []Op, topic Log, logs *finalLogs) []string {
	var reads, known []*Op // known: acknowledged produces and reads that returned a value
	for i := range ops {
		op := &ops[i]
		if op.Log() != topic || op.Outcome != OK {
			continue
		}
		switch {
		case op.Kind == OpRead && op.OutOfRange:
			reads = append(reads, op)
		case op.Kind == OpRead:
			reads = append(reads, op)
			known = append(known, op)
		case op.Kind == OpProduce:
			known = append(known, op)
		}
	}
	// Of the operations that had shown an offset to exist, keep by return time the one with the
	// highest offset so far.
	sort.Slice(known, func(i, j int) bool { return known[i].Return < known[j].Return })
	best := make([]*Op, len(known))
	for i, op := range known {
		best[i] = op
		if i > 0 && best[i-1].Offset > op.Offset {
			best[i] = best[i-1]
		}
	}
	log := logs.refLog(topic)
	var out []string
	byOffset := map[uint64]*Op{}
	for _, op := range known {
		if op.Kind != OpProduce {
			continue
		}
		if other, ok := byOffset[op.Offset]; ok {
			out = append(out, fmt.Sprintf("one offset acknowledged twice: %s, and %s", other, op))
		}
		byOffset[op.Offset] = op
	}
	for _, r := range reads {
		if !r.OutOfRange {
			if r.Offset >= uint64(len(log)) || log[r.Offset] != r.Value {
				out = append(out, fmt.Sprintf("wrong value: %s, but in the end %s offset %d holds %s", r, topic, r.Offset, describeAt(log, r.Offset)))
			}
			continue
		}
		// The last known operation that returned before the read was called.
		i := sort.Search(len(known), func(i int) bool { return known[i].Return >= r.Call }) - 1
		if i >= 0 && best[i].Offset >= r.Offset {
			out = append(out, fmt.Sprintf("stale read: %s, but before it was sent: %s", r, best[i]))
		}
	}
	return out
}

func describeAt(log []string, off uint64) string {
	if off >= uint64(len(log)) {
		return fmt.Sprintf("nothing (the partition ends at %d)", len(log))
	}
	return fmt.Sprintf("%q", log[off])
}

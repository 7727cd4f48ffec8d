package chaos

import (
	"fmt"
	"sync"
	"time"
)

// OpKind is what a client did.
type OpKind string

const (
	// OpProduce appends one record (Produce with a producer id and sequence, retried).
	OpProduce OpKind = "produce"
	// OpRead reads one offset with read_your_writes (Consume).
	OpRead OpKind = "read"
	// OpCommit commits a consumer group's offset (CommitOffset, retried).
	OpCommit OpKind = "commit"
	// OpFetch fetches a consumer group's committed offset (FetchOffset).
	OpFetch OpKind = "fetch"
)

// Outcome is how an operation ended.
type Outcome string

const (
	// OK: the server answered with a result.
	OK Outcome = "ok"
	// Failed: the operation certainly did nothing: every attempt was refused with a status that
	// means the server wrote nothing (InvalidArgument, NotFound, FailedPrecondition, OutOfRange,
	// ...), or it was a read, which writes nothing anyway.
	Failed Outcome = "failed"
	// Indeterminate: a write that may or may not have been applied: some attempt ended with a
	// timeout, Unavailable, a broken connection or an internal error after the request was sent.
	Indeterminate Outcome = "indeterminate"
)

// Log is one partition of one topic: a log of its own, with its own offsets, producer sequences
// and consumer offsets, which the checks take one by one.
type Log struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
}

func (l Log) String() string { return fmt.Sprintf("%s/%d", l.Topic, l.Partition) }

// Op is one operation of one client, from its first attempt to its last.
type Op struct {
	Client    int    `json:"client"`
	Kind      OpKind `json:"kind"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Group     string `json:"group,omitempty"`
	// Value is what a produce wrote or a read returned.
	Value string `json:"value,omitempty"`
	// Offset is where a produce was acknowledged, what a read or commit asked for, or what a
	// fetch returned.
	Offset uint64 `json:"offset"`
	// OutOfRange is set on a read answered OUT_OF_RANGE: the offset is past the topic's end.
	OutOfRange bool `json:"out_of_range,omitempty"`
	// Committed is set on a fetch whose group had an offset committed.
	Committed bool    `json:"committed,omitempty"`
	Outcome   Outcome `json:"outcome"`
	// Err is the last attempt's error.
	Err string `json:"error,omitempty"`
	// Node is the node that answered the last attempt, when known.
	Node string `json:"node,omitempty"`
	// Attempts counts the requests sent.
	Attempts int `json:"attempts"`
	// Call and Return are the times of the first request and of the last answer, since the run
	// started.
	Call   time.Duration `json:"call_ns"`
	Return time.Duration `json:"return_ns"`
}

// Log is the partition the operation was on.
func (o *Op) Log() Log { return Log{Topic: o.Topic, Partition: o.Partition} }

func (o *Op) String() string {
	var res string
	switch {
	case o.Outcome != OK:
		res = fmt.Sprintf("%s (%s)", o.Outcome, o.Err)
	case o.Kind == OpProduce:
		res = fmt.Sprintf("offset %d", o.Offset)
	case o.Kind == OpRead && o.OutOfRange:
		res = "OUT_OF_RANGE"
	case o.Kind == OpRead:
		res = fmt.Sprintf("%q", o.Value)
	case o.Kind == OpFetch && !o.Committed:
		res = "no offset committed"
	case o.Kind == OpFetch:
		res = fmt.Sprintf("offset %d", o.Offset)
	default:
		res = "ok"
	}
	var what string
	switch o.Kind {
	case OpProduce:
		what = fmt.Sprintf("produce %q to %s", o.Value, o.Log())
	case OpRead:
		what = fmt.Sprintf("read %s@%d", o.Log(), o.Offset)
	case OpCommit:
		what = fmt.Sprintf("commit %s %s@%d", o.Group, o.Log(), o.Offset)
	case OpFetch:
		what = fmt.Sprintf("fetch %s %s", o.Group, o.Log())
	}
	node := ""
	if o.Node != "" {
		node = " on " + o.Node
	}
	return fmt.Sprintf("client %d: %s%s, [%v, %v] -> %s", o.Client, what, node,
		o.Call.Round(time.Millisecond), o.Return.Round(time.Millisecond), res)
}

// History is every operation of a run, in the order they ended. Safe for concurrent use.
type History struct {
	mu  sync.Mutex
	ops []Op
}

func (h *History) add(op Op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

// Ops returns a copy of the operations.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

package partition

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

var (
	// ErrSequence is returned by Produce for an idempotent batch whose sequence number is neither
	// the next one of its producer nor a retry of its last one. Nothing was proposed. A producer's
	// first batch to a partition may carry any sequence number.
	ErrSequence = errors.New("partition: out of sequence")
	// ErrOffsetOutOfRange is returned by reads of an offset the replica does not serve: below the
	// lowest offset its log holds (deleted by retention) or at or past the committed next offset.
	// The error is an *OffsetRangeError carrying the bounds.
	ErrOffsetOutOfRange = errors.New("partition: offset out of range")
	// ErrEmptyBatch is returned by Produce for a batch without records.
	ErrEmptyBatch = errors.New("partition: empty batch")
	// ErrBatchTooLarge is returned by Produce for a batch whose entry would exceed
	// Config.MaxEntryBytes. Nothing was proposed.
	ErrBatchTooLarge = errors.New("partition: batch too large")
	// ErrClosed is returned by calls on a closed replica, and by Wait when the replica closes.
	ErrClosed = errors.New("partition: replica closed")
	// ErrInvalidConfig is returned by Open for a Config that fails validation.
	ErrInvalidConfig = errors.New("partition: invalid config")
)

// NotLeaderError is returned by calls only the leader serves (Produce, membership changes,
// Barrier) on any other replica. It wraps raft.ErrNotLeader; Leader and LeaderAddr name the leader
// when the replica knows one ("" otherwise), for the caller to send the request there.
type NotLeaderError struct {
	Leader     raft.ServerID
	LeaderAddr raft.ServerAddress
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "partition: not the leader, and no leader is known"
	}
	return fmt.Sprintf("partition: not the leader; the leader is %s at %s", e.Leader, e.LeaderAddr)
}

// Unwrap makes errors.Is(err, raft.ErrNotLeader) true.
func (e *NotLeaderError) Unwrap() error { return raft.ErrNotLeader }

// OffsetRangeError is a read of an offset outside [Lowest, Next), the offsets a replica serves. It
// wraps ErrOffsetOutOfRange.
type OffsetRangeError struct {
	Offset, Lowest, Next uint64
}

func (e *OffsetRangeError) Error() string {
	return fmt.Sprintf("partition: offset %d out of range: the partition serves [%d, %d)", e.Offset, e.Lowest, e.Next)
}

// Unwrap makes errors.Is(err, ErrOffsetOutOfRange) true.
func (e *OffsetRangeError) Unwrap() error { return ErrOffsetOutOfRange }

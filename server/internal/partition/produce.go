package partition

import (
	"context"
	"fmt"
	"time"
)

// Result is what a produce gets.
type Result struct {
	// BaseOffset is the offset of the batch's first record; its records have the offsets after it.
	BaseOffset uint64
	// Duplicate is true for a retry of an idempotent producer's last batch: nothing was written,
	// and BaseOffset is the one the batch got the first time.
	Duplicate bool
}

// proposal is a batch the leader proposed and has not seen applied. A retry of it waits for done.
type proposal struct {
	sequence uint64
	done     chan struct{}
	// base and err are set before done is closed.
	base uint64
	err  error
}

// Produce appends a batch of records to the partition and returns once it is committed (stored by
// a majority) and applied here. Leader only: any other replica returns a *NotLeaderError naming
// the leader.
//
// An idempotent producer's batch (ProducerID other than 0) is checked before it is proposed, so
// that a duplicate never reaches the log that consumers read: the next sequence number after the
// producer's last batch (proposed or committed) is proposed; a retry of the last batch returns its
// base offset with Duplicate set, once it is committed; any other number returns ErrSequence and
// proposes nothing. A producer new to the partition may start at any sequence number.
//
// An error wrapping raft.ErrLeadershipLost means the batch may or may not be committed: an
// idempotent producer retries it on the new leader, which tells. ctx bounds the wait; a batch
// proposed before ctx ended may still be committed.
func (r *Replica) Produce(ctx context.Context, b Batch) (Result, error) {
	return r.ProduceAsync(ctx, b)()
}

// ProduceAsync is Produce in two steps: it proposes the batch (or decides it is a duplicate or out
// of sequence) before it returns, and the wait it returns gives the result. Batches proposed by
// calls one after the other are appended in that order, so a caller can have many in flight and
// keep their order.
func (r *Replica) ProduceAsync(ctx context.Context, b Batch) func() (Result, error) {
	res, err := r.propose(ctx, b)
	if err != nil || res.wait == nil {
		return func() (Result, error) { return res.Result, err }
	}
	return res.wait
}

// proposed is what propose decided: a result at once, or a wait for one.
type proposed struct {
	Result
	wait func() (Result, error)
}

func (r *Replica) propose(ctx context.Context, b Batch) (proposed, error) {
	if len(b.Records) == 0 {
		return proposed{}, ErrEmptyBatch
	}
	if r.closed.Load() {
		return proposed{}, ErrClosed
	}
	if b.ProducerID == 0 {
		b.Sequence = 0
	}
	// The time stamped below is at most a varint of 10 bytes: size with the longest.
	size := batchSize(&b, -1<<63)
	if size+entryOverhead > r.maxEntry {
		return proposed{}, fmt.Errorf("%w: %d bytes of entry, the partition takes at most %d", ErrBatchTooLarge, size+entryOverhead, r.maxEntry)
	}

	r.proposeMu.Lock()
	if err := r.readyLocked(); err != nil {
		r.proposeMu.Unlock()
		return proposed{}, err
	}
	if b.ProducerID != 0 {
		if p := r.pending[b.ProducerID]; p != nil {
			switch b.Sequence {
			case p.sequence:
				r.proposeMu.Unlock()
				return proposed{wait: func() (Result, error) { return r.awaitDuplicate(ctx, p) }}, nil
			case p.sequence + 1:
			default:
				r.proposeMu.Unlock()
				return proposed{}, r.sequenceError(b, p.sequence)
			}
		} else if p, ok := r.fsm.producer(b.ProducerID); ok {
			switch b.Sequence {
			case p.sequence:
				r.proposeMu.Unlock()
				return proposed{Result: Result{BaseOffset: p.base, Duplicate: true}}, nil
			case p.sequence + 1:
			default:
				r.proposeMu.Unlock()
				return proposed{}, r.sequenceError(b, p.sequence)
			}
		}
	}
	r.lastStamp = max(time.Now().UnixNano(), r.lastStamp+1)
	data := appendBatch(make([]byte, 0, size), &b, r.lastStamp)
	// No enqueue timeout: Raft's loops always take requests in (a follower refuses them at once).
	f := r.raft.Apply(data, 0)
	p := &proposal{sequence: b.Sequence, done: make(chan struct{})}
	if b.ProducerID != 0 {
		r.pending[b.ProducerID] = p
	}
	r.proposeMu.Unlock()

	go func() {
		if err := f.Error(); err != nil {
			p.err = r.raftError("produce", err)
		} else if res := f.Response().(*applyResult); res.err != nil {
			p.err = res.err
		} else {
			p.base = res.base
		}
		r.proposeMu.Lock()
		if r.pending[b.ProducerID] == p {
			delete(r.pending, b.ProducerID)
		}
		if p.err != nil {
			// What else was in flight may or may not be in the log: learn it from the state
			// machine, after a barrier, before the next produce.
			r.syncedTerm = 0
		}
		r.proposeMu.Unlock()
		close(p.done)
	}()
	return proposed{wait: func() (Result, error) {
		select {
		case <-p.done:
			return Result{BaseOffset: p.base}, p.err
		case <-ctx.Done():
			return Result{}, fmt.Errorf("partition %s: produce: %w", r.group(), context.Cause(ctx))
		}
	}}, nil
}

// awaitDuplicate answers a retry of a batch in flight, once it is applied.
func (r *Replica) awaitDuplicate(ctx context.Context, p *proposal) (Result, error) {
	select {
	case <-p.done:
		if p.err != nil {
			return Result{}, p.err
		}
		return Result{BaseOffset: p.base, Duplicate: true}, nil
	case <-ctx.Done():
		return Result{}, fmt.Errorf("partition %s: produce: %w", r.group(), context.Cause(ctx))
	}
}

func (r *Replica) sequenceError(b Batch, last uint64) error {
	return fmt.Errorf("%w: producer %d sent sequence %d to partition %s, want %d (or %d again for a retry)",
		ErrSequence, b.ProducerID, b.Sequence, r.group(), last+1, last)
}

// readyLocked makes sure this replica leads and that its producers' table is complete: in each
// term it leads, before its first produce, it applies every earlier entry (a Barrier), so that
// the state machine holds every committed batch and the old leader's uncommitted ones are either
// among them or lost. The caller holds propose.
func (r *Replica) readyLocked() error {
	if r.closed.Load() {
		return ErrClosed
	}
	if !r.IsLeader() {
		return r.notLeader()
	}
	term := r.raft.CurrentTerm()
	if r.syncedTerm == term {
		return nil
	}
	if err := r.raft.Barrier(0).Error(); err != nil {
		return r.raftError("barrier", err)
	}
	// Every batch proposed before the barrier is applied (or was never stored): the state machine
	// alone is the table now.
	r.syncedTerm = term
	clear(r.pending)
	r.lastStamp = max(r.lastStamp, r.fsm.lastTime())
	return nil
}

package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/client/internal/cluster"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults of the produce retries.
const (
	// DefaultMaxRetries is how many times a batch is sent again after a failure that leaves its
	// outcome unknown: with the backoff below, about 10 s of retries, several elections' worth.
	DefaultMaxRetries = 100
	// DefaultDeliveryTimeout bounds how long the Producer tries to get a batch acknowledged.
	DefaultDeliveryTimeout = 30 * time.Second

	// The wait before a retry doubles from minRetryBackoff up to maxRetryBackoff. A leader's
	// death costs an election of 0.5-1 s with the server's default Raft timings, during which
	// the followers still name the dead leader and a produce fails at once in the client,
	// sending nothing; a retry every 100 ms finds the new leader within a tenth of a second of
	// its election (a one-second cap added up to a second to the failover gap).
	minRetryBackoff = 50 * time.Millisecond
	maxRetryBackoff = 100 * time.Millisecond
)

// A lane is one idempotent producer identity: a random producer_id and, per topic and partition,
// the sequence of the last batch it numbered (a batch without a partition is on partition 0). A lane never has more than one batch in flight, and so a retry
// is always either the batch the cluster appended last for the lane, which it answers as a
// duplicate with the original offsets, or the next one, which it appends. Those are the two cases
// the cluster's deduplication, which remembers one batch per producer, topic and partition, can answer; a
// producer that pipelines batches uses a lane per batch in flight.
//
// A lane whose batch failed for good is dropped, never reused: the cluster may or may not have
// appended that batch, and a fresh producer_id cannot be confused with it.
type lane struct {
	id   uint64
	last map[laneKey]uint64
}

type laneKey struct {
	topic     string
	partition uint32
}

func newLane() *lane {
	var b [8]byte
	for {
		// crypto/rand.Read never fails: it crashes the program rather than return an error.
		_, _ = rand.Read(b[:])
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return &lane{id: id, last: map[laneKey]uint64{}}
		}
	}
}

// stamp numbers req as the lane's next batch to its topic and partition.
func (l *lane) stamp(req *dislogv1.ProduceRequest) {
	k := laneKey{req.GetTopic(), req.GetPartition()}
	l.last[k]++
	req.ProducerId, req.Sequence = l.id, l.last[k]
}

// lanePool keeps the lanes of the synchronous produce calls: each call takes one, so concurrent
// calls never share a lane, and puts it back once its batch is acknowledged.
type lanePool struct {
	mu   sync.Mutex
	free []*lane
}

func (p *lanePool) get() *lane {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		l := p.free[n-1]
		p.free = p.free[:n-1]
		return l
	}
	return newLane()
}

func (p *lanePool) put(l *lane) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, l)
}

// Hedging of a produce attempt on a cluster: an attempt unanswered after hedgeAfter makes the
// resolver ask every server who leads, and again every hedgeEvery, so that a leader elected while
// the attempt waits on the old one is known within hedgeEvery of its election. A produce that
// takes longer than hedgeAfter is rare (the leader's fsync and a replication round trip), and all
// it costs is GetServers calls, which the resolver spaces.
const (
	hedgeAfter = 200 * time.Millisecond
	hedgeEvery = 100 * time.Millisecond
)

// errLeaderMoved ends an attempt that waited on a server while the cluster elected another
// leader: the batch is sent again, to the new leader, with the same producer id and sequence.
var errLeaderMoved = status.Error(codes.Unavailable, "client: another server leads now; the request goes there")

// followLeader cancels ctx with errLeaderMoved if, while it lasts, the leader changes from the
// one known when it began to another server. A change from no leader known does not: the call
// was waiting for one in the balancer and goes to it.
func followLeader(ctx context.Context, leader *cluster.Leader, cancel context.CancelCauseFunc) {
	addr, changed := leader.Get()
	t := time.NewTimer(hedgeAfter)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			var now string
			now, changed = leader.Get()
			if addr != "" && now != "" && now != addr {
				cancel(errLeaderMoved)
				return
			}
			if addr == "" {
				addr = now
			}
		case <-t.C:
			leader.ResolveNow()
			t.Reset(hedgeEvery)
		}
	}
}

// followPartitionLeader cancels ctx with errLeaderMoved if, while it lasts, the client learns
// that another server than leader leads partition p of topic. A call waiting on a partition's
// leader longer than hedgeAfter, or told that the cluster's servers changed, asks who leads now,
// away from the server it waits on (which may be frozen), and again every hedgeEvery.
func (c *Client) followPartitionLeader(ctx context.Context, topic string, p int, leader string, cancel context.CancelCauseFunc) {
	_, changed := c.leader.Get()
	t := time.NewTimer(hedgeAfter)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			_, changed = c.leader.Get()
		case <-t.C:
			c.leader.ResolveNow()
			t.Reset(hedgeEvery)
		}
		routes, err := c.routes.refresh(ctx, topic, leader)
		if now := routes.leader(p); err == nil && now != "" && now != leader {
			cancel(errLeaderMoved)
			return
		}
	}
}

// retryable reports whether a produce request that failed with err may be sent again: the
// connection, the server or the stream failed, so the request may or may not have been written
// (its producer_id and sequence make a second write a duplicate), or the server was not the
// leader and wrote nothing. A caller's own context ending is not retryable; check that first.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded, codes.Canceled:
		return true
	case codes.FailedPrecondition:
		return dislogv1.IsNotLeader(err)
	}
	return false
}

// refused reports whether err is the server's answer to a request it did not write, as opposed
// to a failure that leaves the request's outcome unknown.
func refused(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.OutOfRange, codes.ResourceExhausted,
		codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition:
		return !retryable(err)
	}
	return false
}

// sleep waits d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	peerv1 "github.com/dislog/dislog/server/internal/peerapi/v1"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Linearizable reads (etcd's ReadIndex, Raft thesis section 6.4). A read that must see every
// acknowledged write (read_your_writes when the server lacks the offset, FetchOffset) first asks
// the leader for a read index: the leader, once it has applied every entry of earlier terms,
// notes the index of the last command it applied, confirms with a majority that it still leads,
// and answers that index. Every write acknowledged before the read began was applied at or below
// it, because the leader answers a write only after applying it, and no other leader can have
// acknowledged one meanwhile. The reading server then waits until it has applied that index
// itself and reads its own state.

// leaderTerm is one stretch of leadership of this server as Raft reported it.
type leaderTerm struct {
	leader bool
	// ready is closed once this leader has applied every entry committed before its term.
	ready chan struct{}
}

// watchLeadership follows Raft's leadership notifications. On taking the lead it appends a
// barrier, whose application means everything before it is applied here too.
func (c *cluster) watchLeadership(notify <-chan bool) {
	for {
		select {
		case <-c.stopped.Done():
			return
		case leader := <-notify:
			term := &leaderTerm{leader: leader, ready: make(chan struct{})}
			c.term.Store(term)
			if leader {
				c.log.Info("this server leads the cluster now")
			} else {
				c.log.Info("this server no longer leads the cluster")
			}
			if leader {
				// Not one of c.loops: a barrier ends only when leadership or Raft does, which close
				// waits for after the loops.
				go func() {
					if err := c.raft.Barrier(0).Error(); err != nil {
						c.log.Debug("leader barrier", slog.Any("error", err))
						return
					}
					close(term.ready)
				}()
			}
		}
	}
}

// readIndex is the leader's side of a linearizable read.
func (c *cluster) readIndex(ctx context.Context) (uint64, error) {
	term := c.term.Load()
	if term == nil || !term.leader {
		return 0, dislogv1.NotLeaderError("not the leader")
	}
	select {
	case <-term.ready:
	case <-ctx.Done():
		return 0, status.Error(codes.Unavailable, "the new leader had not applied the previous leader's writes before the deadline; retry")
	}
	index := c.fsm.Applied()
	if err := c.raft.VerifyLeader().Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, dislogv1.NotLeaderError("not the leader")
		}
		return 0, raftError(err)
	}
	if c.term.Load() != term {
		return 0, dislogv1.NotLeaderError("not the leader")
	}
	return index, nil
}

// maxReadWait bounds a linearizable read's wait for a call without a deadline.
const maxReadWait = 10 * time.Second

// ReadBarrier returns once this server has applied every write acknowledged before the call, so
// that what it reads from its own state next is linearizable. It asks the leader for a read index,
// waiting for one to be known, and waits to apply up to it.
func (c *cluster) ReadBarrier(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxReadWait)
		defer cancel()
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	index, err := c.askReadIndex(ctx)
	// No leader, or one that just lost the lead or died: ask whoever leads next.
	for dislogv1.IsNotLeader(err) || status.Code(err) == codes.Unavailable {
		if err := c.waitTick(ctx, tick, "no leader to confirm the read: the cluster has no leader it agrees on; retry later"); err != nil {
			return err
		}
		index, err = c.askReadIndex(ctx)
	}
	if err != nil {
		return err
	}
	for c.fsm.Applied() < index {
		if err := c.waitTick(ctx, tick, "this server had not applied the cluster's last writes before the deadline; retry, or read from the leader"); err != nil {
			return err
		}
	}
	return nil
}

// askReadIndex asks the leader this server knows of for a read index.
func (c *cluster) askReadIndex(ctx context.Context) (uint64, error) {
	_, addr := c.leader()
	switch addr {
	case "":
		return 0, dislogv1.NotLeaderError("not the leader")
	case c.addr:
		return c.readIndex(ctx)
	}
	client, err := c.peers.client(addr)
	if err != nil {
		return 0, err
	}
	resp, err := client.ReadIndex(ctx, &peerv1.ReadIndexRequest{})
	if err != nil {
		return 0, err
	}
	return resp.GetIndex(), nil
}

// waitTick waits for the next tick, or fails with Unavailable (the cluster, the server) or
// DeadlineExceeded (the call) saying why.
func (c *cluster) waitTick(ctx context.Context, tick *time.Ticker, why string) error {
	select {
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return status.Error(codes.DeadlineExceeded, why)
		}
		return status.FromContextError(ctx.Err()).Err()
	case <-c.stopped.Done():
		return status.Error(codes.Unavailable, "the server is shutting down; retry on another server")
	case <-tick.C:
		return nil
	}
}

func (s *peerService) ReadIndex(ctx context.Context, _ *peerv1.ReadIndexRequest) (*peerv1.ReadIndexResponse, error) {
	index, err := s.c.readIndex(ctx)
	if err != nil {
		return nil, err
	}
	return &peerv1.ReadIndexResponse{Index: index}, nil
}

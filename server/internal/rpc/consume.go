package rpc

import (
	"context"
	"errors"
	"io"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/internal/codec"
	"github.com/dislog/dislog/server/internal/partition"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	// maxResponseBytes bounds the record bytes of one ConsumeStream response (a response holds at
	// least one record, whatever its size). It stays well under gRPC's default 4 MiB receive limit.
	maxResponseBytes = 1 << 20
	// maxResponseRecords bounds the records of one response, so small records do not make huge
	// messages of tiny allocations.
	maxResponseRecords = 4096
)

// part is a partition being read: its name and this server's replica.
type part struct {
	topic string
	p     uint32
	rep   *partition.Replica
}

// ErrNoReplica is what Cluster.Replica returns for a partition this server holds no replica of.
var ErrNoReplica = errors.New("rpc: no replica of the partition on this server")

// replica finds this server's replica of a partition for a read. It returns a nil rep, and no
// error, for a partition this server holds none of, when the read may be relayed.
func (s *Service) replica(ctx context.Context, topic string, p uint32) (part, error) {
	t, err := s.topic(ctx, topic)
	if err != nil {
		return part{}, err
	}
	if err := checkPartition(topic, t, p); err != nil {
		return part{}, err
	}
	rep, err := s.cfg.Cluster.Replica(ctx, topic, int(p))
	switch {
	case errors.Is(err, ErrNoReplica) && !relayed(ctx):
		return part{topic: topic, p: p}, nil
	case errors.Is(err, ErrNoReplica):
		return part{}, status.Errorf(codes.Unavailable, "%v", err)
	case err != nil:
		return part{}, err
	}
	return part{topic: topic, p: p, rep: rep}, nil
}

// relay calls f on each server that holds a partition in turn, until one answers with something
// other than UNAVAILABLE.
func (s *Service) relay(pt part, f func(Relay) error) error {
	err := status.Errorf(codes.Unavailable, "no server holding partition %d of topic %q answered", pt.p, pt.topic)
	for _, r := range s.cfg.Cluster.Relays(pt.topic, int(pt.p)) {
		if err = f(r); status.Code(err) != codes.Unavailable {
			return err
		}
	}
	return err
}

// Consume reads one record.
func (s *Service) Consume(ctx context.Context, req *dislogv1.ConsumeRequest) (*dislogv1.ConsumeResponse, error) {
	pt, err := s.replica(ctx, req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	if pt.rep == nil {
		var resp *dislogv1.ConsumeResponse
		err := s.relay(pt, func(r Relay) (err error) {
			resp, err = r.Consume(ctx, req)
			return err
		})
		if err == nil {
			s.consumedRecords.WithLabelValues(pt.topic).Inc()
		}
		return resp, err
	}
	if req.GetReadYourWrites() {
		if err := s.awaitWrites(ctx, pt, req.GetOffset()); err != nil {
			return nil, err
		}
	}
	recs, err := pt.rep.ReadBatch(req.GetOffset(), 1, 0)
	if err != nil {
		return nil, s.readError(ctx, err, pt, req.GetOffset())
	}
	rec, err := decode(recs[0])
	if err != nil {
		return nil, s.readError(ctx, err, pt, req.GetOffset())
	}
	s.consumedRecords.WithLabelValues(pt.topic).Inc()
	return &dislogv1.ConsumeResponse{Record: rec}, nil
}

// decode decodes a stored record.
func decode(r partition.Record) (*dislogv1.Record, error) {
	rec := &dislogv1.Record{Offset: r.Offset, AppendTime: timestamppb.New(time.Unix(0, r.Time))}
	if err := codec.Decode(r.Data, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// ConsumeStream sends records from a starting point, and with follow, goes on with each new record
// as it is committed. A caught-up stream waits in the replica's Wait, which commits wake: it uses no
// CPU while the partition is idle.
func (s *Service) ConsumeStream(req *dislogv1.ConsumeStreamRequest, stream dislogv1.LogService_ConsumeStreamServer) error {
	pt, err := s.replica(stream.Context(), req.GetTopic(), req.GetPartition())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(s.cfg.Stopping, cancel)
	defer stop()
	if pt.rep == nil {
		return s.relayStream(ctx, pt, req, stream)
	}

	if start, ok := req.GetStart().(*dislogv1.ConsumeStreamRequest_Offset); ok && req.GetReadYourWrites() {
		if err := s.awaitWrites(ctx, pt, start.Offset); err != nil {
			return err
		}
	}
	off, err := s.startOffset(ctx, pt, req)
	if err != nil {
		return err
	}
	// Headers now, not with the first records: a client of a stream with nothing to read yet can
	// tell that the stream started.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		if _, next := pt.rep.Offsets(); off < next {
			resp, err := s.readBatch(ctx, pt, off)
			if err != nil {
				return err
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
			off += uint64(len(resp.Records))
			s.consumedRecords.WithLabelValues(pt.topic).Add(float64(len(resp.Records)))
			continue
		}
		if !req.GetFollow() {
			return nil
		}
		if err := pt.rep.Wait(ctx, off); err != nil {
			if s.cfg.Stopping.Err() != nil && stream.Context().Err() == nil {
				return errShuttingDown
			}
			return s.readError(ctx, err, pt, off)
		}
	}
}

// readYourWritesWait bounds how long a follower's replica waits for an offset a read with
// read_your_writes asks for: an acknowledged record reaches a live follower within a commit round.
const readYourWritesWait = 2 * time.Second

// awaitWrites makes a read of offset see every record acknowledged before it. The leader holds
// every acknowledged record once a barrier has applied every entry before it; a follower's replica
// waits for the offset, a little, and a replica that does not catch up says so (UNAVAILABLE: read
// from the leader) rather than call the offset past the end.
func (s *Service) awaitWrites(ctx context.Context, pt part, offset uint64) error {
	if _, next := pt.rep.Offsets(); offset < next {
		return nil
	}
	if pt.rep.IsLeader() {
		// A barrier, not only a leadership check: a leader new in its term may not have applied
		// the entries of the term before, acknowledged by its predecessor.
		if err := pt.rep.Barrier(ctx); err != nil {
			return status.Errorf(codes.Unavailable, "partition %d of topic %q: this server lost its leadership; retry: %v", pt.p, pt.topic, err)
		}
		return nil
	}
	wait, cancel := context.WithTimeout(ctx, readYourWritesWait)
	defer cancel()
	if err := pt.rep.Wait(wait, offset); err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		_, next := pt.rep.Offsets()
		return status.Errorf(codes.Unavailable, "partition %d of topic %q: this replica holds offsets up to %d and did not receive offset %d within %v; if it was acknowledged, read it from the partition's leader",
			pt.p, pt.topic, next, offset, readYourWritesWait)
	}
	return nil
}

// readBatch reads committed records from off into one response.
func (s *Service) readBatch(ctx context.Context, pt part, off uint64) (*dislogv1.ConsumeStreamResponse, error) {
	recs, err := pt.rep.ReadBatch(off, maxResponseRecords, maxResponseBytes)
	if err != nil {
		if errors.Is(err, partition.ErrOffsetOutOfRange) {
			low, _ := pt.rep.Offsets()
			return nil, status.Errorf(codes.OutOfRange, "offset %d of partition %d of topic %q was deleted by retention while the stream read it; resume at offset %d",
				off, pt.p, pt.topic, low)
		}
		return nil, s.readError(ctx, err, pt, off)
	}
	resp := &dislogv1.ConsumeStreamResponse{Records: make([]*dislogv1.Record, 0, len(recs))}
	for _, r := range recs {
		rec, err := decode(r)
		if err != nil {
			return nil, s.readError(ctx, err, pt, r.Offset)
		}
		resp.Records = append(resp.Records, rec)
	}
	return resp, nil
}

// startOffset resolves where a ConsumeStream starts.
func (s *Service) startOffset(ctx context.Context, pt part, req *dislogv1.ConsumeStreamRequest) (uint64, error) {
	low, next := pt.rep.Offsets()
	switch start := req.GetStart().(type) {
	case *dislogv1.ConsumeStreamRequest_Offset:
		off := start.Offset
		if off < low || off > next {
			return 0, rangeError(pt, off)
		}
		return off, nil
	case *dislogv1.ConsumeStreamRequest_Time:
		if err := start.Time.CheckValid(); err != nil {
			return 0, status.Errorf(codes.InvalidArgument, "invalid start time: %v", err)
		}
		off, err := pt.rep.OffsetForTime(start.Time.AsTime())
		if err != nil {
			return 0, s.readError(ctx, err, pt, 0)
		}
		return off, nil
	case *dislogv1.ConsumeStreamRequest_Position:
		switch start.Position {
		case dislogv1.StartPosition_START_POSITION_UNSPECIFIED, dislogv1.StartPosition_START_POSITION_EARLIEST:
			return low, nil
		case dislogv1.StartPosition_START_POSITION_LATEST:
			return next, nil
		}
		return 0, status.Errorf(codes.InvalidArgument, "unknown start position %d", start.Position)
	}
	return low, nil
}

// relayStream relays a ConsumeStream to a server that holds the partition: its records, then its
// end or error. A relay that fails before it sent a record is tried on the next server.
func (s *Service) relayStream(ctx context.Context, pt part, req *dislogv1.ConsumeStreamRequest, stream dislogv1.LogService_ConsumeStreamServer) error {
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	sent := false
	err := s.relay(pt, func(r Relay) error {
		if sent {
			return status.Errorf(codes.Unavailable, "the server relaying partition %d of topic %q went away; resume where the stream stopped", pt.p, pt.topic)
		}
		in, err := r.ConsumeStream(ctx, req)
		if err != nil {
			return err
		}
		for {
			resp, err := in.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			sent = true
			if err := stream.Send(resp); err != nil {
				return err
			}
			s.consumedRecords.WithLabelValues(pt.topic).Add(float64(len(resp.GetRecords())))
		}
	})
	if err != nil && s.cfg.Stopping.Err() != nil && stream.Context().Err() == nil {
		return errShuttingDown
	}
	return err
}

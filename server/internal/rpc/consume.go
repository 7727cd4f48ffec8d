package rpc

import (
	"context"
	"errors"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/internal/topics"
	"github.com/dislog/dislog/storelog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	// maxResponseBytes bounds the record bytes of one ConsumeStream response (a response holds at
	// least one record, whatever its size). It stays well under gRPC's default 4 MiB receive limit.
	maxResponseBytes = 1 << 20
	// maxResponseRecords bounds the records of one response, so small records do not make huge
	// messages of tiny allocations.
	maxResponseRecords = 4096
)

func isRange(err error) bool { return errors.Is(err, storelog.ErrOffsetOutOfRange) }

func timeOf(unixNano int64) time.Time { return time.Unix(0, unixNano) }

// ConsumeStream sends records from a starting point, and with follow, goes on with each new record
// as it is written. A caught-up stream waits in Log.Wait, which appends wake: it uses no CPU while
// the topic is idle.
func (s *Service) ConsumeStream(req *dislogv1.ConsumeStreamRequest, stream dislogv1.LogService_ConsumeStreamServer) error {
	t, err := s.awaitTopic(stream.Context(), req.GetTopic())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(s.cfg.Stopping, cancel)
	defer stop()

	if start, ok := req.GetStart().(*dislogv1.ConsumeStreamRequest_Offset); ok && req.GetReadYourWrites() {
		if err := s.awaitWrites(ctx, t, start.Offset); err != nil {
			return err
		}
	}
	off, err := s.startOffset(t, req)
	if err != nil {
		return err
	}
	// Headers now, not with the first records: a client of a stream with nothing to read yet can
	// tell that the stream started.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		next := t.Log.NextOffset()
		if off < next {
			resp, err := s.readBatch(ctx, t, off, next)
			if err != nil {
				return err
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
			off += uint64(len(resp.Records))
			s.consumedRecords.WithLabelValues(t.Name).Add(float64(len(resp.Records)))
			continue
		}
		if !req.GetFollow() {
			return nil
		}
		if err := t.Log.Wait(ctx, off); err != nil {
			if s.cfg.Stopping.Err() != nil && stream.Context().Err() == nil {
				return errShuttingDown
			}
			return s.logError(ctx, err, t)
		}
	}
}

// awaitTopic looks a topic up for a read. One this server does not have it looks up again after
// a read barrier, with or without read_your_writes: a topic whose creation the cluster
// acknowledged exists for every reader, on every server, even where the records are read stale.
// The barrier is paid only on a miss.
func (s *Service) awaitTopic(ctx context.Context, name string) (*topics.Topic, error) {
	t, err := s.topic(name)
	if status.Code(err) != codes.NotFound {
		return t, err
	}
	if err := s.cfg.Cluster.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	return s.topic(name)
}

// awaitWrites makes a read of offset see every write acknowledged before it: a server that does
// not hold offset passes a read barrier first, after which it holds every acknowledged record.
func (s *Service) awaitWrites(ctx context.Context, t *topics.Topic, offset uint64) error {
	if offset < t.Log.NextOffset() {
		return nil
	}
	return s.cfg.Cluster.ReadBarrier(ctx)
}

// readBatch reads records from off, below next, into one response.
func (s *Service) readBatch(ctx context.Context, t *topics.Topic, off, next uint64) (*dislogv1.ConsumeStreamResponse, error) {
	resp := &dislogv1.ConsumeStreamResponse{}
	bytes := 0
	for ; off < next && bytes < maxResponseBytes && len(resp.Records) < maxResponseRecords; off++ {
		rec, err := s.read(ctx, t, off)
		if err != nil {
			if status.Code(err) == codes.OutOfRange {
				return nil, status.Errorf(codes.OutOfRange, "offset %d of topic %q was deleted by retention while the stream read it; resume at offset %d",
					off, t.Name, t.Log.LowestOffset())
			}
			return nil, err
		}
		bytes += len(rec.Key) + len(rec.Value)
		resp.Records = append(resp.Records, rec)
	}
	return resp, nil
}

// startOffset resolves where a ConsumeStream starts.
func (s *Service) startOffset(t *topics.Topic, req *dislogv1.ConsumeStreamRequest) (uint64, error) {
	switch start := req.GetStart().(type) {
	case *dislogv1.ConsumeStreamRequest_Offset:
		off := start.Offset
		if off < t.Log.LowestOffset() || off > t.Log.NextOffset() {
			return 0, rangeError(t, off)
		}
		return off, nil
	case *dislogv1.ConsumeStreamRequest_Time:
		if err := start.Time.CheckValid(); err != nil {
			return 0, status.Errorf(codes.InvalidArgument, "invalid start time: %v", err)
		}
		off, err := t.Log.OffsetForTime(start.Time.AsTime().UnixNano())
		if err != nil {
			return 0, s.logError(context.Background(), err, t)
		}
		return off, nil
	case *dislogv1.ConsumeStreamRequest_Position:
		switch start.Position {
		case dislogv1.StartPosition_START_POSITION_UNSPECIFIED, dislogv1.StartPosition_START_POSITION_EARLIEST:
			return t.Log.LowestOffset(), nil
		case dislogv1.StartPosition_START_POSITION_LATEST:
			return t.Log.NextOffset(), nil
		}
		return 0, status.Errorf(codes.InvalidArgument, "unknown start position %d", start.Position)
	}
	return t.Log.LowestOffset(), nil
}

package rpc

import (
	"context"
	"errors"
	"io"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/internal/codec"
	"github.com/dislog/dislog/server/internal/topics"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// maxStreamInFlight is how many ProduceStream requests the server reads ahead of the one being
	// written. It bounds a stream's memory at this many messages.
	maxStreamInFlight = 64
	// maxMergeBytes bounds the requests of one stream merged into one append.
	maxMergeBytes = 8 << 20
)

// batch is one produce request, validated and encoded.
type batch struct {
	topic  *topics.Topic
	values [][]byte
	bytes  int
}

// encode validates a produce request and encodes its records for the topic's log.
func (s *Service) encode(req *dislogv1.ProduceRequest) (batch, error) {
	t, err := s.topic(req.GetTopic())
	if err != nil {
		return batch{}, err
	}
	recs := req.GetRecords()
	if len(recs) == 0 {
		return batch{}, status.Errorf(codes.InvalidArgument, "empty batch: a produce request to topic %q needs at least one record", t.Name)
	}
	total := 0
	for i, r := range recs {
		n := codec.Size(r)
		if n > s.cfg.MaxRecordBytes {
			return batch{}, status.Errorf(codes.ResourceExhausted,
				"record %d of the batch is %d bytes with its key and headers, over the server's limit of %d bytes (max record bytes); nothing of the batch was written",
				i, n, s.cfg.MaxRecordBytes)
		}
		total += n
	}
	buf := make([]byte, 0, total)
	values := make([][]byte, len(recs))
	for i, r := range recs {
		start := len(buf)
		buf = codec.Append(buf, r)
		values[i] = buf[start:len(buf):len(buf)]
	}
	return batch{topic: t, values: values, bytes: total}, nil
}

// Produce appends one batch.
func (s *Service) Produce(ctx context.Context, req *dislogv1.ProduceRequest) (*dislogv1.ProduceResponse, error) {
	b, err := s.encode(req)
	if err != nil {
		return nil, err
	}
	base, err := b.topic.Log.AppendBatch(b.values)
	if err != nil {
		return nil, s.logError(ctx, err, b.topic)
	}
	s.countProduced(b.topic.Name, len(b.values), b.bytes)
	return &dislogv1.ProduceResponse{BaseOffset: base}, nil
}

func (s *Service) countProduced(topic string, records, bytes int) {
	s.producedRecords.WithLabelValues(topic).Add(float64(records))
	s.producedBytes.WithLabelValues(topic).Add(float64(bytes))
}

// streamItem is a request read from a ProduceStream, or the error that ends the reading.
type streamItem struct {
	batch
	err error
}

// ProduceStream appends the batches of a stream in order. A reader goroutine validates and encodes
// requests ahead of the writer; the writer merges the requests waiting for the same topic into one
// append (one write, one fsync) and answers each of them in order. That is the pipelining: while one
// append waits for its fsync, the requests behind it gather into the next.
func (s *Service) ProduceStream(stream dislogv1.LogService_ProduceStreamServer) error {
	ctx := stream.Context()
	items := make(chan streamItem, maxStreamInFlight)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(items)
		for {
			var it streamItem
			req, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err == nil {
				it.batch, it.err = s.encode(req)
			} else {
				it.err = err
			}
			select {
			case items <- it:
			case <-done:
				return
			}
			if it.err != nil {
				return
			}
		}
	}()

	var pending *streamItem
	for {
		var first streamItem
		if pending != nil {
			first, pending = *pending, nil
		} else {
			select {
			case it, ok := <-items:
				if !ok {
					return nil
				}
				first = it
			case <-s.cfg.Stopping.Done():
				return errShuttingDown
			}
		}
		if first.err != nil {
			return first.err
		}
		group, values, bytes := []batch{first.batch}, first.values, first.bytes
	merge:
		for bytes < maxMergeBytes {
			select {
			case it, ok := <-items:
				if !ok {
					break merge
				}
				if it.err != nil || it.topic != first.topic {
					pending = &it
					break merge
				}
				group = append(group, it.batch)
				values = append(values, it.values...)
				bytes += it.bytes
			default:
				break merge
			}
		}
		base, err := first.topic.Log.AppendBatch(values)
		if err != nil {
			return s.logError(ctx, err, first.topic)
		}
		s.countProduced(first.topic.Name, len(values), bytes)
		for _, b := range group {
			if err := stream.Send(&dislogv1.ProduceResponse{BaseOffset: base}); err != nil {
				return err
			}
			base += uint64(len(b.values))
		}
	}
}

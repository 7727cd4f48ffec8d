package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"io"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/internal/codec"
	"github.com/dislog/dislog/server/internal/fsm"
	"github.com/dislog/dislog/server/internal/partition"
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

// batch is one produce request, validated and encoded, with the partition it goes to.
type batch struct {
	topic     string
	partition int
	bytes     int
	partition.Batch
}

// encode validates a produce request, encodes its records and picks its partition.
func (s *Service) encode(ctx context.Context, req *dislogv1.ProduceRequest) (batch, error) {
	name := req.GetTopic()
	if err := topics.ValidateName(name); err != nil {
		return batch{}, topicError(err, name)
	}
	recs := req.GetRecords()
	if len(recs) == 0 {
		return batch{}, status.Errorf(codes.InvalidArgument, "empty batch: a produce request to topic %q needs at least one record", name)
	}
	total := 0
	for i, r := range recs {
		if p := codec.Payload(r); p > s.cfg.MaxRecordBytes {
			return batch{}, status.Errorf(codes.ResourceExhausted,
				"record %d of the batch has %d bytes of key, headers and value, over the server's limit of %d bytes (max record bytes); nothing of the batch was written",
				i, p, s.cfg.MaxRecordBytes)
		}
		n := codec.Size(r)
		if framing := n - codec.Payload(r); framing > codec.MaxFraming-binary.MaxVarintLen64 {
			return batch{}, status.Errorf(codes.ResourceExhausted,
				"record %d of the batch has %d headers, whose framing takes %d bytes, over %d; nothing of the batch was written",
				i, len(r.GetHeaders()), framing, codec.MaxFraming-binary.MaxVarintLen64)
		}
		total += n
	}
	t, err := s.topic(ctx, name)
	if err != nil {
		return batch{}, err
	}
	p, err := s.pick(name, t, req)
	if err != nil {
		return batch{}, err
	}
	buf := make([]byte, 0, total)
	records := make([][]byte, len(recs))
	for i, r := range recs {
		start := len(buf)
		buf = codec.Append(buf, r)
		records[i] = buf[start:len(buf):len(buf)]
	}
	return batch{topic: name, partition: p, bytes: total, Batch: partition.Batch{
		ProducerID: req.GetProducerId(), Sequence: req.GetSequence(), Records: records,
	}}, nil
}

// pick chooses the partition of a produce request: the one it names; else, for a topic of several,
// for an idempotent producer the partition of its producer id (its sequence numbers are per
// partition, so its batches stay on one), else the partition of the first record's key as the
// client's KeyPartition (Kafka's partitioner) would choose, else one chosen in turn.
func (s *Service) pick(name string, t fsm.TopicState, req *dislogv1.ProduceRequest) (int, error) {
	n := t.Partitions()
	switch {
	case req.Partition != nil:
		if err := checkPartition(name, t, req.GetPartition()); err != nil {
			return 0, err
		}
		return int(req.GetPartition()), nil
	case n == 1:
		return 0, nil
	case req.GetProducerId() != 0:
		return int(req.GetProducerId() % uint64(n)), nil
	case len(req.GetRecords()[0].GetKey()) > 0:
		return client.KeyPartition(req.GetRecords()[0].GetKey(), n), nil
	}
	return int(s.roundRobin.Add(1) % uint64(n)), nil
}

// Produce appends one batch.
func (s *Service) Produce(ctx context.Context, req *dislogv1.ProduceRequest) (*dislogv1.ProduceResponse, error) {
	b, err := s.encode(ctx, req)
	if err != nil {
		return nil, err
	}
	r, err := s.cfg.Cluster.Produce(ctx, b.topic, b.partition, b.Batch)()
	if err != nil {
		return nil, err
	}
	if !r.Duplicate {
		s.countProduced(b.topic, len(b.Records), b.bytes)
	}
	return &dislogv1.ProduceResponse{BaseOffset: r.BaseOffset, Duplicate: r.Duplicate, Partition: uint32(b.partition)}, nil
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

// inFlight is a produce started for a group of stream requests, waiting for its result.
type inFlight struct {
	wait  func() (partition.Result, error)
	group []batch
	err   error
}

// ProduceStream appends the batches of a stream in order. A reader goroutine validates and encodes
// requests ahead of the writer; the writer merges the requests waiting for the same partition
// (without a producer id, whose batches are deduplicated one by one) into one batch and starts its
// produce without waiting; an acker waits for each command's result in order and answers its requests. That
// is the pipelining: while one command is replicated, the requests behind it gather into the next.
func (s *Service) ProduceStream(stream dislogv1.LogService_ProduceStreamServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
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
				it.batch, it.err = s.encode(ctx, req)
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

	acks := make(chan inFlight, maxStreamInFlight)
	acked := make(chan error, 1)
	go func() { acked <- s.ack(stream, acks) }()
	finish := func(err error) error {
		if err != nil {
			acks <- inFlight{err: err}
		}
		close(acks)
		return <-acked
	}

	var pending *streamItem
	for {
		var first streamItem
		if pending != nil {
			first, pending = *pending, nil
		} else {
			select {
			case it, ok := <-items:
				if !ok {
					return finish(nil)
				}
				first = it
			case <-s.cfg.Stopping.Done():
				return finish(errShuttingDown)
			case err := <-acked:
				return err
			}
		}
		if first.err != nil {
			return finish(first.err)
		}
		group, bytes := []batch{first.batch}, first.bytes
	merge:
		for bytes < maxMergeBytes && first.ProducerID == 0 {
			select {
			case it, ok := <-items:
				if !ok {
					break merge
				}
				if it.err != nil || it.topic != first.topic || it.partition != first.partition || it.ProducerID != 0 {
					pending = &it
					break merge
				}
				group = append(group, it.batch)
				bytes += it.bytes
			default:
				break merge
			}
		}
		wait := s.cfg.Cluster.Produce(ctx, first.topic, first.partition, merge(group))
		select {
		case acks <- inFlight{wait: wait, group: group}:
		case err := <-acked:
			return err
		}
	}
}

// ack answers the requests of each submitted command in order, until acks closes or a command
// fails.
func (s *Service) ack(stream dislogv1.LogService_ProduceStreamServer, acks <-chan inFlight) error {
	for f := range acks {
		if f.err != nil {
			return f.err
		}
		r, err := f.wait()
		if err != nil {
			return err
		}
		base := r.BaseOffset
		for _, b := range f.group {
			if !r.Duplicate {
				s.countProduced(b.topic, len(b.Records), b.bytes)
			}
			if err := stream.Send(&dislogv1.ProduceResponse{BaseOffset: base, Duplicate: r.Duplicate, Partition: uint32(b.partition)}); err != nil {
				return err
			}
			base += uint64(len(b.Records))
		}
	}
	return nil
}

// merge is the one batch of a group of stream requests to one partition.
func merge(group []batch) partition.Batch {
	if len(group) == 1 {
		return group[0].Batch
	}
	b := partition.Batch{ProducerID: group[0].ProducerID, Sequence: group[0].Sequence}
	for _, g := range group {
		b.Records = append(b.Records, g.Records...)
	}
	return b
}

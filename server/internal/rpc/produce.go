package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/internal/codec"
	"github.com/dislog/dislog/server/internal/fsm"
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
	topic      string
	records    [][]byte
	bytes      int
	producerID uint64
	sequence   uint64
}

// encode validates a produce request and encodes its records for an FSM command. Whether the topic
// exists is the FSM's to say: a follower may not have applied its creation yet.
func (s *Service) encode(req *dislogv1.ProduceRequest) (batch, error) {
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
	buf := make([]byte, 0, total)
	records := make([][]byte, len(recs))
	for i, r := range recs {
		start := len(buf)
		buf = codec.Append(buf, r)
		records[i] = buf[start:len(buf):len(buf)]
	}
	return batch{topic: name, records: records, bytes: total, producerID: req.GetProducerId(), sequence: req.GetSequence()}, nil
}

// command is the FSM command that appends batches (one, or several merged from a stream).
func command(group []batch) []byte {
	c := fsm.Command{Kind: fsm.KindProduce, Topic: group[0].topic, ProducerID: group[0].producerID, Sequence: group[0].sequence, Time: time.Now().UnixNano()}
	if len(group) == 1 {
		c.Records = group[0].records
	} else {
		for _, b := range group {
			c.Records = append(c.Records, b.records...)
		}
	}
	return fsm.AppendCommand(make([]byte, 0, fsm.CommandSize(&c)), &c)
}

// Produce appends one batch.
func (s *Service) Produce(ctx context.Context, req *dislogv1.ProduceRequest) (*dislogv1.ProduceResponse, error) {
	b, err := s.encode(req)
	if err != nil {
		return nil, err
	}
	r, err := s.cfg.Cluster.Submit(ctx, command([]batch{b}))()
	if err != nil {
		return nil, err
	}
	if r.Err != nil {
		return nil, ResultError(r.Err)
	}
	if !r.Duplicate {
		s.countProduced(b.topic, len(b.records), b.bytes)
	}
	return &dislogv1.ProduceResponse{BaseOffset: r.BaseOffset, Duplicate: r.Duplicate}, nil
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

// inFlight is a command submitted for a group of stream requests, waiting for its result.
type inFlight struct {
	wait  func() (*fsm.Result, error)
	group []batch
	err   error
}

// ProduceStream appends the batches of a stream in order. A reader goroutine validates and encodes
// requests ahead of the writer; the writer merges the requests waiting for the same topic (without
// a producer id, whose batches are deduplicated one by one) into one Raft command and submits it
// without waiting; an acker waits for each command's result in order and answers its requests. That
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
		for bytes < maxMergeBytes && first.producerID == 0 {
			select {
			case it, ok := <-items:
				if !ok {
					break merge
				}
				if it.err != nil || it.topic != first.topic || it.producerID != 0 {
					pending = &it
					break merge
				}
				group = append(group, it.batch)
				bytes += it.bytes
			default:
				break merge
			}
		}
		wait := s.cfg.Cluster.Submit(ctx, command(group))
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
		if r.Err != nil {
			return ResultError(r.Err)
		}
		base := r.BaseOffset
		for _, b := range f.group {
			if !r.Duplicate {
				s.countProduced(b.topic, len(b.records), b.bytes)
			}
			if err := stream.Send(&dislogv1.ProduceResponse{BaseOffset: base, Duplicate: r.Duplicate}); err != nil {
				return err
			}
			base += uint64(len(b.records))
		}
	}
	return nil
}

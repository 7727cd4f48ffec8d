package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Position is where a subscription starts. The zero Position is Earliest.
type Position struct {
	kind   positionKind
	offset uint64
	time   time.Time
}

type positionKind int

const (
	positionEarliest positionKind = iota
	positionLatest
	positionOffset
	positionTime
)

// Earliest starts at the oldest record the topic holds.
func Earliest() Position { return Position{} }

// Latest starts after the last record the topic holds when the subscription starts.
func Latest() Position { return Position{kind: positionLatest} }

// AtOffset starts at offset, which must be in [lowest offset, next offset] of the topic.
func AtOffset(offset uint64) Position { return Position{kind: positionOffset, offset: offset} }

// AtTime starts at the first record appended at or after t.
func AtTime(t time.Time) Position { return Position{kind: positionTime, time: t} }

func (p Position) String() string {
	switch p.kind {
	case positionLatest:
		return "latest"
	case positionOffset:
		return fmt.Sprintf("offset %d", p.offset)
	case positionTime:
		return "time " + p.time.Format(time.RFC3339Nano)
	}
	return "earliest"
}

// Defaults of the subscription's reconnection backoff.
const (
	DefaultMinBackoff = 50 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// SubscribeOption configures Subscribe.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	partition              int
	stopAtEnd              bool
	minBackoff, maxBackoff time.Duration
	onReconnect            func(err error, delay time.Duration)
}

// Partition makes Subscribe read partition p of the topic; the default is partition 0.
// SubscribeAll ignores it.
func Partition(p int) SubscribeOption { return func(o *subscribeOptions) { o.partition = p } }

// StopAtEnd ends the subscription once it has delivered the last record the topic held, instead of
// following the tail.
func StopAtEnd() SubscribeOption { return func(o *subscribeOptions) { o.stopAtEnd = true } }

// WithBackoff sets how long a subscription waits before reconnecting after its stream failed: min
// at first, doubling up to max while reconnecting fails. Defaults DefaultMinBackoff and
// DefaultMaxBackoff.
func WithBackoff(min, max time.Duration) SubscribeOption {
	return func(o *subscribeOptions) { o.minBackoff, o.maxBackoff = min, max }
}

// OnReconnect calls f with the error of each failed stream and the delay before the next attempt,
// so an application can tell that its subscription is reconnecting.
func OnReconnect(f func(err error, delay time.Duration)) SubscribeOption {
	return func(o *subscribeOptions) { o.onReconnect = f }
}

// Subscribe returns the records of one partition of topic (Partition; default 0) from a starting
// point, in offset order; SubscribeAll reads every partition. Unless StopAtEnd is given, the sequence follows the tail: once caught up it waits for new records and delivers
// each as it is written, until ctx ends or the loop stops.
//
// When the stream fails in a way a retry can fix (the server restarts, the connection drops: codes
// Unavailable and Aborted), the subscription reconnects with backoff and resumes after the last
// record it delivered, so no record is skipped or delivered twice. Any other error, or the end of
// ctx, is yielded once and ends the sequence:
//
//	for rec, err := range c.Subscribe(ctx, "orders", client.AtOffset(0)) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(rec.Offset, string(rec.Value))
//	}
//
// The records' byte slices are not reused: a loop may keep them.
func (c *Client) Subscribe(ctx context.Context, topic string, from Position, opts ...SubscribeOption) iter.Seq2[Record, error] {
	o := subscribeOptions{minBackoff: DefaultMinBackoff, maxBackoff: DefaultMaxBackoff}
	for _, opt := range opts {
		opt(&o)
	}
	return func(yield func(Record, error) bool) {
		if err := checkPartition(o.partition); err != nil {
			yield(Record{}, err)
			return
		}
		s := subscription{c: c, topic: topic, partition: o.partition, from: from, opts: o}
		s.run(ctx, yield)
	}
}

type subscription struct {
	c         *Client
	topic     string
	partition int
	from      Position
	opts      subscribeOptions

	// next is the offset after the last record delivered, once delivered is true.
	next      uint64
	delivered bool
}

func (s *subscription) run(ctx context.Context, yield func(Record, error) bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	backoff := s.opts.minBackoff
	for {
		err := s.resolveLatest(ctx)
		if err == nil {
			var stop, healthy bool
			stop, healthy, err = s.stream(ctx, yield)
			if stop {
				return
			}
			if healthy {
				backoff = s.opts.minBackoff
			}
		}
		if ctx.Err() != nil {
			yield(Record{}, ctx.Err())
			return
		}
		if !resumable(err) {
			yield(Record{}, err)
			return
		}
		if s.opts.onReconnect != nil {
			s.opts.onReconnect(err, backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			yield(Record{}, ctx.Err())
			return
		}
		backoff = min(2*backoff, s.opts.maxBackoff)
	}
}

// resolveLatest turns Latest into the partition's next offset, so a reconnection before the first
// record resumes where the subscription began, not at a later end.
func (s *subscription) resolveLatest(ctx context.Context) error {
	if s.from.kind != positionLatest {
		return nil
	}
	info, err := s.c.DescribeTopic(ctx, s.topic)
	if err != nil {
		return err
	}
	switch {
	case s.partition < len(info.PartitionInfo):
		s.from = AtOffset(info.PartitionInfo[s.partition].NextOffset)
	case s.partition == 0:
		s.from = AtOffset(info.NextOffset)
	default:
		return status.Errorf(codes.InvalidArgument, "client: partition %d is out of range: topic %q has %d partitions", s.partition, s.topic, info.Partitions)
	}
	return nil
}

// stream runs one ConsumeStream from where the subscription is. It returns stop when the sequence is
// over (the consumer stopped, or the stream reached the end with StopAtEnd), healthy when the
// stream started before it failed, and the error that ended it otherwise.
func (s *subscription) stream(ctx context.Context, yield func(Record, error) bool) (stop, healthy bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := &dislogv1.ConsumeStreamRequest{Topic: s.topic, Partition: uint32(s.partition), Follow: !s.opts.stopAtEnd, ReadYourWrites: true}
	switch from := s.from; {
	case s.delivered:
		req.Start = &dislogv1.ConsumeStreamRequest_Offset{Offset: s.next}
	case from.kind == positionOffset:
		req.Start = &dislogv1.ConsumeStreamRequest_Offset{Offset: from.offset}
	case from.kind == positionTime:
		req.Start = &dislogv1.ConsumeStreamRequest_Time{Time: timestamppb.New(from.time)}
	default:
		req.Start = &dislogv1.ConsumeStreamRequest_Position{Position: dislogv1.StartPosition_START_POSITION_EARLIEST}
	}
	stream, err := s.c.api.ConsumeStream(s.c.readRoute(ctx, s.topic, s.partition), req)
	if err != nil {
		s.c.routes.invalidate(s.topic)
		return false, false, err
	}
	// The server sends headers as soon as the stream starts.
	if _, err := stream.Header(); err != nil {
		return false, false, err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return true, true, nil
		}
		if err != nil {
			// The replica may have gone, or stopped holding the partition: ask again.
			s.c.routes.invalidate(s.topic)
			return false, true, err
		}
		for _, p := range resp.GetRecords() {
			rec := RecordFromProto(p)
			rec.Partition = s.partition
			if s.delivered && rec.Offset < s.next {
				continue
			}
			if s.delivered && rec.Offset != s.next {
				return false, true, status.Errorf(codes.DataLoss,
					"client: topic %q partition %d: the server sent offset %d after %d; offsets were skipped", s.topic, s.partition, rec.Offset, s.next-1)
			}
			if !yield(rec, nil) {
				return true, true, nil
			}
			s.next, s.delivered = rec.Offset+1, true
		}
	}
}

// resumable reports whether a stream that failed with err may be opened again.
func resumable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted:
		return true
	}
	return false
}

// SubscribeAll returns the records of every partition of topic, as Subscribe returns one
// partition's, merged as they arrive: each record's Partition says where it is from, and the
// records of a partition come in offset order, but the partitions interleave in no set order.
// from applies to each partition (AtOffset: the same offset in each). The topic's partition count
// is read when the sequence starts (DescribeTopic): a partition added later is not read.
//
// With StopAtEnd the sequence ends once every partition has delivered its last record. An error
// that ends one partition's subscription is yielded once and ends the sequence; so does the end
// of ctx.
func (c *Client) SubscribeAll(ctx context.Context, topic string, from Position, opts ...SubscribeOption) iter.Seq2[Record, error] {
	o := subscribeOptions{minBackoff: DefaultMinBackoff, maxBackoff: DefaultMaxBackoff}
	for _, opt := range opts {
		opt(&o)
	}
	return func(yield func(Record, error) bool) {
		info, err := c.DescribeTopic(ctx, topic)
		if err != nil {
			yield(Record{}, err)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		type item struct {
			rec Record
			err error
			end bool
		}
		items := make(chan item)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		for p := range info.Partitions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := subscription{c: c, topic: topic, partition: p, from: from, opts: o}
				s.run(ctx, func(rec Record, err error) bool {
					select {
					case items <- item{rec: rec, err: err}:
						return true
					case <-ctx.Done():
						return false
					}
				})
				select {
				case items <- item{end: true}:
				case <-ctx.Done():
				}
			}()
		}
		for running := info.Partitions; running > 0; {
			var it item
			select {
			case it = <-items:
			case <-ctx.Done():
				// Only the caller's context ends it while the loop runs.
				yield(Record{}, ctx.Err())
				return
			}
			switch {
			case it.end:
				running--
			case it.err != nil:
				yield(Record{}, it.err)
				return
			case !yield(it.rec, nil):
				return
			}
		}
	}
}

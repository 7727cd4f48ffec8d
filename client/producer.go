package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults of ProducerOptions.
const (
	DefaultLinger          = 2 * time.Millisecond
	DefaultMaxBatchBytes   = 1 << 20
	DefaultMaxBatchRecords = 8192
	DefaultMaxInFlight     = 8
)

// ErrProducerClosed is the result of a record sent to a closed producer.
var ErrProducerClosed = errors.New("client: producer closed")

// ErrUnknownOutcome wraps the error of a record whose batch was on its way to the server when the
// connection failed: the server may or may not have written it. The producer does not resend such a
// record, since that could write it twice; whoever sent it decides.
var ErrUnknownOutcome = errors.New("client: the connection failed before the server acknowledged the record; it may or may not be written")

// ProducerOptions configures a Producer. Zero fields take the defaults.
type ProducerOptions struct {
	// Linger is how long a batch that is not full waits for more records before it is sent. A batch
	// also waits while MaxInFlight batches are in flight, and grows meanwhile. Default DefaultLinger;
	// negative sends each batch as soon as a slot in flight is free.
	Linger time.Duration
	// MaxBatchBytes bounds the keys, values and headers of a batch; a larger record goes alone in a
	// batch. It must stay under the server's maximum message size (16 MiB by default). Default
	// DefaultMaxBatchBytes.
	MaxBatchBytes int
	// MaxBatchRecords bounds the records of a batch. Default DefaultMaxBatchRecords.
	MaxBatchRecords int
	// MaxInFlight is how many batches may be sent and not yet acknowledged. With one batch filling
	// behind them, it bounds the producer's memory, and Send waits when it is reached. Default
	// DefaultMaxInFlight.
	MaxInFlight int
}

func (o *ProducerOptions) setDefaults() error {
	if o.MaxBatchBytes < 0 || o.MaxBatchRecords < 0 || o.MaxInFlight < 0 {
		return fmt.Errorf("client: producer options: MaxBatchBytes %d, MaxBatchRecords %d, MaxInFlight %d: none may be negative",
			o.MaxBatchBytes, o.MaxBatchRecords, o.MaxInFlight)
	}
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.MaxBatchRecords == 0 {
		o.MaxBatchRecords = DefaultMaxBatchRecords
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	return nil
}

// Producer appends records to one topic asynchronously: Send queues a record and returns at once
// with its Result; the producer gathers records into batches, by Linger and size, and keeps up to
// MaxInFlight batches pipelined on one ProduceStream. Records sent from one goroutine are written in
// the order they were sent, and results complete in that order.
//
// Every record gets a result: its offset, or the error that kept it out of the log. A batch the
// server refuses (an unknown topic, a record over its size limit, an ACL denial) fails all of its
// records and none after it; the batches behind it, which the server did not write, are sent again.
// When the connection fails, the records on their way get an error wrapping ErrUnknownOutcome.
//
// A Producer is safe for concurrent use. Close it to send what is left and release it.
type Producer struct {
	c     *Client
	topic string
	opts  ProducerOptions

	mu sync.Mutex
	// cur is the batch filling, nil if none.
	cur *batch
	// last is the batch sealed last: Flush waits for it.
	last *batch
	// unacked counts the sealed batches without a result; at most MaxInFlight.
	unacked int
	// room is closed, and replaced, when a batch completes or the producer closes: a Send waiting
	// for a slot tries again.
	room   chan struct{}
	closed bool

	// sealed carries batches to run, in order. Its capacity is MaxInFlight, so a seal, which
	// happens only below MaxInFlight unacked batches, never blocks.
	sealed chan *batch
	done   chan struct{}
}

// batch is one ProduceRequest and the result of its records.
type batch struct {
	req   *dislogv1.ProduceRequest
	bytes int
	// ready is set when the batch should go as soon as a slot is free: its linger passed or a
	// Flush asked for it.
	ready bool
	timer *time.Timer

	done chan struct{}
	base uint64
	err  error
}

// Result is the outcome of one Send.
type Result struct {
	b *batch
	i int
}

// Done is closed once the result is known.
func (r Result) Done() <-chan struct{} { return r.b.done }

// Wait waits for the result and returns the record's offset, or the error that kept it from being
// written. It returns ctx's error if ctx ends first; the record is still on its way.
func (r Result) Wait(ctx context.Context) (uint64, error) {
	select {
	case <-r.b.done:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if r.b.err != nil {
		return 0, r.b.err
	}
	return r.b.base + uint64(r.i), nil
}

func failedResult(err error) Result {
	b := &batch{done: make(chan struct{}), err: err}
	close(b.done)
	return Result{b: b}
}

// NewProducer returns a producer of records to topic over c. It opens its stream with the first
// batch.
func NewProducer(c *Client, topic string, opts ProducerOptions) (*Producer, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	p := &Producer{
		c:      c,
		topic:  topic,
		opts:   opts,
		room:   make(chan struct{}),
		sealed: make(chan *batch, opts.MaxInFlight),
		done:   make(chan struct{}),
	}
	go p.run()
	return p, nil
}

// recordSize estimates what a record adds to a request: its bytes and a little framing.
func recordSize(r *dislogv1.Record) int {
	n := len(r.Key) + len(r.Value) + 8
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}

// Send queues rec to be written and returns its result. It waits while MaxInFlight batches are in
// flight and the batch filling is full; if ctx ends first, the result is ctx's error and the record
// is not sent. The producer keeps rec's byte slices until the result is known: do not change them.
func (p *Producer) Send(ctx context.Context, rec Record) Result {
	pr := rec.proto()
	size := recordSize(pr)
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return failedResult(ErrProducerClosed)
		}
		if p.cur == nil || p.fits(p.cur, size) {
			break
		}
		if p.sealLocked() {
			continue
		}
		room := p.room
		p.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return failedResult(ctx.Err())
		}
		p.mu.Lock()
	}
	if p.cur == nil {
		p.cur = p.newBatch()
	}
	b := p.cur
	i := len(b.req.Records)
	b.req.Records = append(b.req.Records, pr)
	b.bytes += size
	if b.ready || p.full(b) {
		p.sealLocked()
	}
	p.mu.Unlock()
	return Result{b: b, i: i}
}

func (p *Producer) newBatch() *batch {
	b := &batch{
		req:  &dislogv1.ProduceRequest{Topic: p.topic, Records: make([]*dislogv1.Record, 0, 64)},
		done: make(chan struct{}),
	}
	if p.opts.Linger < 0 {
		b.ready = true
	} else {
		b.timer = time.AfterFunc(p.opts.Linger, func() { p.lingered(b) })
	}
	return b
}

// fits reports whether a record of size bytes may join b. An empty batch takes any record.
func (p *Producer) fits(b *batch, size int) bool {
	n := len(b.req.Records)
	return n == 0 || n < p.opts.MaxBatchRecords && b.bytes+size <= p.opts.MaxBatchBytes
}

func (p *Producer) full(b *batch) bool {
	return len(b.req.Records) >= p.opts.MaxBatchRecords || b.bytes >= p.opts.MaxBatchBytes
}

// lingered marks b ready when its linger has passed.
func (p *Producer) lingered(b *batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == b {
		b.ready = true
		p.sealLocked()
	}
}

// sealLocked hands the filling batch to run if a slot is free, and reports whether it did.
func (p *Producer) sealLocked() bool {
	b := p.cur
	if b == nil || p.unacked >= p.opts.MaxInFlight {
		return false
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	p.cur, p.last = nil, b
	p.unacked++
	p.sealed <- b
	return true
}

// complete sets b's result and frees its slot.
func (p *Producer) complete(b *batch, base uint64, err error) {
	b.base, b.err = base, err
	close(b.done)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unacked--
	close(p.room)
	p.room = make(chan struct{})
	if p.cur != nil && (p.cur.ready || p.full(p.cur)) {
		p.sealLocked()
	}
}

// Flush sends the records queued so far without waiting for their linger, and waits for their
// results (see Result for each one's outcome), or until ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	target := p.last
	if p.cur != nil {
		target = p.cur
		p.cur.ready = true
		p.sealLocked()
	}
	p.mu.Unlock()
	if target == nil {
		return nil
	}
	select {
	case <-target.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close sends the records queued, waits for all results, and closes the stream. Sends after Close,
// or waiting for room when it is called, fail with ErrProducerClosed. Close does not close the
// Client.
func (p *Producer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return nil
	}
	p.closed = true
	close(p.room)
	p.room = make(chan struct{})
	p.mu.Unlock()

	if err := p.Flush(context.Background()); err != nil {
		return err
	}
	// Closed and flushed: nothing seals again, so sealed may close.
	close(p.sealed)
	<-p.done
	return nil
}

// streamAck is one answer from a stream: a response, or the error that ended it (io.EOF if the
// server ended it cleanly).
type streamAck struct {
	gen  int
	resp *dislogv1.ProduceResponse
	err  error
}

// run sends sealed batches on the stream and completes them as the acknowledgements arrive. It
// owns the stream and the queue of batches in flight.
func (p *Producer) run() {
	defer close(p.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var (
		stream       dislogv1.LogService_ProduceStreamClient
		streamCancel context.CancelFunc
		gen          int
		inflight     []*batch
	)
	// A stream answers at most one ack per batch in flight, then its error: with this capacity a
	// receiver never blocks, so it can never hold up the server while run is blocked in Send.
	acks := make(chan streamAck, p.opts.MaxInFlight+1)
	send := func(b *batch) {
		if stream == nil {
			sctx, c := context.WithCancel(ctx)
			s, err := p.c.api.ProduceStream(sctx)
			if err != nil {
				c()
				// The stream never carried anything, so the server wrote none of the batches.
				for _, b := range inflight {
					p.complete(b, 0, err)
				}
				inflight = inflight[:0]
				return
			}
			gen++
			stream, streamCancel = s, c
			go receive(ctx, gen, s, acks)
		}
		// A failed Send means the stream is broken; its Recv reports why, and that error settles
		// the batches in flight.
		_ = stream.Send(b.req)
	}
	dropStream := func() {
		streamCancel()
		stream, streamCancel = nil, nil
	}

	sealed := p.sealed
	for sealed != nil || len(inflight) > 0 {
		select {
		case b, ok := <-sealed:
			if !ok {
				sealed = nil
				continue
			}
			inflight = append(inflight, b)
			send(b)
		case a := <-acks:
			if a.gen != gen {
				continue
			}
			if a.err == nil {
				if len(inflight) == 0 {
					// An answer to no request: the stream is out of step; start a new one.
					dropStream()
					continue
				}
				b := inflight[0]
				inflight = inflight[1:]
				p.complete(b, a.resp.GetBaseOffset(), nil)
				continue
			}
			dropStream()
			if len(inflight) == 0 {
				continue
			}
			err := a.err
			if errors.Is(err, io.EOF) {
				err = status.Errorf(codes.Unavailable, "the server ended the produce stream with %d requests unanswered", len(inflight))
			}
			if !refused(err) {
				for _, b := range inflight {
					p.complete(b, 0, fmt.Errorf("%w: %w", ErrUnknownOutcome, err))
				}
				inflight = inflight[:0]
				continue
			}
			// The server refused the first request in flight and wrote none after it: fail that
			// one, send the others again on a new stream.
			p.complete(inflight[0], 0, err)
			rest := inflight[1:]
			inflight = nil
			for _, b := range rest {
				inflight = append(inflight, b)
				send(b)
			}
		}
	}
	if stream != nil {
		if err := stream.CloseSend(); err == nil {
			// Wait for the server to end the stream, so it is not cut mid-way.
			for a := range acks {
				if a.gen == gen && a.err != nil {
					break
				}
			}
		}
		streamCancel()
	}
}

// receive passes a stream's answers to run until the stream ends or run returns.
func receive(ctx context.Context, gen int, s dislogv1.LogService_ProduceStreamClient, acks chan<- streamAck) {
	for {
		resp, err := s.Recv()
		select {
		case acks <- streamAck{gen: gen, resp: resp, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// refused reports whether err is the server's answer to a request it did not write, as opposed
// to a failure of the connection that leaves the request's outcome unknown.
func refused(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.OutOfRange, codes.ResourceExhausted,
		codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition:
		return true
	}
	return false
}

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

// ErrUnknownOutcome wraps the error of a record whose batch was sent, failed in a way that leaves
// its outcome unknown (the connection, the stream or the leader failed before the answer came),
// and could not be acknowledged on a retry before the retries ran out (ProducerOptions.MaxRetries
// and DeliveryTimeout, WithProduceRetries, the call's context). The cluster may or may not have
// written it, but never twice.
var ErrUnknownOutcome = errors.New("client: no acknowledgement before the retries ran out; the record may or may not be written (once at most)")

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
	// MaxRetries is how many times a batch is sent again after a failure that leaves its outcome
	// unknown (the connection, the stream or the leader failed before the answer came) or a
	// refusal by a server that is not the leader. It goes with the same producer id and sequence,
	// to the leader of the moment, and the cluster writes it once. Default DefaultMaxRetries;
	// negative never retries.
	MaxRetries int
	// DeliveryTimeout bounds the time from a batch's first send to its acknowledgement, retries
	// included; a batch that takes longer fails with ErrUnknownOutcome. Default
	// DefaultDeliveryTimeout.
	DeliveryTimeout time.Duration
}

func (o *ProducerOptions) setDefaults() error {
	if o.MaxBatchBytes < 0 || o.MaxBatchRecords < 0 || o.MaxInFlight < 0 || o.DeliveryTimeout < 0 {
		return fmt.Errorf("client: producer options: MaxBatchBytes %d, MaxBatchRecords %d, MaxInFlight %d, DeliveryTimeout %s: none may be negative",
			o.MaxBatchBytes, o.MaxBatchRecords, o.MaxInFlight, o.DeliveryTimeout)
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
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	if o.DeliveryTimeout == 0 {
		o.DeliveryTimeout = DefaultDeliveryTimeout
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
//
// Produces are idempotent: each batch carries a producer id and a sequence number, so when the
// connection, the stream or the leader fails before a batch is acknowledged, the producer sends it
// again, on a new stream to the leader of the moment, and the cluster writes it once however many
// times it arrives (see MaxRetries and DeliveryTimeout; a batch they give up on fails with
// ErrUnknownOutcome).
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

	// Set by run: the lane whose producer id and sequence the batch carries, the failures that
	// left its outcome unknown so far, and when it stops being retried.
	lane     *lane
	attempts int
	deadline time.Time

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

// sender is the state of the run goroutine: it sends sealed batches on a ProduceStream, completes
// them as the acknowledgements arrive, and sends them again on a new stream when one fails.
type sender struct {
	p   *Producer
	ctx context.Context

	stream       dislogv1.LogService_ProduceStreamClient
	streamCancel context.CancelFunc
	// gen numbers the streams; answers of an older stream are ignored.
	gen  int
	acks chan streamAck

	// inflight are the batches sealed and not completed, in the order sealed. While a stream is
	// open, all of them were sent on it; while backing off (retry set), they wait.
	inflight []*batch
	// lanes are the lanes free for the next batch; there are never more than MaxInFlight busy.
	lanes   []*lane
	retry   *time.Timer
	backoff time.Duration
	// deadline fires at the first batch's delivery deadline.
	deadline *time.Timer

	// On a cluster: the leader the stream was opened to ("" if none was known), a channel closed
	// when the client learns of another, and the hedge, which fires while batches wait unanswered
	// (see hedgeAfter); nil without a cluster.
	streamLeader  string
	leaderChanged <-chan struct{}
	hedge         *time.Timer
}

// run sends sealed batches and completes them. It owns the stream and the batches in flight.
func (p *Producer) run() {
	defer close(p.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &sender{
		p:   p,
		ctx: ctx,
		// A stream answers at most one ack per batch in flight, then its error, and the
		// receivers of older streams stop: with this capacity a receiver never blocks, so it can
		// never hold up the server while run is blocked in Send.
		acks:     make(chan streamAck, p.opts.MaxInFlight+1),
		backoff:  minRetryBackoff,
		deadline: time.NewTimer(time.Hour),
	}
	s.deadline.Stop()
	var hedge <-chan time.Time
	if l := p.c.leader; l != nil {
		s.streamLeader, s.leaderChanged = l.Get()
		s.hedge = time.NewTimer(time.Hour)
		s.hedge.Stop()
		defer s.hedge.Stop()
		hedge = s.hedge.C
	}
	sealed := p.sealed
	for sealed != nil || len(s.inflight) > 0 {
		var retry <-chan time.Time
		if s.retry != nil {
			retry = s.retry.C
		}
		select {
		case <-s.leaderChanged:
			s.followLeader()
		case <-hedge:
			if s.stream != nil && len(s.inflight) > 0 {
				p.c.leader.ResolveNow()
				s.hedge.Reset(hedgeEvery)
			}
		case b, ok := <-sealed:
			if !ok {
				sealed = nil
				continue
			}
			s.add(b)
		case <-retry:
			s.retry = nil
			s.resend()
		case <-s.deadline.C:
			if len(s.inflight) > 0 && !time.Now().Before(s.inflight[0].deadline) {
				s.failed(status.Errorf(codes.DeadlineExceeded, "no acknowledgement within the delivery timeout %s", p.opts.DeliveryTimeout))
				s.resend()
			}
		case a := <-s.acks:
			s.ack(a)
		}
		if len(s.inflight) > 0 && s.retry == nil {
			s.deadline.Reset(time.Until(s.inflight[0].deadline))
		} else {
			s.deadline.Stop()
		}
	}
	if s.stream != nil {
		if err := s.stream.CloseSend(); err == nil {
			// Wait for the server to end the stream, so it is not cut mid-way.
			for a := range s.acks {
				if a.gen == s.gen && a.err != nil {
					break
				}
			}
		}
		s.streamCancel()
	}
}

// followLeader moves the batches in flight to a new stream when the client learns that another
// server leads than the one the stream went to: that one may be frozen, its stream open and
// silent. They go again with their producer ids and sequences, which the cluster deduplicates.
func (s *sender) followLeader() {
	var now string
	now, s.leaderChanged = s.p.c.leader.Get()
	if now == "" {
		return // an election: the stream's server may yet lead again
	}
	moved := s.streamLeader != "" && now != s.streamLeader
	s.streamLeader = now
	if !moved || s.stream == nil {
		return
	}
	s.dropStream()
	if len(s.inflight) > 0 && s.retry == nil {
		s.resend()
	}
}

// armHedge starts the wait after which unanswered batches make the client ask who leads.
func (s *sender) armHedge() {
	if s.hedge != nil && len(s.inflight) > 0 {
		s.hedge.Reset(hedgeAfter)
	}
}

// add numbers a sealed batch with a free lane and sends it.
func (s *sender) add(b *batch) {
	if n := len(s.lanes); n > 0 {
		b.lane, s.lanes = s.lanes[n-1], s.lanes[:n-1]
	} else {
		b.lane = newLane()
	}
	b.lane.stamp(b.req)
	b.deadline = time.Now().Add(s.p.opts.DeliveryTimeout)
	s.inflight = append(s.inflight, b)
	if len(s.inflight) == 1 {
		s.armHedge()
	}
	switch {
	case s.retry != nil:
		// It goes with the others when the backoff ends.
	case s.stream == nil:
		s.resend()
	default:
		// A failed Send means the stream is broken; its Recv reports why, and that error settles
		// the batches in flight.
		_ = s.stream.Send(b.req)
	}
}

// resend opens a stream and sends every batch in flight on it.
func (s *sender) resend() {
	for len(s.inflight) > 0 && s.retry == nil {
		if err := s.open(); err != nil {
			s.failed(err)
			continue
		}
		for _, b := range s.inflight {
			_ = s.stream.Send(b.req)
		}
		return
	}
}

func (s *sender) open() error {
	if s.hedge != nil {
		s.streamLeader, s.leaderChanged = s.p.c.leader.Get()
		s.armHedge()
	}
	sctx, cancel := context.WithCancel(s.ctx)
	// Opening waits while the leader is connecting; not past the first batch's deadline.
	t := time.AfterFunc(time.Until(s.inflight[0].deadline), cancel)
	stream, err := s.p.c.api.ProduceStream(sctx)
	t.Stop()
	if err != nil {
		cancel()
		return err
	}
	s.gen++
	s.stream, s.streamCancel = stream, cancel
	go receive(sctx, s.gen, stream, s.acks)
	return nil
}

func (s *sender) dropStream() {
	if s.stream != nil {
		s.streamCancel()
		s.stream, s.streamCancel = nil, nil
		s.gen++
	}
}

func (s *sender) ack(a streamAck) {
	if a.gen != s.gen {
		return
	}
	if a.err != nil {
		s.failed(a.err)
		s.resend()
		return
	}
	if len(s.inflight) == 0 {
		// An answer to no request: the stream is out of step; start a new one.
		s.dropStream()
		return
	}
	b := s.inflight[0]
	s.inflight = s.inflight[1:]
	s.backoff = minRetryBackoff
	s.armHedge() // the stream answers: wait again before asking who leads
	// A duplicate answer is a success too: the batch was written by an earlier attempt, at
	// the offsets the answer gives.
	s.finish(b, a.resp.GetBaseOffset(), nil)
}

// failed settles the batches in flight after the stream failed, or could not be opened, with
// err. A refused first batch fails and the others wait for a new stream; after a failure that
// leaves the outcome unknown all of them are sent again after a backoff, but those out of retries.
func (s *sender) failed(err error) {
	s.dropStream()
	if len(s.inflight) == 0 {
		return
	}
	if errors.Is(err, io.EOF) {
		err = status.Errorf(codes.Unavailable, "the server ended the produce stream with %d requests unanswered", len(s.inflight))
	}
	if refused(err) {
		// The server refused the first request in flight and wrote none after it.
		b := s.inflight[0]
		s.inflight = s.inflight[1:]
		s.finish(b, 0, err)
		return
	}
	if !retryable(err) || s.p.c.closed() {
		for _, b := range s.inflight {
			s.finish(b, 0, fmt.Errorf("%w: %w", ErrUnknownOutcome, err))
		}
		s.inflight = s.inflight[:0]
		return
	}
	retryAt := time.Now().Add(s.backoff)
	keep := s.inflight[:0]
	for _, b := range s.inflight {
		b.attempts++
		if b.attempts > s.p.opts.MaxRetries || retryAt.After(b.deadline) {
			s.finish(b, 0, fmt.Errorf("%w: %w", ErrUnknownOutcome, err))
			continue
		}
		keep = append(keep, b)
	}
	s.inflight = keep
	if len(keep) > 0 {
		s.retry = time.NewTimer(s.backoff)
		s.backoff = min(2*s.backoff, maxRetryBackoff)
	}
}

// finish completes b. Its lane takes the next batch if b was acknowledged, and is dropped
// otherwise (see lane).
func (s *sender) finish(b *batch, base uint64, err error) {
	if err == nil {
		s.lanes = append(s.lanes, b.lane)
	} else if b.attempts > 0 && !errors.Is(err, ErrUnknownOutcome) {
		// An earlier attempt may have written it.
		err = fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	}
	s.p.complete(b, base, err)
}

// receive passes a stream's answers to run until the stream ends or is dropped.
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

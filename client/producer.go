package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/client/internal/cluster"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
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
	// MaxInFlight is how many batches of a partition may be sent and not yet acknowledged. With
	// one batch filling behind them, it bounds the producer's memory per partition, and Send waits
	// when the partition of its record reaches it. Default DefaultMaxInFlight.
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
	// Partitioner chooses each record's partition. Nil, or a negative answer, chooses as Kafka's
	// default partitioner does: KeyPartition of the record's key, and for a record without a key
	// a sticky partition, one chosen at random that keyless records go to until a batch of that
	// partition is sealed, so that they fill batches rather than spread thin (FixedPartition
	// sends every record to one partition).
	Partitioner Partitioner
}

// Partitioner chooses the partition of a record of a topic of partitions partitions: 0 to
// partitions-1, or a negative number for the producer's default choice. It is called with the
// producer's lock held, in the order of the Sends: it must be quick and must not call the
// producer.
type Partitioner func(rec Record, partitions int) int

// FixedPartition returns a Partitioner that sends every record to partition p.
func FixedPartition(p int) Partitioner { return func(Record, int) int { return p } }

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
// with its Result; the producer chooses each record's partition (ProducerOptions.Partitioner),
// gathers each partition's records into batches, by Linger and size, and keeps up to MaxInFlight
// batches of each partition pipelined on a ProduceStream to that partition's leader. Records of a
// partition sent from one goroutine are written in the order they were sent, and their results
// complete in that order. A partition whose leader changes, or stops answering, holds up its own
// records only.
//
// The producer learns the topic's partitions and their leaders from DescribeTopic when the first
// record is sent, and again when the cluster changes. For a topic it cannot describe (a server from
// before partitions, an ACL that allows produces only) it sends every record as to a topic of one
// partition, to the cluster's leader, as before partitions.
//
// Every record gets a result: its partition and offset, or the error that kept it out of the log.
// A batch the server refuses (an unknown topic, a record over its size limit, an ACL denial) fails
// all of its records and none after it; the batches behind it, which the server did not write, are
// sent again.
//
// Produces are idempotent: each batch carries a producer id and a sequence number of its
// partition, so when the connection, the stream or the leader fails before a batch is
// acknowledged, the producer sends it again, on a new stream to the partition's leader of the
// moment, and the cluster writes it once however many times it arrives (see MaxRetries and
// DeliveryTimeout; a batch they give up on fails with ErrUnknownOutcome).
//
// A Producer is safe for concurrent use. Close it to send what is left and release it.
type Producer struct {
	c     *Client
	topic string
	opts  ProducerOptions

	mu sync.Mutex
	// parts are the partitions records were sent to, by partition.
	parts map[int]*partitionProducer
	// sticky is the partition of keyless records until a batch of it is sealed, -1 if none is
	// chosen; lastSticky is the one before.
	sticky, lastSticky int
	// described is set once Send has asked for the topic's description.
	described bool
	closed    bool

	lanes laneSet
}

// partitionProducer is the batches of one partition and the goroutine that sends them. Its fields
// but sealed and done are guarded by the Producer's mu.
type partitionProducer struct {
	p         *Producer
	partition int

	// cur is the batch filling, nil if none.
	cur *batch
	// last is the batch sealed last: Flush waits for it.
	last *batch
	// unacked counts the sealed batches without a result; at most MaxInFlight.
	unacked int
	// room is closed, and replaced, when a batch completes or the producer closes: a Send waiting
	// for a slot tries again.
	room chan struct{}

	// sealed carries batches to run, in order. Its capacity is MaxInFlight, so a seal, which
	// happens only below MaxInFlight unacked batches, never blocks.
	sealed chan *batch
	done   chan struct{}
}

// batch is one ProduceRequest and the result of its records.
type batch struct {
	pp    *partitionProducer
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

	done      chan struct{}
	partition int
	base      uint64
	err       error
}

// Result is the outcome of one Send.
type Result struct {
	b *batch
	i int
}

// Done is closed once the result is known.
func (r Result) Done() <-chan struct{} { return r.b.done }

// Wait waits for the result and returns the record's offset in its partition (Partition), or the
// error that kept it from being written. It returns ctx's error if ctx ends first; the record is
// still on its way.
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

// Partition returns the partition the record was sent to. Once Done is closed it is the one the
// server wrote it to (for a topic the producer could not describe, the server chooses).
func (r Result) Partition() int {
	select {
	case <-r.b.done:
		return r.b.partition
	default:
		return r.b.pp.partitionOrZero()
	}
}

func (pp *partitionProducer) partitionOrZero() int {
	if pp == nil {
		return 0
	}
	return pp.partition
}

func failedResult(err error) Result {
	b := &batch{done: make(chan struct{}), err: err}
	close(b.done)
	return Result{b: b}
}

// NewProducer returns a producer of records to topic over c. It describes the topic and opens its
// streams when the first records are sent.
func NewProducer(c *Client, topic string, opts ProducerOptions) (*Producer, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	return &Producer{c: c, topic: topic, opts: opts, parts: map[int]*partitionProducer{}, sticky: -1, lastSticky: -1}, nil
}

// recordSize estimates what a record adds to a request: its bytes and a little framing.
func recordSize(r *dislogv1.Record) int {
	n := len(r.Key) + len(r.Value) + 8
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}

// Send queues rec to be written and returns its result. It waits while MaxInFlight batches of the
// record's partition are in flight and the batch filling is full; if ctx ends first, the result is
// ctx's error and the record is not sent. The first Send waits for the topic's description. The
// producer keeps rec's byte slices until the result is known: do not change them.
func (p *Producer) Send(ctx context.Context, rec Record) Result {
	pr := rec.proto()
	size := recordSize(pr)
	routes := p.routes(ctx)
	p.mu.Lock()
	partition, explicit, err := p.choose(rec, routes)
	if err != nil {
		p.mu.Unlock()
		return failedResult(err)
	}
	var pp *partitionProducer
	for {
		if p.closed {
			p.mu.Unlock()
			return failedResult(ErrProducerClosed)
		}
		pp = p.partitionLocked(partition)
		if pp.cur == nil || pp.fits(pp.cur, size) {
			break
		}
		if pp.sealLocked() {
			continue
		}
		room := pp.room
		p.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return failedResult(ctx.Err())
		}
		p.mu.Lock()
	}
	if pp.cur == nil {
		pp.cur = pp.newBatch(explicit)
	}
	b := pp.cur
	i := len(b.req.Records)
	b.req.Records = append(b.req.Records, pr)
	b.bytes += size
	if b.ready || pp.full(b) {
		pp.sealLocked()
	}
	p.mu.Unlock()
	return Result{b: b, i: i}
}

// routes returns the topic's description, asking for it on the first Send; nil if the cluster
// could not say.
func (p *Producer) routes(ctx context.Context) *topicRoutes {
	p.mu.Lock()
	described := p.described
	p.described = true
	p.mu.Unlock()
	if routes := p.c.routes.peek(p.topic); routes != nil || described {
		return routes
	}
	routes, _ := p.c.routes.get(ctx, p.topic, "")
	return routes
}

// choose returns the partition of rec, and whether its batch names it (it does when the topic's
// partitions are known, or the Partitioner chose).
func (p *Producer) choose(rec Record, routes *topicRoutes) (partition int, explicit bool, err error) {
	n := routes.count()
	partition = -1
	if f := p.opts.Partitioner; f != nil {
		partition = f(rec, n)
	}
	if partition >= 0 {
		if err := checkPartition(partition); err != nil {
			return 0, false, err
		}
		if routes.known() && partition >= n {
			return 0, false, status.Errorf(codes.InvalidArgument, "client: partition %d is out of range: topic %q has %d partitions", partition, p.topic, n)
		}
		return partition, true, nil
	}
	if len(rec.Key) > 0 {
		return KeyPartition(rec.Key, n), routes.known(), nil
	}
	if p.sticky < 0 || p.sticky >= n {
		p.sticky = rand.IntN(n)
		if n > 1 && p.sticky == p.lastSticky {
			p.sticky = (p.lastSticky + 1 + rand.IntN(n-1)) % n
		}
	}
	return p.sticky, routes.known(), nil
}

// partitionLocked returns the producer of a partition, starting it if it is the first record of
// that partition.
func (p *Producer) partitionLocked(partition int) *partitionProducer {
	if pp := p.parts[partition]; pp != nil {
		return pp
	}
	pp := &partitionProducer{
		p:         p,
		partition: partition,
		room:      make(chan struct{}),
		sealed:    make(chan *batch, p.opts.MaxInFlight),
		done:      make(chan struct{}),
	}
	p.parts[partition] = pp
	go pp.run()
	return pp
}

func (pp *partitionProducer) newBatch(explicit bool) *batch {
	b := &batch{
		pp:        pp,
		req:       &dislogv1.ProduceRequest{Topic: pp.p.topic, Records: make([]*dislogv1.Record, 0, 64)},
		partition: pp.partition,
		done:      make(chan struct{}),
	}
	if explicit {
		b.req.Partition = proto.Uint32(uint32(pp.partition))
	}
	if pp.p.opts.Linger < 0 {
		b.ready = true
	} else {
		b.timer = time.AfterFunc(pp.p.opts.Linger, func() { pp.lingered(b) })
	}
	return b
}

// fits reports whether a record of size bytes may join b. An empty batch takes any record.
func (pp *partitionProducer) fits(b *batch, size int) bool {
	n := len(b.req.Records)
	return n == 0 || n < pp.p.opts.MaxBatchRecords && b.bytes+size <= pp.p.opts.MaxBatchBytes
}

func (pp *partitionProducer) full(b *batch) bool {
	return len(b.req.Records) >= pp.p.opts.MaxBatchRecords || b.bytes >= pp.p.opts.MaxBatchBytes
}

// lingered marks b ready when its linger has passed.
func (pp *partitionProducer) lingered(b *batch) {
	pp.p.mu.Lock()
	defer pp.p.mu.Unlock()
	if pp.cur == b {
		b.ready = true
		pp.sealLocked()
	}
}

// sealLocked hands the filling batch to run if a slot is free, and reports whether it did. Sealing
// a batch of the sticky partition makes keyless records choose another.
func (pp *partitionProducer) sealLocked() bool {
	b := pp.cur
	if b == nil || pp.unacked >= pp.p.opts.MaxInFlight {
		return false
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	pp.cur, pp.last = nil, b
	pp.unacked++
	pp.sealed <- b
	if p := pp.p; p.sticky == pp.partition {
		p.lastSticky, p.sticky = p.sticky, -1
	}
	return true
}

// complete sets b's result and frees its slot.
func (pp *partitionProducer) complete(b *batch, partition int, base uint64, err error) {
	b.partition, b.base, b.err = partition, base, err
	close(b.done)
	pp.p.mu.Lock()
	defer pp.p.mu.Unlock()
	pp.unacked--
	close(pp.room)
	pp.room = make(chan struct{})
	if pp.cur != nil && (pp.cur.ready || pp.full(pp.cur)) {
		pp.sealLocked()
	}
}

// Flush sends the records queued so far without waiting for their linger, and waits for their
// results (see Result for each one's outcome), or until ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	var targets []*batch
	for _, pp := range p.parts {
		target := pp.last
		if pp.cur != nil {
			target = pp.cur
			pp.cur.ready = true
			pp.sealLocked()
		}
		if target != nil {
			targets = append(targets, target)
		}
	}
	p.mu.Unlock()
	for _, b := range targets {
		select {
		case <-b.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close sends the records queued, waits for all results, and closes the streams. Sends after
// Close, or waiting for room when it is called, fail with ErrProducerClosed. Close does not close
// the Client.
func (p *Producer) Close() error {
	p.mu.Lock()
	if p.closed {
		parts := p.partsLocked()
		p.mu.Unlock()
		for _, pp := range parts {
			<-pp.done
		}
		return nil
	}
	p.closed = true
	for _, pp := range p.parts {
		close(pp.room)
		pp.room = make(chan struct{})
	}
	parts := p.partsLocked()
	p.mu.Unlock()

	if err := p.Flush(context.Background()); err != nil {
		return err
	}
	// Closed and flushed: nothing seals again, so sealed may close.
	for _, pp := range parts {
		close(pp.sealed)
	}
	for _, pp := range parts {
		<-pp.done
	}
	return nil
}

func (p *Producer) partsLocked() []*partitionProducer {
	parts := make([]*partitionProducer, 0, len(p.parts))
	for _, pp := range p.parts {
		parts = append(parts, pp)
	}
	return parts
}

// laneSet is a producer's lanes. A lane carries at most one batch in flight per partition, and
// batches of several partitions at once: a producer id is shared by the partitions, with a
// sequence per partition.
type laneSet struct {
	mu    sync.Mutex
	lanes []*lane
	// busy holds the partitions each lane has a batch in flight on.
	busy map[*lane]map[uint32]bool
}

// take numbers req with a lane that has no batch in flight on its partition, and returns it.
func (s *laneSet) take(req *dislogv1.ProduceRequest) *lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy == nil {
		s.busy = map[*lane]map[uint32]bool{}
	}
	p := req.GetPartition()
	var l *lane
	for _, free := range s.lanes {
		if !s.busy[free][p] {
			l = free
			break
		}
	}
	if l == nil {
		l = newLane()
		s.lanes = append(s.lanes, l)
		s.busy[l] = map[uint32]bool{}
	}
	s.busy[l][p] = true
	l.stamp(req)
	return l
}

// release ends l's batch on partition p. A lane whose batch failed is dropped (see lane): the
// batches it carries on other partitions finish, and it takes no more.
func (s *laneSet) release(l *lane, p uint32, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy[l], p)
	if !ok {
		if i := slices.Index(s.lanes, l); i >= 0 {
			s.lanes = slices.Delete(s.lanes, i, i+1)
		}
	}
	if len(s.busy[l]) == 0 && !slices.Contains(s.lanes, l) {
		delete(s.busy, l)
	}
}

// streamAck is one answer from a stream: a response, or the error that ended it (io.EOF if the
// server ended it cleanly).
type streamAck struct {
	gen  int
	resp *dislogv1.ProduceResponse
	err  error
}

// sender is the state of a partition's run goroutine: it sends the partition's sealed batches on
// a ProduceStream, completes them as the acknowledgements arrive, and sends them again on a new
// stream when one fails.
type sender struct {
	p   *Producer
	pp  *partitionProducer
	ctx context.Context

	stream       dislogv1.LogService_ProduceStreamClient
	streamCancel context.CancelFunc
	// gen numbers the streams; answers of an older stream are ignored.
	gen  int
	acks chan streamAck

	// inflight are the batches sealed and not completed, in the order sealed. While a stream is
	// open, all of them were sent on it; while backing off (retry set), they wait.
	inflight []*batch
	retry    *time.Timer
	backoff  time.Duration
	// deadline fires at the first batch's delivery deadline.
	deadline *time.Timer

	// On a cluster: the cluster's leader the stream was opened to ("" if none was known), a
	// channel closed when the client learns of another, and the hedge, which fires while batches
	// wait unanswered (see hedgeAfter); nil without a cluster.
	streamLeader  string
	leaderChanged <-chan struct{}
	hedge         *time.Timer
	// On a cluster, for a stream routed by the topic's description: the ID of the partition's
	// leader it was opened to, and a channel closed when a newer description replaces that one;
	// "" and nil for a stream to the cluster's leader. avoid is a leader that failed, not to ask
	// who leads now.
	partitionLeader string
	routesReplaced  <-chan struct{}
	avoid           string
}

// run sends the partition's sealed batches and completes them. It owns the stream and the
// batches in flight.
func (pp *partitionProducer) run() {
	defer close(pp.done)
	p := pp.p
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &sender{
		p:   p,
		pp:  pp,
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
	sealed := pp.sealed
	for sealed != nil || len(s.inflight) > 0 {
		var retry <-chan time.Time
		if s.retry != nil {
			retry = s.retry.C
		}
		select {
		case <-s.leaderChanged:
			s.followLeader()
		case <-s.routesReplaced:
			s.followPartitionLeader()
		case <-hedge:
			if s.stream != nil && len(s.inflight) > 0 {
				p.c.leader.ResolveNow()
				if s.partitionLeader != "" {
					p.c.routes.refreshAsync(p.topic, s.partitionLeader)
				}
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
	if s.partitionLeader != "" {
		// The cluster changed: the partition's leader may have too.
		s.p.c.routes.refreshAsync(s.p.topic, s.partitionLeader)
		return
	}
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

// followPartitionLeader moves the batches in flight to a new stream when a newer description of
// the topic names another leader of the partition than the one the stream went to, as
// followLeader does for the cluster's leader.
func (s *sender) followPartitionLeader() {
	routes := s.p.c.routes.peek(s.p.topic)
	s.routesReplaced = nil
	if routes != nil {
		s.routesReplaced = routes.replaced
	}
	now := routes.leader(s.pp.partition)
	if now == "" || now == s.partitionLeader || s.stream == nil || s.partitionLeader == "" {
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
	b.lane = s.p.lanes.take(b.req)
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
	sctx, cancel := context.WithCancel(s.ctx)
	// Opening waits while the leader is connecting; not past the first batch's deadline.
	t := time.AfterFunc(time.Until(s.inflight[0].deadline), cancel)
	if s.hedge != nil {
		s.streamLeader, s.leaderChanged = s.p.c.leader.Get()
		s.partitionLeader, s.routesReplaced = "", nil
		// Batches that name their partition go to its leader, if the topic's description (asked
		// for again if a failure made it out of date) names one; else to the cluster's leader.
		if s.inflight[0].req.Partition != nil {
			routes, _ := s.p.c.routes.get(sctx, s.p.topic, s.avoid)
			if route, ok := routes.route(s.pp.partition); ok && route.Leader != "" {
				sctx = cluster.WithRoute(sctx, route)
				s.partitionLeader, s.routesReplaced = route.Leader, routes.replaced
			}
		}
		s.avoid = ""
		s.armHedge()
	}
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
	partition := s.pp.partition
	if b.req.Partition == nil {
		partition = int(a.resp.GetPartition()) // the server chose
	}
	s.finish(b, partition, a.resp.GetBaseOffset(), nil)
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
		s.finish(b, s.pp.partition, 0, err)
		return
	}
	if !retryable(err) || s.p.c.closed() {
		for _, b := range s.inflight {
			s.finish(b, s.pp.partition, 0, fmt.Errorf("%w: %w", ErrUnknownOutcome, err))
		}
		s.inflight = s.inflight[:0]
		return
	}
	if s.partitionLeader != "" {
		// The partition's leader refused the batches as not the leader, or failed: the next
		// stream asks who leads it now, away from that one.
		s.p.c.routes.invalidate(s.p.topic)
		s.avoid = s.partitionLeader
	}
	retryAt := time.Now().Add(s.backoff)
	keep := s.inflight[:0]
	for _, b := range s.inflight {
		b.attempts++
		if b.attempts > s.p.opts.MaxRetries || retryAt.After(b.deadline) {
			s.finish(b, s.pp.partition, 0, fmt.Errorf("%w: %w", ErrUnknownOutcome, err))
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
func (s *sender) finish(b *batch, partition int, base uint64, err error) {
	s.p.lanes.release(b.lane, b.req.GetPartition(), err == nil)
	if err != nil && b.attempts > 0 && !errors.Is(err, ErrUnknownOutcome) {
		// An earlier attempt may have written it.
		err = fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	}
	s.pp.complete(b, partition, base, err)
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

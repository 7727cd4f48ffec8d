package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dislog/dislog/client"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// stampBytes is the size of the send time a Mixed producer writes at the start of each value: Unix
// nanoseconds, big-endian.
const stampBytes = 8

// How often a run samples its timeline and reports progress.
const (
	sampleInterval   = time.Second
	progressInterval = 200 * time.Millisecond
)

// rateSlice is the time over which a rate limit holds exactly: records may come in bursts of
// that long's worth.
const rateSlice = 10 * time.Millisecond

// drainTimeout bounds how long Mixed consumers may take, once the producers are done, to read what
// they wrote.
const drainTimeout = 30 * time.Second

// run is one Run in progress.
type run struct {
	cfg     Config
	limiter *rate.Limiter // nil without a rate limit
	payload []byte
	// partitions is the topic's partition count; info its description when the run began.
	partitions int
	info       client.TopicInfo
	start      time.Time
	end        time.Time // when a run with a Duration stops starting operations
	// failoversDone, set for a run with a Failover, is closed once its kills are over: the run
	// goes on past end until then, so that a kill late in the run is measured to its end.
	failoversDone chan struct{}
	// onStart, if set, is called just before the measurement starts.
	onStart func()

	produce, consume *recorder
}

// Dial connects one client to the servers under test.
type Dial func() (*client.Client, error)

// Run dials cfg.Clients clients (and cfg.Consumers more for Mixed), each on its own connection,
// creates the topic if it does not exist, fills it for Replay, and then measures the workload. It
// fails if the run cannot start; records that fail during the measurement are counted in the
// report, with samples of their errors. If ctx ends during the measurement, Run returns the report
// so far with ctx's error.
func Run(ctx context.Context, dial Dial, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, payload: make([]byte, cfg.RecordSize)}
	for i := range r.payload {
		r.payload[i] = byte('a' + i%26)
	}
	if cfg.Rate > 0 {
		r.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), burst(cfg))
	}

	n := cfg.Clients
	if cfg.Workload == Mixed {
		n += cfg.Consumers
	}
	clients, err := dialAll(ctx, dial, cfg, n)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	// Elections are not what a run measures: it starts once every partition has a leader.
	if r.info, err = AwaitLeaders(ctx, clients, cfg.Topic, leaderTimeout); err != nil {
		return nil, err
	}
	r.partitions = r.info.Partitions

	var measure func(ctx context.Context, clients []*client.Client)
	switch cfg.Workload {
	case Sync:
		r.produce = newRecorder("each Produce call (1 record)")
		measure = r.each(r.syncProducer)
	case Async:
		r.produce = newRecorder("each record, from Send to its result")
		measure = r.each(r.asyncProducer)
	case Batch:
		r.produce = newRecorder(fmt.Sprintf("each ProduceBatch call (%d records)", cfg.Batch))
		measure = r.each(r.batchProducer)
	case Replay:
		r.consume = newRecorder("the wait for each record")
		need := cfg.Preload
		if cfg.Count > 0 {
			need = share(cfg.Count, 0, cfg.Clients)
		}
		if err := preload(ctx, clients, cfg.Topic, need, r.payload); err != nil {
			return nil, err
		}
		measure = r.each(r.replayer)
	case Mixed:
		r.produce = newRecorder("each record, from Send to its result")
		r.consume = newRecorder("each record, end to end: from Send to the subscriber")
		from := ends(r.info)
		measure = func(ctx context.Context, clients []*client.Client) {
			r.mixed(ctx, clients[:cfg.Clients], clients[cfg.Clients:], from)
		}
	}

	var (
		kills       []Kill
		failoverErr error
	)
	if f := cfg.Failover; f != nil {
		a := &acks{}
		r.produce.acks = a
		work := measure
		r.failoversDone = make(chan struct{})
		measure = func(ctx context.Context, clients []*client.Client) {
			nemesisCtx, stop := context.WithCancel(ctx)
			go func() {
				defer close(r.failoversDone)
				kills, failoverErr = r.failovers(nemesisCtx, f, a)
			}()
			work(ctx, clients)
			stop()
			<-r.failoversDone
		}
	}
	var usage *usageProbe
	if cfg.Processes != nil {
		r.onStart = func() { usage = startUsage(cfg.Processes) }
	}
	elapsed := r.measure(ctx, clients, measure)
	rep := &Report{
		Workload:          cfg.Workload,
		Topic:             cfg.Topic,
		Partitions:        r.partitions,
		ReplicationFactor: r.info.ReplicationFactor,
		Keys:              cfg.Keys,
		RecordSize:        cfg.RecordSize,
		Clients:           cfg.Clients,
		Rate:              cfg.Rate,
		Count:             cfg.Count,
		Duration:          cfg.Duration.Seconds(),
		ElapsedSeconds:    elapsed.Seconds(),
	}
	switch cfg.Workload {
	case Async:
		rep.Window = cfg.Window
	case Batch:
		rep.Batch = cfg.Batch
	case Mixed:
		rep.Window, rep.Consumers = cfg.Window, cfg.Consumers
	}
	if r.produce != nil {
		rep.Produce = r.produce.stats()
	}
	if r.consume != nil {
		rep.Consume = r.consume.stats()
	}
	if cfg.Failover != nil {
		rep.Failover = failoverStats(kills)
	}
	var usageErr, leadersErr error
	if usage != nil {
		records, bytes := rep.acknowledged()
		rep.Servers, rep.Cluster, usageErr = usage.finish(elapsed.Seconds(), records, bytes)
	}
	if cfg.Leaders && ctx.Err() == nil {
		rep.Leaders, leadersErr = leaders(ctx, clients, cfg.Topic)
	}
	return rep, errors.Join(failoverErr, usageErr, leadersErr, ctx.Err())
}

// leaders counts the partitions of topic each server leads and holds.
func leaders(ctx context.Context, clients []*client.Client, topic string) (*Leaders, error) {
	info, err := Describe(ctx, clients, topic)
	if err != nil {
		return nil, err
	}
	servers, err := serverNames(ctx, clients[0])
	if err != nil {
		return nil, err
	}
	return CountLeaders(info, servers), nil
}

// burst is the rate limiter's burst: a batch, and at least rateSlice's worth of records, since a
// wait shorter than a timer's granularity (tens of microseconds) would take longer than asked and
// keep the rate under the limit.
func burst(cfg Config) int {
	b := max(1, int(math.Ceil(cfg.Rate*rateSlice.Seconds())))
	if cfg.Workload == Batch {
		b = max(b, cfg.Batch)
	}
	return b
}

// dialAll dials n clients, creates the topic if need be, and makes a call on each so that the
// measurement does not include connecting. It returns the clients dialed even when it fails, for
// the caller to close.
func dialAll(ctx context.Context, dial Dial, cfg Config, n int) ([]*client.Client, error) {
	topic := cfg.Topic
	var clients []*client.Client
	for range n {
		c, err := dial()
		if err != nil {
			return clients, fmt.Errorf("bench: dial: %w", err)
		}
		clients = append(clients, c)
	}
	_, err := clients[0].CreateTopic(ctx, topic, client.TopicConfig{Partitions: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return clients, fmt.Errorf("bench: create topic %q: %w", topic, err)
	}
	for _, c := range clients {
		if err := awaitTopic(ctx, c, topic); err != nil {
			return clients, err
		}
	}
	return clients, nil
}

// awaitTopic waits until the server c reads from knows topic: in a cluster, a follower learns of a
// topic created through the leader a moment later.
func awaitTopic(ctx context.Context, c *client.Client, topic string) error {
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := c.DescribeTopic(ctx, topic)
		if status.Code(err) != codes.NotFound || time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("bench: describe topic %q: %w", topic, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// preload makes sure topic holds at least n records from offset 0 of its partitions, producing the
// ones missing.
func preload(ctx context.Context, clients []*client.Client, topic string, n int64, value []byte) error {
	info, err := Describe(ctx, clients, topic)
	if err != nil {
		return err
	}
	held := int64(0)
	for p, end := range ends(info) {
		lowest := info.LowestOffset
		if len(info.PartitionInfo) > 0 {
			lowest = info.PartitionInfo[p].LowestOffset
		}
		if lowest > 0 {
			return fmt.Errorf("bench: partition %d of topic %q starts at offset %d, and a replay reads from 0: use a new topic", p, topic, lowest)
		}
		held += int64(end)
	}
	if held >= n {
		return nil
	}
	p, err := client.NewProducer(clients[0], topic, client.ProducerOptions{})
	if err != nil {
		return err
	}
	// Results complete in the order sent; every one is checked, since a refused batch fails its
	// records while later ones succeed.
	results := make(chan client.Result, 4096)
	var first error
	var wg sync.WaitGroup
	wg.Go(func() {
		for res := range results {
			if _, err := res.Wait(ctx); err != nil && first == nil {
				first = err
			}
		}
	})
	for range n - held {
		results <- p.Send(ctx, client.Record{Value: value})
	}
	close(results)
	wg.Wait()
	if err := errors.Join(first, p.Close()); err != nil {
		return fmt.Errorf("bench: fill topic %q for the replay: %w", topic, err)
	}
	return nil
}

// measure runs f on the clients, with the timeline sampler and the progress reports, and returns
// how long f took.
func (r *run) measure(ctx context.Context, clients []*client.Client, f func(context.Context, []*client.Client)) time.Duration {
	recorders := []*recorder{}
	for _, rec := range []*recorder{r.produce, r.consume} {
		if rec != nil {
			recorders = append(recorders, rec)
		}
	}
	if r.onStart != nil {
		r.onStart()
	}
	r.start = time.Now()
	r.end = r.start.Add(r.cfg.Duration)
	for _, rec := range recorders {
		rec.begin(r.start)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		sample := time.NewTicker(sampleInterval)
		defer sample.Stop()
		progress := time.NewTicker(progressInterval)
		defer progress.Stop()
		for {
			select {
			case now := <-sample.C:
				for _, rec := range recorders {
					rec.sample(now)
				}
			case now := <-progress.C:
				if r.cfg.OnProgress != nil {
					var p Progress
					for _, rec := range recorders {
						p.Records += rec.done()
					}
					p.Elapsed = now.Sub(r.start)
					r.cfg.OnProgress(p)
				}
			case <-stop:
				return
			}
		}
	})
	f(ctx, clients)
	end := time.Now()
	close(stop)
	wg.Wait()
	for _, rec := range recorders {
		rec.finish(end)
	}
	return end.Sub(r.start)
}

// each returns a measurement that runs worker on every client at once, client i with its share of
// the count.
func (r *run) each(worker func(ctx context.Context, c *client.Client, b *budget)) func(context.Context, []*client.Client) {
	return func(ctx context.Context, clients []*client.Client) {
		var wg sync.WaitGroup
		for i, c := range clients {
			b := r.budget(i, len(clients))
			wg.Go(func() { worker(ctx, c, b) })
		}
		wg.Wait()
	}
}

// budget is how many records one client may still produce or read: a count, or until a time.
type budget struct {
	client int   // the client's index, from 0
	left   int64 // with a count
	until  time.Time
	// hold, if not nil, extends until: records are handled until it is closed too.
	hold <-chan struct{}
}

func (r *run) budget(i, n int) *budget {
	if r.cfg.Count > 0 {
		return &budget{client: i, left: share(r.cfg.Count, i, n)}
	}
	b := &budget{client: i, until: r.end}
	if r.failoversDone != nil {
		b.hold = r.failoversDone
	}
	return b
}

// take returns how many of n more records the client may handle now, and counts them as handled.
func (b *budget) take(n int) int {
	if !b.until.IsZero() {
		if time.Now().Before(b.until) {
			return n
		}
		if b.hold != nil {
			select {
			case <-b.hold:
			default:
				return n
			}
		}
		return 0
	}
	n = int(min(int64(n), b.left))
	b.left -= int64(n)
	return n
}

// wait waits for the rate limit to allow n more records.
func (r *run) wait(ctx context.Context, n int) error {
	if r.limiter == nil {
		return nil
	}
	return r.limiter.WaitN(ctx, n)
}

// failed records that records records failed with err, unless err comes from the end of ctx, which
// interrupts the run rather than failing a record.
func failed(ctx context.Context, rec *recorder, err error, records int) {
	if ctx.Err() != nil {
		return
	}
	rec.fail(err, records)
}

// keys makes the keys of one client's records: KeyBytes bytes, a different one each.
type keys struct {
	client int
	n      int64
}

func (k *keys) next() []byte {
	k.n++
	return fmt.Appendf(nil, "%04d-%011d", k.client%10_000, k.n%100_000_000_000)
}

// producer sends one call's records: with keys, to their key's partition (the first record's, as
// the server would choose); without, to the topic's partitions in turn, from the client's own.
type producer struct {
	r    *run
	c    *client.Client
	keys *keys
	next int // the next partition, without keys
}

func (r *run) newProducer(c *client.Client, b *budget) *producer {
	p := &producer{r: r, c: c, next: b.client}
	if r.cfg.Keys {
		p.keys = &keys{client: b.client}
	}
	return p
}

// send produces recs, all of them to one partition, and returns the bytes of record data sent.
func (p *producer) send(ctx context.Context, recs []client.Record) (int, error) {
	n := 0
	var key []byte
	if p.keys != nil {
		key = p.keys.next()
	}
	for i := range recs {
		recs[i].Key = key
		n += len(key) + len(recs[i].Value)
	}
	var err error
	switch {
	case p.keys != nil || p.r.partitions <= 1:
		_, err = p.c.ProduceBatch(ctx, p.r.cfg.Topic, recs)
	default:
		partition := p.next % p.r.partitions
		p.next++
		_, err = p.c.ProduceTo(ctx, p.r.cfg.Topic, partition, recs)
	}
	return n, err
}

func (r *run) syncProducer(ctx context.Context, c *client.Client, b *budget) {
	p := r.newProducer(c, b)
	recs := []client.Record{{Value: r.payload}}
	for b.take(1) == 1 && r.wait(ctx, 1) == nil {
		start := time.Now()
		n, err := p.send(ctx, recs)
		if err != nil {
			failed(ctx, r.produce, err, 1)
			continue
		}
		r.produce.observe(time.Since(start), 1, n)
	}
}

func (r *run) batchProducer(ctx context.Context, c *client.Client, b *budget) {
	p := r.newProducer(c, b)
	recs := make([]client.Record, r.cfg.Batch)
	for i := range recs {
		recs[i].Value = r.payload
	}
	for {
		n := b.take(len(recs))
		if n == 0 || r.wait(ctx, n) != nil {
			return
		}
		start := time.Now()
		size, err := p.send(ctx, recs[:n])
		if err != nil {
			failed(ctx, r.produce, err, n)
			continue
		}
		r.produce.observe(time.Since(start), n, size)
	}
}

// asyncProducer sends records through a client.Producer, with at most Window of them waiting for
// their results.
func (r *run) asyncProducer(ctx context.Context, c *client.Client, b *budget) {
	p, err := client.NewProducer(c, r.cfg.Topic, client.ProducerOptions{Linger: r.cfg.Linger})
	if err != nil {
		failed(ctx, r.produce, err, 0)
		return
	}
	type sent struct {
		result client.Result
		at     time.Time
		bytes  int
	}
	var ks *keys
	if r.cfg.Keys {
		ks = &keys{client: b.client}
	}
	window := make(chan struct{}, r.cfg.Window)
	// Results complete in the order sent, so one goroutine takes them in that order.
	pending := make(chan sent, r.cfg.Window)
	var wg sync.WaitGroup
	wg.Go(func() {
		for s := range pending {
			if _, err := s.result.Wait(ctx); err != nil {
				failed(ctx, r.produce, err, 1)
			} else {
				r.produce.observe(time.Since(s.at), 1, s.bytes)
			}
			<-window
		}
	})
	for b.take(1) == 1 && r.wait(ctx, 1) == nil {
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		now := time.Now()
		value := r.payload
		if r.cfg.Workload == Mixed {
			value = make([]byte, len(r.payload))
			copy(value, r.payload)
			binary.BigEndian.PutUint64(value, uint64(now.UnixNano()))
		}
		rec := client.Record{Value: value}
		if ks != nil {
			rec.Key = ks.next()
		}
		pending <- sent{result: p.Send(ctx, rec), at: now, bytes: len(rec.Key) + len(value)}
	}
	close(pending)
	wg.Wait()
	if err := p.Close(); err != nil {
		failed(ctx, r.produce, err, 0)
	}
}

// replayer reads the topic from offset 0 to its end, once with a count (the topic holds at least
// the client's share) and again and again with a duration. A topic of several partitions is read
// from all of them at once (SubscribeAll).
func (r *run) replayer(ctx context.Context, c *client.Client, b *budget) {
	subscribe := c.Subscribe
	if r.partitions > 1 {
		subscribe = c.SubscribeAll
	}
	for pass := 0; r.cfg.Count == 0 || pass == 0; pass++ {
		last := time.Now()
		for rec, err := range subscribe(ctx, r.cfg.Topic, client.AtOffset(0), client.StopAtEnd()) {
			if err != nil {
				failed(ctx, r.consume, err, 1)
				return
			}
			if b.take(1) == 0 {
				return
			}
			r.consume.observe(time.Since(last), 1, len(rec.Key)+len(rec.Value))
			if r.wait(ctx, 1) != nil {
				return
			}
			last = time.Now()
		}
	}
}

// mixed runs the producers and, at the same time, consumers that follow every partition of the
// topic from where it ended, from[p], until they have read every record the producers wrote.
func (r *run) mixed(ctx context.Context, producers, consumers []*client.Client, from []uint64) {
	// target is how many records each consumer is to read, -1 until the producers are done.
	var target atomic.Int64
	target.Store(-1)
	type consumer struct {
		read   *atomic.Int64
		cancel context.CancelFunc
	}
	cs := make([]consumer, len(consumers))
	var cwg sync.WaitGroup
	for i, c := range consumers {
		cctx, cancel := context.WithCancel(ctx)
		cs[i] = consumer{read: new(atomic.Int64), cancel: cancel}
		cwg.Go(func() {
			defer cancel()
			r.follower(cctx, c, from, cs[i].read, &target)
		})
	}
	r.each(r.asyncProducer)(ctx, producers)
	r.produce.finish(time.Now())

	// Every record acknowledged must reach every consumer.
	// A consumer checks the target after counting a record, and this checks the count after setting
	// the target: one of the two sees the other's write, so no consumer waits for a record that
	// will not come.
	target.Store(r.produce.written())
	for _, c := range cs {
		if c.read.Load() >= target.Load() {
			c.cancel()
		}
	}
	done := make(chan struct{})
	go func() { cwg.Wait(); close(done) }()
	timer := time.NewTimer(drainTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		for i, c := range cs {
			if read := c.read.Load(); read < target.Load() {
				r.consume.fail(fmt.Errorf("bench: consumer %d read %d of the %d records produced within %s of the producers' end",
					i+1, read, target.Load(), drainTimeout), 0)
			}
			c.cancel()
		}
		<-done
	}
}

// follower reads every partition p of the topic from offset from[p], each on a subscription of its
// own, until ctx ends or it has read target records in all.
func (r *run) follower(ctx context.Context, c *client.Client, from []uint64, read, target *atomic.Int64) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for p, off := range from {
		wg.Go(func() {
			// The last partition to reach the target ends them all.
			if r.followPartition(ctx, c, p, off, read, target) {
				cancel()
			}
		})
	}
	wg.Wait()
}

// followPartition reads partition p from offset from until ctx ends or the consumer has read
// target records in all, and reports whether it has.
func (r *run) followPartition(ctx context.Context, c *client.Client, p int, from uint64, read, target *atomic.Int64) bool {
	for rec, err := range c.Subscribe(ctx, r.cfg.Topic, client.AtOffset(from), client.Partition(p)) {
		if err != nil {
			failed(ctx, r.consume, err, 1)
			return false
		}
		now := time.Now()
		if len(rec.Value) < stampBytes {
			r.consume.fail(fmt.Errorf("bench: record %d has %d bytes, too few for a send time: is another client writing to topic %q?",
				rec.Offset, len(rec.Value), r.cfg.Topic), 1)
		} else {
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(rec.Value)))
			r.consume.observe(now.Sub(sent), 1, len(rec.Key)+len(rec.Value))
		}
		if n, t := read.Add(1), target.Load(); t >= 0 && n >= t {
			return true
		}
	}
	return false
}

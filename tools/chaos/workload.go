package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

const (
	// attemptTimeout bounds one request.
	attemptTimeout = 2 * time.Second
	// writeBudget bounds a write's retries: after it the write is given up, indeterminate unless
	// every attempt was refused.
	writeBudget = 10 * time.Second
	// The wait before a write's retry doubles from minBackoff to maxBackoff.
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// workload is the clients of a run and what they have seen.
type workload struct {
	cfg     *Config
	cl      *cluster
	logs    []Log // every partition of every topic
	start   time.Time
	limiter *rate.Limiter // nil without a cap
	hist    History

	mu   sync.Mutex
	ends map[Log]uint64 // per partition, one past the highest offset acknowledged
	// leaders are the partitions' leaders as the workload last learned them, and direct a
	// connection to each node, for the clients that send each produce to its partition's leader.
	leaders map[Log]int
	direct  []*client.Client
}

// routeInterval is how often the workload learns the partitions' leaders.
const routeInterval = 200 * time.Millisecond

// run runs the clients until ctx ends; each finishes the operation it is in first.
func (w *workload) run(ctx context.Context) error {
	var conns []*client.Client
	defer func() {
		for _, c := range append(conns, w.direct...) {
			c.Close()
		}
	}()
	w.leaders = map[Log]int{}
	for _, addr := range w.cl.lc.Addrs {
		c, err := w.cl.lc.Dial(addr, client.WithProduceRetries(0))
		if err != nil {
			return err
		}
		w.direct = append(w.direct, c)
	}
	routing := make(chan struct{})
	go func() {
		defer close(routing)
		w.learnLeaders(ctx)
	}()
	defer func() { <-routing }()
	for i := range w.cfg.Clients {
		target := "dislog:///" + strings.Join(w.cl.lc.Addrs, ",")
		if i%2 == 1 {
			target = w.cl.lc.Addrs[(i/2)%len(w.cl.lc.Addrs)]
		}
		c, err := w.cl.lc.Dial(target, client.WithProduceRetries(0))
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wk := &worker{
			id: i, w: w, api: c.API(),
			rng:       rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(i)+1)),
			group:     fmt.Sprintf("g%d", i),
			seq:       map[Log]uint64{},
			read:      map[Log]uint64{},
			committed: map[Log]uint64{},
		}
		wk.producer = wk.newProducerID()
		wg.Go(func() { wk.run(ctx) })
	}
	wg.Wait()
	return nil
}

// learnLeaders asks a node, another each time, for every topic's partition leaders every
// routeInterval until ctx ends.
func (w *workload) learnLeaders(ctx context.Context) {
	topics := []string{}
	for _, l := range w.logs {
		if !slices.Contains(topics, l.Topic) {
			topics = append(topics, l.Topic)
		}
	}
	tick := time.NewTicker(routeInterval)
	defer tick.Stop()
	for n := 0; ; n++ {
		for _, t := range topics {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			info, err := w.cl.admin[n%w.cl.size()].DescribeTopic(cctx, t)
			cancel()
			if err != nil {
				continue
			}
			w.mu.Lock()
			for _, pi := range info.PartitionInfo {
				if i := w.cl.index(pi.Leader); i >= 0 {
					w.leaders[Log{Topic: t, Partition: pi.Partition}] = i
				}
			}
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// leaderAPI is a connection to the leader of partition l as last learned, or nil.
func (w *workload) leaderAPI(l Log) dislogv1.LogServiceClient {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i, ok := w.leaders[l]; ok {
		return w.direct[i].API()
	}
	return nil
}

func (w *workload) frontier(l Log) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ends[l]
}

func (w *workload) acked(l Log, offset uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ends[l] = max(w.ends[l], offset+1)
}

// worker is one client: one operation at a time, chosen at random.
type worker struct {
	id  int
	w   *workload
	api dislogv1.LogServiceClient
	rng *rand.Rand

	producer  uint64
	seq       map[Log]uint64 // per partition, the sequence of the producer's last batch
	values    int
	group     string
	read      map[Log]uint64 // per partition, one past the highest offset this client read
	committed map[Log]uint64 // per partition, the group's last offset committed (or tried)
}

func (wk *worker) newProducerID() uint64 {
	for {
		if id := wk.rng.Uint64(); id != 0 {
			return id
		}
	}
}

func (wk *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		if wk.w.limiter != nil && wk.w.limiter.Wait(ctx) != nil {
			return
		}
		l := wk.w.logs[wk.rng.IntN(len(wk.w.logs))]
		var op Op
		switch p := wk.rng.IntN(100); {
		case p < 50:
			op = wk.produce(l)
		case p < 80:
			op = wk.readAt(l)
		case p < 92 && wk.read[l] > wk.committed[l]:
			op = wk.commit(l)
		default:
			op = wk.fetch(l)
		}
		wk.w.hist.add(op)
	}
}

func (wk *worker) now() time.Duration { return time.Since(wk.w.start) }

// call makes one request with the attempt timeout and names the node that answered.
func (wk *worker) call(op *Op, f func(ctx context.Context, opt grpc.CallOption) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	var p peer.Peer
	err := f(ctx, grpc.Peer(&p))
	op.Attempts++
	if p.Addr != nil {
		op.Node = wk.w.cl.nodeOf(p.Addr.String())
	}
	if err != nil {
		op.Err = err.Error()
	}
	return err
}

// refused reports whether err is the server's refusal of a request it did not carry out.
func refused(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.Unauthenticated, codes.ResourceExhausted, codes.FailedPrecondition, codes.OutOfRange:
		return true
	}
	return false
}

// write makes a write's attempts until one succeeds, one is refused, or the budget is spent. Its
// outcome is Indeterminate unless it succeeded or every attempt was refused.
func (wk *worker) write(op *Op, f func(ctx context.Context, opt grpc.CallOption) error) {
	deadline := time.Now().Add(writeBudget)
	backoff := minBackoff
	maybe := false
	for {
		err := wk.call(op, f)
		if err == nil {
			op.Outcome, op.Err = OK, ""
			return
		}
		// A server that does not lead wrote nothing: the request goes again, to the leader.
		if !dislogv1.IsNotLeader(err) {
			if refused(err) {
				break
			}
			maybe = true
		}
		if time.Now().Add(backoff).After(deadline) {
			break
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, maxBackoff)
	}
	op.Outcome = Failed
	if maybe {
		op.Outcome = Indeterminate
	}
}

// produce appends a value no other operation writes, as one idempotent batch: every attempt has
// the producer id and sequence of the first, so the cluster writes it at most once.
func (wk *worker) produce(l Log) Op {
	wk.values++
	op := Op{Client: wk.id, Kind: OpProduce, Topic: l.Topic, Partition: l.Partition, Value: fmt.Sprintf("%d-%d", wk.id, wk.values), Call: wk.now()}
	partition := uint32(l.Partition)
	req := &dislogv1.ProduceRequest{
		Topic: l.Topic, Partition: &partition, Records: []*dislogv1.Record{{Value: []byte(op.Value)}},
		ProducerId: wk.producer, Sequence: wk.seq[l] + 1,
	}
	wk.write(&op, func(ctx context.Context, opt grpc.CallOption) error {
		api := wk.api
		// The clients of the cluster send a produce to its partition's leader, as the Go client
		// does; the others to their node, which forwards it.
		if wk.id%2 == 0 {
			if leader := wk.w.leaderAPI(l); leader != nil {
				api = leader
			}
		}
		resp, err := api.Produce(ctx, req, opt)
		op.Offset = resp.GetBaseOffset()
		return err
	})
	op.Return = wk.now()
	switch op.Outcome {
	case OK:
		wk.seq[l]++
		wk.w.acked(l, op.Offset)
	case Indeterminate:
		// The batch may land later: a new producer id cannot be confused with it.
		wk.producer, wk.seq = wk.newProducerID(), map[Log]uint64{}
	}
	return op
}

// readAt reads, with read_your_writes, mostly around the highest offset acknowledged so far (just
// before, at, and just past the end that clients know of), sometimes anywhere below it.
func (wk *worker) readAt(l Log) Op {
	end := wk.w.frontier(l)
	var off uint64
	if end > 0 && wk.rng.IntN(10) < 3 {
		off = wk.rng.Uint64N(end)
	} else {
		off = max(end, 1) - 1 + wk.rng.Uint64N(3)
	}
	op := Op{Client: wk.id, Kind: OpRead, Topic: l.Topic, Partition: l.Partition, Offset: off, Call: wk.now()}
	err := wk.call(&op, func(ctx context.Context, opt grpc.CallOption) error {
		resp, err := wk.api.Consume(ctx, &dislogv1.ConsumeRequest{Topic: l.Topic, Partition: uint32(l.Partition), Offset: off, ReadYourWrites: true}, opt)
		if err == nil && resp.GetRecord().GetOffset() != off {
			return fmt.Errorf("asked for offset %d, got the record of offset %d", off, resp.GetRecord().GetOffset())
		}
		op.Value = string(resp.GetRecord().GetValue())
		return err
	})
	op.Return = wk.now()
	switch {
	case err == nil:
		op.Outcome = OK
		wk.read[l] = max(wk.read[l], off+1)
	case status.Code(err) == codes.OutOfRange:
		op.Outcome, op.OutOfRange, op.Err = OK, true, ""
	default:
		op.Outcome = Failed
	}
	return op
}

// commit commits the group's offset: one past the highest this client read, so always more than
// the group's last commit.
func (wk *worker) commit(l Log) Op {
	op := Op{Client: wk.id, Kind: OpCommit, Topic: l.Topic, Partition: l.Partition, Group: wk.group, Offset: wk.read[l], Call: wk.now()}
	wk.write(&op, func(ctx context.Context, opt grpc.CallOption) error {
		_, err := wk.api.CommitOffset(ctx, &dislogv1.CommitOffsetRequest{Group: wk.group, Topic: l.Topic, Partition: uint32(l.Partition), Offset: op.Offset}, opt)
		return err
	})
	op.Return = wk.now()
	if op.Outcome != Failed {
		wk.committed[l] = op.Offset
	}
	return op
}

// fetch reads the group's committed offset.
func (wk *worker) fetch(l Log) Op {
	op := Op{Client: wk.id, Kind: OpFetch, Topic: l.Topic, Partition: l.Partition, Group: wk.group, Call: wk.now()}
	err := wk.call(&op, func(ctx context.Context, opt grpc.CallOption) error {
		resp, err := wk.api.FetchOffset(ctx, &dislogv1.FetchOffsetRequest{Group: wk.group, Topic: l.Topic, Partition: uint32(l.Partition)}, opt)
		op.Offset, op.Committed = resp.GetOffset(), resp.GetCommitted()
		return err
	})
	op.Return = wk.now()
	op.Outcome = OK
	if err != nil {
		op.Outcome = Failed
	}
	return op
}

package client_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/client/internal/fakelog"
	"github.com/matryer/is"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// partitionedCluster starts a cluster of n servers led by Servers[0] and dials it; topic "p" has
// partitions partitions of replication factor rf, placed by the fake: partition i is led by
// Servers[i%n].
func partitionedCluster(t *testing.T, n, partitions, rf int, opts ...client.Option) (*fakelog.Cluster, *client.Client) {
	t.Helper()
	c := startCluster(t, n, 0)
	cl := dialCluster(t, c, c.Target(), opts...)
	info, err := cl.CreateTopic(timeout(t), "p", client.TopicConfig{Partitions: partitions, ReplicationFactor: rf})
	if err != nil {
		t.Fatal(err)
	}
	if info.Partitions != partitions || len(info.PartitionInfo) != partitions {
		t.Fatalf("created %d partitions (%d described), want %d", info.Partitions, len(info.PartitionInfo), partitions)
	}
	return c, cl
}

func key(i int) []byte { return fmt.Appendf(nil, "key-%d", i) }

// produceRequests records the produce requests each server receives.
type produceRequests struct {
	mu   sync.Mutex
	reqs map[int][]*dislogv1.ProduceRequest
}

func recordRequests(c *fakelog.Cluster) *produceRequests {
	r := &produceRequests{reqs: map[int][]*dislogv1.ProduceRequest{}}
	for i, s := range c.Servers {
		s.Refuse(func(req *dislogv1.ProduceRequest) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.reqs[i] = append(r.reqs[i], req)
			return nil
		})
	}
	return r
}

func (r *produceRequests) on(server int) []*dislogv1.ProduceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs[server])
}

func TestCreateTopicChecksPartitionsAndReplicationFactor(t *testing.T) {
	c := startCluster(t, 3, 0)
	cl := dialCluster(t, c, c.Target())
	ctx := timeout(t)
	info, err := cl.CreateTopic(ctx, "twelve", client.TopicConfig{Partitions: 12, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	is := is.New(t)
	is.Equal(info.Partitions, 12)
	is.Equal(info.ReplicationFactor, 3)
	is.Equal(info.Config.Partitions, 12)
	leads := map[string]int{}
	for i, p := range info.PartitionInfo {
		is.Equal(p.Partition, i)
		is.Equal(len(p.Replicas), 3)
		is.Equal(p.InSync, p.Replicas)
		is.Equal(p.Leader, p.Replicas[0])
		leads[p.Leader]++
	}
	is.Equal(leads, map[string]int{"fake-0": 4, "fake-1": 4, "fake-2": 4}) // leaders spread evenly

	info, err = cl.CreateTopic(ctx, "default", client.TopicConfig{})
	is.NoErr(err)
	is.Equal(info.Partitions, 1)
	is.Equal(info.ReplicationFactor, 3) // the default on three servers

	for _, tc := range []struct {
		name string
		conf client.TopicConfig
		want codes.Code
	}{
		{"too many partitions", client.TopicConfig{Partitions: 1025}, codes.InvalidArgument},
		{"a negative partition count", client.TopicConfig{Partitions: -1}, codes.InvalidArgument},
		{"a replication factor of two", client.TopicConfig{ReplicationFactor: 2}, codes.InvalidArgument},
		{"more replicas than servers", client.TopicConfig{ReplicationFactor: 5}, codes.FailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cl.CreateTopic(ctx, "bad", tc.conf)
			if status.Code(err) != tc.want {
				t.Fatalf("CreateTopic(%+v) = %v, want %s", tc.conf, err, tc.want)
			}
		})
	}
	_, err = cl.CreateTopic(ctx, "twelve", client.TopicConfig{Partitions: 3})
	is.Equal(status.Code(err), codes.AlreadyExists)
	_, err = cl.DescribeTopic(ctx, "bad")
	is.Equal(status.Code(err), codes.NotFound) // nothing was created
}

func TestProduceToSendsToThePartitionsLeader(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c, cl := partitionedCluster(t, 3, 3, 3)
	for p := range 3 {
		for i := range 4 {
			off, err := cl.ProduceTo(ctx, "p", p, []client.Record{{Value: value(i)}})
			is.NoErr(err)
			is.Equal(off, uint64(i)) // offsets are per partition
		}
	}
	is.Equal(calls(c, "Produce"), []int{4, 4, 4}) // each partition's leader took its own, no refusal
	for p := range 3 {
		is.Equal(len(c.PartitionRecords("p", p)), 4)
	}
	_, err := cl.ProduceTo(ctx, "p", 3, []client.Record{{Value: value(0)}})
	is.Equal(status.Code(err), codes.InvalidArgument) // out of range
	_, err = cl.ProduceTo(ctx, "p", -1, []client.Record{{Value: value(0)}})
	is.Equal(status.Code(err), codes.InvalidArgument)
}

func TestProduceSendsAKeyedRecordToItsKeysPartition(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c, cl := partitionedCluster(t, 3, 5, 3)
	for i := range 30 {
		off, err := cl.Produce(ctx, "p", client.Record{Key: key(i), Value: value(i)})
		is.NoErr(err)
		p := client.KeyPartition(key(i), 5)
		recs := c.PartitionRecords("p", p)
		is.Equal(recs[off].Key, key(i))
	}
	_, err := cl.Produce(ctx, "p", client.Record{Value: []byte("no key")})
	is.NoErr(err)
	recs := c.PartitionRecords("p", 0)
	is.Equal(recs[len(recs)-1].Value, []byte("no key")) // partition 0, as the server would choose
}

func TestProducerSendsEachKeyToItsPartitionsLeader(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c, cl := partitionedCluster(t, 3, 6, 3)
	reqs := recordRequests(c)
	p := newProducer(t, cl, "p", client.ProducerOptions{MaxBatchRecords: 7})
	const n = 600
	results := make([]client.Result, n)
	for i := range n {
		results[i] = p.Send(ctx, client.Record{Key: key(i % 40), Value: value(i)})
	}
	is.NoErr(p.Flush(ctx))
	next := map[int]uint64{}
	for i, r := range results {
		off, err := r.Wait(ctx)
		is.NoErr(err)
		want := client.KeyPartition(key(i%40), 6)
		is.Equal(r.Partition(), want)
		is.Equal(off, next[want]) // each partition's records in the order sent
		next[want]++
		is.Equal(c.PartitionRecords("p", want)[off].Value, value(i))
	}
	total := 0
	for part := range 6 {
		total += len(c.PartitionRecords("p", part))
	}
	is.Equal(total, n) // each record written once
	for server := range 3 {
		for _, req := range reqs.on(server) {
			is.True(req.Partition != nil)
			is.Equal(int(req.GetPartition())%3, server) // partition i is led by server i%3: no refusal
			for _, rec := range req.Records {
				is.Equal(client.KeyPartition(rec.Key, 6), int(req.GetPartition()))
			}
		}
	}
}

func TestProducerSpreadsKeylessRecordsOverPartitionsByBatch(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c, cl := partitionedCluster(t, 3, 4, 3)
	reqs := recordRequests(c)
	p := newProducer(t, cl, "p", client.ProducerOptions{MaxBatchRecords: 10, MaxInFlight: 1})
	const n = 200
	results := make([]client.Result, n)
	for i := range n {
		results[i] = p.Send(ctx, client.Record{Value: value(i)})
	}
	is.NoErr(p.Flush(ctx))
	for _, r := range results {
		_, err := r.Wait(ctx)
		is.NoErr(err)
	}
	var all []*dislogv1.ProduceRequest
	for server := range 3 {
		all = append(all, reqs.on(server)...)
	}
	used := map[uint32]int{}
	for _, req := range all {
		used[req.GetPartition()] += len(req.Records)
	}
	// A batch goes to one partition and the next sealed batch to another: the records spread.
	is.True(len(used) >= 2)
	total := 0
	for part := range 4 {
		total += len(c.PartitionRecords("p", part))
	}
	is.Equal(total, n)
	is.True(len(all) < n/2) // sticky: records fill batches rather than one batch per record
}

func TestProducerWithAFixedPartition(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c, cl := partitionedCluster(t, 3, 4, 3)
	p := newProducer(t, cl, "p", client.ProducerOptions{Partitioner: client.FixedPartition(2)})
	for i := range 10 {
		r := p.Send(ctx, client.Record{Key: key(i), Value: value(i)})
		off, err := r.Wait(ctx)
		is.NoErr(err)
		is.Equal(off, uint64(i))
		is.Equal(r.Partition(), 2)
	}
	is.Equal(len(c.PartitionRecords("p", 2)), 10)
	bad := newProducer(t, cl, "p", client.ProducerOptions{Partitioner: client.FixedPartition(4)})
	_, err := bad.Send(ctx, client.Record{Value: value(0)}).Wait(ctx)
	is.Equal(status.Code(err), codes.InvalidArgument)
}

// A partition's leader moves; the old one refuses as not the leader. The call neither fails nor
// writes twice.
func TestAProduceFollowsAPartitionLeaderThatMoves(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c, cl := partitionedCluster(t, 3, 3, 3)
	_, err := cl.ProduceTo(ctx, "p", 1, []client.Record{{Value: value(0)}}) // learns that server 1 leads it
	is.NoErr(err)
	c.SetPartitionLeader("p", 1, 2)
	off, err := cl.ProduceTo(ctx, "p", 1, []client.Record{{Value: value(1)}})
	is.NoErr(err)
	is.Equal(off, uint64(1))
	is.Equal(c.Servers[1].ProduceRequests(), 2) // the refusal
	is.Equal(c.Servers[2].Calls("Produce"), 1)
	is.Equal(len(c.PartitionRecords("p", 1)), 2)
}

// A partition's leader appends a batch and fails before answering, and another server leads the
// partition: the producer sends the batch again there with the same producer id and sequence of
// that partition, which the cluster answers as a duplicate. Nothing is written twice, and the
// other partitions go on.
func TestProducerFollowsAPartitionLeaderThatMovesWritingEachRecordOnce(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c, cl := partitionedCluster(t, 3, 3, 3)
	var once sync.Once
	c.Servers[1].AfterAppend(func(req *dislogv1.ProduceRequest) fakelog.Fault {
		fault := fakelog.Answer
		if req.GetPartition() == 1 && len(c.PartitionRecords("p", 1)) >= 20 {
			once.Do(func() {
				c.SetPartitionLeader("p", 1, 0)
				fault = fakelog.Fail
			})
		}
		return fault
	})
	byValue := func(rec client.Record, partitions int) int { return int(rec.Value[len(rec.Value)-1]) % partitions }
	p := newProducer(t, cl, "p", client.ProducerOptions{Linger: -1, MaxBatchRecords: 5, MaxInFlight: 3, Partitioner: byValue})
	const n = 300
	results := make([]client.Result, n)
	for i := range n {
		results[i] = p.Send(ctx, client.Record{Value: value(i)})
	}
	is.NoErr(p.Flush(ctx))
	next := map[int]uint64{}
	for i, r := range results {
		off, err := r.Wait(ctx)
		is.NoErr(err)
		part := r.Partition()
		is.Equal(off, next[part])
		next[part]++
		is.Equal(c.PartitionRecords("p", part)[off].Value, value(i))
	}
	for part := range 3 {
		is.Equal(uint64(len(c.PartitionRecords("p", part))), next[part]) // each record once
	}
	is.Equal(c.PartitionLeader("p", 1), 0)
	is.True(c.Servers[0].Calls("ProduceStream") >= 2) // partition 0's stream, and then partition 1's
	requests := 0
	for _, s := range c.Servers {
		requests += s.ProduceRequests()
	}
	is.True(requests > c.Appends()) // the batch that failed was sent again, and answered as a duplicate
}

// A partition's leader stops answering (a frozen process): the records of the other partitions
// are acknowledged meanwhile, and once another server leads the partition its records go there.
func TestAFrozenPartitionLeaderHoldsUpOnlyItsPartition(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c, cl := partitionedCluster(t, 3, 3, 3)
	byKey := func(rec client.Record, partitions int) int { return int(rec.Key[0]) }
	p := newProducer(t, cl, "p", client.ProducerOptions{Partitioner: byKey})
	for part := range 3 {
		_, err := p.Send(ctx, client.Record{Key: []byte{byte(part)}, Value: value(0)}).Wait(ctx)
		is.NoErr(err)
	}
	thaw := c.Servers[1].Freeze() // it leads partition 1
	defer thaw()
	held := p.Send(ctx, client.Record{Key: []byte{1}, Value: value(1)})
	waitFor(t, "the record to reach the frozen leader", func() bool { return c.Servers[1].Held() >= 1 })
	for i := range 20 {
		for _, part := range []byte{0, 2} {
			off, err := p.Send(ctx, client.Record{Key: []byte{part}, Value: value(i + 1)}).Wait(ctx)
			is.NoErr(err)
			is.Equal(off, uint64(i+1))
		}
	}
	select {
	case <-held.Done():
		t.Fatal("the record of the frozen partition was acknowledged by its frozen leader")
	default:
	}
	c.SetPartitionLeader("p", 1, 2)
	off, err := held.Wait(ctx)
	if err != nil {
		t.Fatalf("the record waiting on the frozen partition leader: %v; want it acknowledged by the new leader", err)
	}
	is.Equal(off, uint64(1))
	is.Equal(held.Partition(), 1)
	is.Equal(len(c.PartitionRecords("p", 1)), 2)
}

func TestConsumePartitionReadsFromTheReplicasOfThePartition(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c, cl := partitionedCluster(t, 3, 3, 1) // partition i on server i alone
	for part := range 3 {
		_, err := cl.ProduceTo(ctx, "p", part, []client.Record{{Value: value(part)}})
		is.NoErr(err)
	}
	for range 3 {
		for part := range 3 {
			rec, err := cl.ConsumePartition(ctx, "p", part, 0)
			is.NoErr(err) // a server without a replica would refuse
			is.Equal(rec.Value, value(part))
			is.Equal(rec.Partition, part)
		}
	}
	is.Equal(calls(c, "Consume"), []int{3, 3, 3})
	_, err := cl.ConsumePartition(ctx, "p", 3, 0)
	is.Equal(status.Code(err), codes.InvalidArgument)
}

func TestConsumePartitionPrefersTheFollowersOfThePartition(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c, cl := partitionedCluster(t, 3, 3, 3)
	_, err := cl.ProduceTo(ctx, "p", 1, []client.Record{{Value: value(0)}})
	is.NoErr(err)
	connectedToAll(t, c, cl)
	before := calls(c, "Consume")
	for range 20 {
		_, err := cl.ConsumePartition(ctx, "p", 1, 0)
		is.NoErr(err)
	}
	after := calls(c, "Consume")
	is.Equal(after[1], before[1]) // none on the partition's leader
	is.Equal(sum(after)-sum(before), 20)
}

func TestSubscribeAllReadsEveryRecordOfEveryPartition(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	_, cl := partitionedCluster(t, 3, 4, 3)
	p := newProducer(t, cl, "p", client.ProducerOptions{})
	const n = 400
	for i := range n {
		p.Send(ctx, client.Record{Key: key(i), Value: value(i)})
	}
	is.NoErr(p.Flush(ctx))

	seen := map[string]bool{}
	next := map[int]uint64{}
	for rec, err := range cl.SubscribeAll(ctx, "p", client.Earliest(), client.StopAtEnd()) {
		is.NoErr(err)
		is.Equal(rec.Offset, next[rec.Partition]) // each partition in offset order
		next[rec.Partition]++
		is.Equal(rec.Partition, client.KeyPartition(rec.Key, 4))
		seen[string(rec.Value)] = true
	}
	is.Equal(len(seen), n)
	is.Equal(len(next), 4)

	// One partition, from its latest offset, following.
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan client.Record, 1)
	go func() {
		for rec, err := range cl.Subscribe(sub, "p", client.Latest(), client.Partition(2)) {
			if err == nil {
				got <- rec
			}
			return
		}
	}()
	var off uint64
	waitFor(t, "a record produced to partition 2 reaches its subscription", func() bool {
		var err error
		off, err = cl.ProduceTo(ctx, "p", 2, []client.Record{{Value: []byte("late")}})
		is.NoErr(err)
		select {
		case rec := <-got:
			is.Equal(rec.Partition, 2)
			is.True(rec.Offset >= next[2] && rec.Offset <= off)
			return true
		default:
			return false
		}
	})
}

func TestSubscribeAllStopsAtTheFirstError(t *testing.T) {
	is := is.New(t)
	_, cl := partitionedCluster(t, 1, 2, 1)
	var errs []error
	for _, err := range cl.SubscribeAll(timeout(t), "nope", client.Earliest(), client.StopAtEnd()) {
		errs = append(errs, err)
	}
	is.Equal(len(errs), 1)
	is.Equal(status.Code(errs[0]), codes.NotFound)

	// An offset past the end of one partition ends the sequence with that partition's error.
	errs = nil
	for _, err := range cl.SubscribeAll(timeout(t), "p", client.AtOffset(5), client.StopAtEnd()) {
		errs = append(errs, err)
	}
	is.Equal(len(errs), 1)
	is.Equal(status.Code(errs[0]), codes.OutOfRange)
}

func TestCommittedOffsetsArePerPartition(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	_, cl := partitionedCluster(t, 3, 3, 3)
	for part := range 3 {
		_, err := cl.ProduceTo(ctx, "p", part, []client.Record{{Value: value(0)}, {Value: value(1)}, {Value: value(2)}})
		is.NoErr(err)
	}
	is.NoErr(cl.CommitPartitionOffset(ctx, "g", "p", 1, 2))
	is.NoErr(cl.CommitPartitionOffset(ctx, "g", "p", 2, 3))
	off, ok, err := cl.FetchPartitionOffset(ctx, "g", "p", 1)
	is.NoErr(err)
	is.True(ok)
	is.Equal(off, uint64(2))
	off, ok, err = cl.FetchPartitionOffset(ctx, "g", "p", 2)
	is.NoErr(err)
	is.True(ok)
	is.Equal(off, uint64(3))
	_, ok, err = cl.FetchOffset(ctx, "g", "p") // partition 0
	is.NoErr(err)
	is.True(!ok)
	is.NoErr(cl.CommitOffset(ctx, "g", "p", 1))
	off, ok, err = cl.FetchPartitionOffset(ctx, "g", "p", 0)
	is.NoErr(err)
	is.True(ok)
	is.Equal(off, uint64(1))

	is.Equal(status.Code(cl.CommitPartitionOffset(ctx, "g", "p", 3, 0)), codes.InvalidArgument)
	_, _, err = cl.FetchPartitionOffset(ctx, "g", "p", 7)
	is.Equal(status.Code(err), codes.InvalidArgument)
	is.Equal(status.Code(cl.CommitPartitionOffset(ctx, "g", "p", 0, 4)), codes.OutOfRange) // past the next offset
}

// A server from before partitions describes topics without partitions and ignores the partition
// field: the client sends every produce to the cluster's leader without one, and reads one
// partition, as it did then.
func TestAServerFromBeforePartitionsWorksAsBefore(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c := startCluster(t, 3, 1)
	c.BeforePartitions(true)
	reqs := recordRequests(c)
	cl := dialCluster(t, c, c.Target())
	connectedToAll(t, c, cl)

	info, err := cl.DescribeTopic(ctx, "t")
	is.NoErr(err)
	is.Equal(info.Partitions, 1)
	is.Equal(len(info.PartitionInfo), 0)
	_, err = cl.Produce(ctx, "t", client.Record{Key: []byte("k"), Value: value(1)})
	is.NoErr(err)
	p := newProducer(t, cl, "t", client.ProducerOptions{})
	for i := range 10 {
		r := p.Send(ctx, client.Record{Key: key(i), Value: value(i + 2)})
		off, err := r.Wait(ctx)
		is.NoErr(err)
		is.Equal(off, uint64(i+2))
		is.Equal(r.Partition(), 0)
	}
	is.Equal(len(reqs.on(0))+len(reqs.on(2)), 0)
	for _, req := range reqs.on(1) {
		is.True(req.Partition == nil) // as before partitions
	}
	is.Equal(calls(c, "ProduceStream"), []int{0, 1, 0})
	before := calls(c, "Consume")
	for range 10 {
		_, err := cl.Consume(ctx, "t", 0)
		is.NoErr(err)
	}
	is.Equal(calls(c, "Consume")[1], before[1]) // from the followers
	n := 0
	for rec, err := range cl.SubscribeAll(ctx, "t", client.Earliest(), client.StopAtEnd()) {
		is.NoErr(err)
		is.Equal(rec.Partition, 0)
		n++
	}
	is.Equal(n, 12)
}

package client_test

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/client/internal/fakelog"
	"github.com/matryer/is"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// startCluster starts a fake cluster of n servers with topic "t", led by Servers[leader].
func startCluster(t *testing.T, n, leader int) *fakelog.Cluster {
	t.Helper()
	c := fakelog.StartCluster(t, n)
	c.AddTopic("t")
	c.SetLeader(leader)
	return c
}

// dialCluster dials target, a dislog:/// target of c.
func dialCluster(t *testing.T, c *fakelog.Cluster, target string, opts ...client.Option) *client.Client {
	t.Helper()
	cl, err := client.Dial(target, append([]client.Option{client.WithTLSConfig(c.ClientTLS)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}

// calls counts a method's calls on each server.
func calls(c *fakelog.Cluster, method string) []int {
	n := make([]int, len(c.Servers))
	for i, s := range c.Servers {
		n[i] = s.Calls(method)
	}
	return n
}

func sum(ns []int) int {
	total := 0
	for _, n := range ns {
		total += n
	}
	return total
}

// connectedToAll waits until cl reads from every follower of c, which it does once it has
// resolved the cluster and connected to each of them.
func connectedToAll(t *testing.T, c *fakelog.Cluster, cl *client.Client) {
	t.Helper()
	if _, err := cl.Produce(timeout(t), "t", client.Record{Value: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "consumes reach every follower", func() bool {
		if _, err := cl.Consume(timeout(t), "t", 0); err != nil {
			t.Fatal(err)
		}
		for i, n := range calls(c, "Consume") {
			if i != c.Leader() && n == 0 {
				return false
			}
		}
		return true
	})
}

func TestClusterSendsProducesToTheLeaderAndConsumesToFollowers(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c := startCluster(t, 3, 1)
	cl := dialCluster(t, c, c.Target())
	connectedToAll(t, c, cl)

	consumes := calls(c, "Consume")
	for range 20 {
		_, err := cl.Consume(ctx, "t", 0)
		is.NoErr(err)
	}
	after := calls(c, "Consume")
	is.Equal(after[1], consumes[1]) // none on the leader
	is.True(after[0]-consumes[0] >= 5 && after[2]-consumes[2] >= 5)
	is.Equal(sum(after)-sum(consumes), 20) // round-robin over the followers

	for i := range 10 {
		_, err := cl.Produce(ctx, "t", client.Record{Value: value(i)})
		is.NoErr(err)
	}
	p := newProducer(t, cl, "t", client.ProducerOptions{})
	_, err := p.Send(ctx, client.Record{Value: []byte("streamed")}).Wait(ctx)
	is.NoErr(err)
	is.Equal(calls(c, "Produce"), []int{0, 11, 0})
	is.Equal(calls(c, "ProduceStream"), []int{0, 1, 0})

	for range 30 {
		_, err := cl.DescribeTopic(ctx, "t")
		is.NoErr(err)
	}
	for _, n := range calls(c, "DescribeTopic") {
		is.True(n > 0) // any call but a produce or consume goes to every server in turn
	}

	var got []client.Record
	for rec, err := range cl.Subscribe(ctx, "t", client.Earliest(), client.StopAtEnd()) {
		is.NoErr(err)
		got = append(got, rec)
	}
	is.Equal(len(got), 12)
	is.Equal(calls(c, "ConsumeStream")[1], 0)
}

func TestASubscriptionStartedRightAfterDialReadsFromAFollower(t *testing.T) {
	is := is.New(t)
	c := startCluster(t, 3, 0)
	cl := dialCluster(t, c, c.Target())
	// The leader may be the first server ready; the subscription, which stays on the server it
	// starts on, must not be pinned to it.
	for _, err := range cl.Subscribe(timeout(t), "t", client.Earliest(), client.StopAtEnd()) {
		is.NoErr(err)
	}
	is.Equal(c.Servers[0].Calls("ConsumeStream"), 0)
}

func TestClusterConsumesFromTheLeaderWhenNoVoterFollows(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c := startCluster(t, 3, 0)
	// Servers catching up (non-voters) may lack records: reads avoid them.
	c.SetVoter(1, false)
	c.SetVoter(2, false)
	cl := dialCluster(t, c, c.Target())
	_, err := cl.Produce(ctx, "t", client.Record{Value: []byte("v")})
	is.NoErr(err)
	for range 10 {
		_, err := cl.Consume(ctx, "t", 0)
		is.NoErr(err)
	}
	is.Equal(calls(c, "Consume"), []int{10, 0, 0})
}

func TestClusterFindsANewLeaderAfterANotLeaderRefusal(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c := startCluster(t, 3, 0)
	// No retries and no refresh timer: only the failed call can make the client look again.
	cl := dialCluster(t, c, c.Target(), client.WithProduceRetries(0), client.WithRefresh(time.Hour))
	_, err := cl.Produce(ctx, "t", client.Record{Value: []byte("to 0")})
	is.NoErr(err)

	c.SetLeader(2)
	_, err = cl.Produce(ctx, "t", client.Record{Value: []byte("refused")})
	is.Equal(status.Code(err), codes.FailedPrecondition) // the old leader says it is not the leader
	waitFor(t, "a produce reaches the new leader", func() bool {
		_, err := cl.Produce(ctx, "t", client.Record{Value: []byte("to 2")})
		return err == nil
	})
	before := calls(c, "Produce")
	for range 5 {
		_, err := cl.Produce(ctx, "t", client.Record{Value: []byte("to 2")})
		is.NoErr(err)
	}
	is.Equal(calls(c, "Produce"), []int{before[0], 0, before[2] + 5})
}

func TestClusterFindsANewLeaderOnItsRefreshTimer(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c := startCluster(t, 3, 0)
	cl := dialCluster(t, c, c.Target(), client.WithProduceRetries(0), client.WithRefresh(20*time.Millisecond))
	_, err := cl.Produce(ctx, "t", client.Record{Value: []byte("to 0")})
	is.NoErr(err)

	c.SetLeader(1)
	// A round of GetServers asks every server at once; a call of the round after the change
	// begins only once that round's answer (the newest term's) is published.
	asked := sum(calls(c, "GetServers"))
	waitFor(t, "the client asks for the servers twice", func() bool { return sum(calls(c, "GetServers")) >= asked+len(c.Servers)+1 })
	_, err = cl.Produce(ctx, "t", client.Record{Value: []byte("to 1")})
	is.NoErr(err) // straight to the new leader
	is.Equal(calls(c, "Produce"), []int{1, 1, 0})
}

func TestProducerRetriesAcrossALeaderChangeWritingEachRecordOnce(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c := startCluster(t, 3, 0)
	cl := dialCluster(t, c, c.Target())
	// The leader writes batches 5 to 8, its answers are lost, and it fails after the 8th; server
	// 1 takes over. The producer must send the four again to the new leader, which answers them as
	// duplicates, and go on there.
	var appended atomic.Int32
	c.Servers[0].AfterAppend(func(*dislogv1.ProduceRequest) fakelog.Fault {
		switch n := appended.Add(1); {
		case n >= 5 && n < 8:
			return fakelog.LoseAnswer
		case n == 8:
			c.SetLeader(1)
			return fakelog.Fail
		}
		return fakelog.Answer
	})
	p := newProducer(t, cl, "t", client.ProducerOptions{Linger: -1, MaxBatchRecords: 5, MaxInFlight: 4})
	const n = 500
	results := make([]client.Result, n)
	for i := range n {
		results[i] = p.Send(ctx, client.Record{Value: value(i)})
	}
	is.NoErr(p.Flush(ctx))
	for i, r := range results {
		off, err := r.Wait(ctx)
		is.NoErr(err)
		is.Equal(off, uint64(i))
	}
	recs := c.Records("t")
	is.Equal(len(recs), n) // each record written once, in order
	for i, r := range recs {
		is.Equal(r.Value, value(i))
	}
	is.True(appended.Load() >= 8)
	is.True(c.Servers[1].Calls("ProduceStream") > 0)
	requests := 0
	for _, s := range c.Servers {
		requests += s.ProduceRequests()
	}
	is.True(requests > c.Appends()) // some were duplicates
}

func TestProduceRetriesAcrossALeaderChangeWritingOnce(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c := startCluster(t, 3, 0)
	cl := dialCluster(t, c, c.Target())
	var failed atomic.Bool
	c.Servers[0].AfterAppend(func(*dislogv1.ProduceRequest) fakelog.Fault {
		if failed.CompareAndSwap(false, true) {
			c.SetLeader(2)
			return fakelog.Fail
		}
		return fakelog.Answer
	})
	off, err := cl.ProduceBatch(ctx, "t", []client.Record{{Value: value(0)}, {Value: value(1)}})
	is.NoErr(err)
	is.Equal(off, uint64(0)) // the new leader answered the retry as a duplicate
	off, err = cl.Produce(ctx, "t", client.Record{Value: value(2)})
	is.NoErr(err)
	is.Equal(off, uint64(2))
	is.Equal(len(c.Records("t")), 3)
	is.Equal(c.Appends(), 2)
	is.True(c.Servers[2].Calls("Produce") >= 2)
}

func TestProduceWithoutRetriesReportsUnknownOutcome(t *testing.T) {
	is := is.New(t)
	c := startCluster(t, 1, 0)
	cl := dialCluster(t, c, c.Target(), client.WithProduceRetries(0))
	c.Servers[0].AfterAppend(func(*dislogv1.ProduceRequest) fakelog.Fault { return fakelog.Fail })
	_, err := cl.Produce(timeout(t), "t", client.Record{Value: []byte("v")})
	is.True(errors.Is(err, client.ErrUnknownOutcome))
	is.Equal(status.Code(err), codes.Unavailable)
	_, err = cl.Produce(timeout(t), "nope", client.Record{Value: []byte("v")})
	is.Equal(status.Code(err), codes.NotFound) // a refusal is not an unknown outcome
	is.True(!errors.Is(err, client.ErrUnknownOutcome))
}

func TestResolverSurvivesTheDeathOfItsSeed(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c := startCluster(t, 3, 0)
	// Only server 0 is named; the client learns the others from it.
	cl := dialCluster(t, c, c.Target(0), client.WithRefresh(20*time.Millisecond))
	connectedToAll(t, c, cl)

	c.Servers[0].Close()
	c.SetLeader(2)
	asked := sum(calls(c, "GetServers")[1:])
	waitFor(t, "the client asks the surviving servers", func() bool { return sum(calls(c, "GetServers")[1:]) >= asked+2 })
	for i := range 5 {
		_, err := cl.Produce(ctx, "t", client.Record{Value: value(i)})
		is.NoErr(err)
	}
	is.Equal(c.Servers[2].Calls("Produce"), 5)
	for range 10 {
		_, err := cl.Consume(ctx, "t", 0)
		is.NoErr(err) // the dead server is skipped
	}
}

func TestResolverSkipsADeadSeed(t *testing.T) {
	is := is.New(t)
	c := startCluster(t, 2, 1)
	cl := dialCluster(t, c, "dislog:///"+deadAddr(t)+","+c.Servers[0].Addr)
	_, err := cl.Produce(timeout(t), "t", client.Record{Value: []byte("v")})
	is.NoErr(err)
	is.Equal(c.Servers[1].Calls("Produce"), 1)
}

func TestClusterWithNoServerReachableFailsCalls(t *testing.T) {
	is := is.New(t)
	c := startCluster(t, 1, 0)
	cl := dialCluster(t, c, "dislog:///"+deadAddr(t))
	_, err := cl.DescribeTopic(timeout(t), "t")
	is.Equal(status.Code(err), codes.Unavailable)
	is.True(strings.Contains(err.Error(), "connection refused")) // why, for dislogctl's hint
}

func TestDialRefusesABadClusterTarget(t *testing.T) {
	for _, target := range []string{"dislog:///", "dislog:///host-without-port", "dislog:///127.0.0.1:1,,b"} {
		if _, err := client.Dial(target, client.WithTLSConfig(&tls.Config{})); err == nil {
			t.Errorf("Dial(%q) = nil error", target)
		}
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// During an election a produce waits for the new leader (up to its deadline) and goes to it as
// soon as the resolver learns of it, rather than failing and finding it a retry's backoff later:
// even without retries it succeeds.
func TestAProduceDuringAnElectionWaitsForTheNewLeader(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c := startCluster(t, 3, 0)
	cl := dialCluster(t, c, c.Target(), client.WithProduceRetries(0), client.WithRefresh(20*time.Millisecond))
	_, err := cl.Produce(ctx, "t", client.Record{Value: value(0)})
	is.NoErr(err)

	c.SetLeader(-1)
	c.Servers[0].Close() // the old leader is gone
	asked := sum(calls(c, "GetServers"))
	waitFor(t, "the client to learn there is no leader", func() bool { return sum(calls(c, "GetServers")) >= asked+len(c.Servers) })
	done := make(chan error, 1)
	go func() {
		_, err := cl.Produce(ctx, "t", client.Record{Value: value(1)})
		done <- err
	}()
	asked = sum(calls(c, "GetServers"))
	waitFor(t, "the client to ask again during the election", func() bool { return sum(calls(c, "GetServers")) >= asked+3 })
	select {
	case err := <-done:
		t.Fatalf("the produce ended during the election: %v", err)
	default:
	}
	c.SetLeader(2)
	is.NoErr(<-done)
	is.Equal(c.Servers[2].Calls("Produce"), 1)
}

// A produce that waits on a leader that stopped answering (a frozen process: its connection stays
// open, its calls hang) moves to the leader the others elected, with the same producer id and
// sequence, long before its deadline; nothing else would end it until the old leader thaws.
func TestAProduceWaitingOnAFrozenLeaderMovesToTheNewLeader(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c := startCluster(t, 3, 0)
	cl := dialCluster(t, c, c.Target()) // the default refresh, 5 s: the wait itself must ask
	_, err := cl.Produce(ctx, "t", client.Record{Value: value(0)})
	is.NoErr(err)

	thaw := c.Servers[0].Freeze()
	defer thaw()
	done := make(chan error, 1)
	var off uint64
	go func() {
		var err error
		off, err = cl.Produce(ctx, "t", client.Record{Value: value(1)})
		done <- err
	}()
	waitFor(t, "the produce to reach the frozen leader", func() bool { return c.Servers[0].Calls("Produce") == 2 })
	c.SetLeader(1)
	if err := <-done; err != nil {
		t.Fatalf("the produce waiting on the frozen leader failed: %v; want it acknowledged by the new leader", err)
	}
	is.Equal(off, uint64(1))
	is.Equal(c.Servers[1].Calls("Produce"), 1)
	is.Equal(len(c.Records("t")), 2)
}

// A Producer whose stream waits on a leader that stopped answering sends its batches again, on a
// new stream, to the leader the others elected; the cluster writes each once.
func TestAProducerWaitingOnAFrozenLeaderMovesToTheNewLeader(t *testing.T) {
	is := is.New(t)
	ctx := timeout(t)
	c := startCluster(t, 3, 0)
	cl := dialCluster(t, c, c.Target())
	p, err := client.NewProducer(cl, "t", client.ProducerOptions{})
	is.NoErr(err)
	defer p.Close()
	_, err = p.Send(ctx, client.Record{Value: value(0)}).Wait(ctx)
	is.NoErr(err)

	thaw := c.Servers[0].Freeze()
	defer thaw()
	r := p.Send(ctx, client.Record{Value: value(1)})
	waitFor(t, "the second batch to reach the frozen leader", func() bool { return c.Servers[0].Held() >= 1 })
	c.SetLeader(1)
	off, err := r.Wait(ctx)
	if err != nil {
		t.Fatalf("the record waiting on the frozen leader: %v; want it acknowledged by the new leader", err)
	}
	is.Equal(off, uint64(1))
	is.Equal(len(c.Records("t")), 2)
}

package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server"
	"github.com/dislog/dislog/server/servertest"
	"github.com/matryer/is"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// leaderOf returns the node that leads.
func leaderOf(t *testing.T, nodes []*servertest.Node) *servertest.Node {
	t.Helper()
	var leader *servertest.Node
	servertest.WaitFor(t, 10*time.Second, "a leader", func() bool {
		for _, n := range nodes {
			if n.Server != nil && n.Server.IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// records reads every record of topic from a node.
func records(t *testing.T, c *client.Client, topic string) []*dislogv1.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := c.API().ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*dislogv1.Record
	for {
		resp, err := s.Recv()
		if err != nil {
			if status.Code(err) == codes.OK || err.Error() == "EOF" {
				return recs
			}
			t.Fatalf("consume: %v", err)
		}
		recs = append(recs, resp.GetRecords()...)
	}
}

func nextOffset(c *client.Client, topic string) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.DescribeTopic(ctx, topic)
	if err != nil {
		return 0
	}
	return info.NextOffset
}

// sameRecords checks that every node holds want records of topic, identical to the first node's,
// append times included.
func sameRecords(t *testing.T, clients []*client.Client, topic string, want uint64) {
	t.Helper()
	is := is.New(t)
	for i, c := range clients {
		servertest.WaitFor(t, 20*time.Second, fmt.Sprintf("node %d to hold %d records", i+1, want), func() bool { return nextOffset(c, topic) == want })
	}
	first := records(t, clients[0], topic)
	is.Equal(uint64(len(first)), want)
	for _, c := range clients[1:] {
		got := records(t, c, topic)
		is.Equal(len(got), len(first))
		for j := range got {
			is.Equal(got[j].Offset, first[j].Offset)
			is.True(bytes.Equal(got[j].Value, first[j].Value))
			is.True(bytes.Equal(got[j].Key, first[j].Key))
			is.Equal(got[j].AppendTime.AsTime(), first[j].AppendTime.AsTime())
		}
	}
}

func clientsOf(t *testing.T, nodes []*servertest.Node) []*client.Client {
	var cs []*client.Client
	for _, n := range nodes {
		cs = append(cs, n.Client(t, "alice"))
	}
	return cs
}

func TestThreeNodesReplicateEveryWriteMadeOnAnyNode(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	nodes := servertest.StartCluster(t, 3)
	clients := clientsOf(t, nodes)
	leader := leaderOf(t, nodes)
	var follower *client.Client
	for i, n := range nodes {
		if n != leader {
			follower = clients[i]
		}
	}

	_, err := follower.CreateTopic(ctx, "orders", client.TopicConfig{}) // forwarded to the leader
	is.NoErr(err)
	want := uint64(0)
	for i := range 40 {
		c := clients[i%3]
		recs := []client.Record{{Key: []byte("k"), Value: fmt.Appendf(nil, "v%d", i)}, {Value: []byte("second")}}
		base, err := c.ProduceBatch(ctx, "orders", recs)
		is.NoErr(err)
		is.Equal(base, want)
		want += 2
	}
	sameRecords(t, clients, "orders", want)

	servers, err := follower.GetServers(ctx)
	is.NoErr(err)
	is.Equal(len(servers), 3)
	leaders := 0
	for i, s := range servers {
		is.Equal(s.ID, fmt.Sprintf("node%d", i+1))
		is.Equal(s.RPCAddr, nodes[i].Server.Addr())
		is.True(s.IsVoter)
		if s.IsLeader {
			leaders++
			is.Equal(s.ID, leader.ID)
		}
	}
	is.Equal(leaders, 1)

	// Offsets commit through Raft and read on every node.
	is.NoErr(follower.CommitOffset(ctx, "readers", "orders", 7))
	for _, c := range clients {
		servertest.WaitFor(t, 5*time.Second, "the offset on every node", func() bool {
			off, ok, err := c.FetchOffset(ctx, "readers", "orders")
			return err == nil && ok && off == 7
		})
	}
}

func TestAnIdempotentProducersRetryIsAnsweredWithTheOriginalOffsets(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	nodes := servertest.StartCluster(t, 3)
	clients := clientsOf(t, nodes)
	_, err := clients[0].CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)
	produce := func(c *client.Client, seq uint64) (*dislogv1.ProduceResponse, error) {
		return c.API().Produce(ctx, &dislogv1.ProduceRequest{
			Topic: "t", ProducerId: 42, Sequence: seq,
			Records: []*dislogv1.Record{{Value: []byte("a")}, {Value: []byte("b")}},
		})
	}
	first, err := produce(clients[1], 1)
	is.NoErr(err)
	is.True(!first.Duplicate)
	again, err := produce(clients[2], 1) // a retry, through another server
	is.NoErr(err)
	is.True(again.Duplicate)
	is.Equal(again.BaseOffset, first.BaseOffset)
	_, err = produce(clients[0], 3)
	is.Equal(status.Code(err), codes.FailedPrecondition) // a gap
	second, err := produce(clients[0], 2)
	is.NoErr(err)
	is.Equal(second.BaseOffset, first.BaseOffset+2)
	_, err = produce(clients[0], 1)
	is.Equal(status.Code(err), codes.FailedPrecondition) // older than the last
	sameRecords(t, clients, "t", 4)

	// The table survives a restart of every node.
	for _, n := range nodes {
		is.NoErr(n.Stop())
	}
	for i := len(nodes) - 1; i >= 0; i-- { // the last to stop holds the last configuration
		n := nodes[i]
		n.Restart(t, server.WithListenAddr(n.Server.Addr()), server.WithSerfAddr(n.Server.SerfAddr()))
	}
	leaderOf(t, nodes)
	again, err = produce(nodes[1].Client(t, "alice"), 2)
	is.NoErr(err)
	is.True(again.Duplicate)
	is.Equal(again.BaseOffset, second.BaseOffset)
}

func TestAFollowerReadsItsWritesAndRestartsWithoutDuplicates(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	nodes := servertest.StartCluster(t, 3)
	clients := clientsOf(t, nodes)
	_, err := clients[0].CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)
	leader := leaderOf(t, nodes)
	follower := nodes[1]
	if follower == leader {
		follower = nodes[2]
	}
	fc := follower.Client(t, "alice")
	for i := range 20 {
		base, err := fc.Produce(ctx, "t", client.Record{Value: fmt.Appendf(nil, "%d", i)})
		is.NoErr(err)
		resp, err := fc.API().Consume(ctx, &dislogv1.ConsumeRequest{Topic: "t", Offset: base, ReadYourWrites: true})
		is.NoErr(err)
		is.Equal(string(resp.GetRecord().GetValue()), fmt.Sprint(i))
	}

	// A follower restarted replays its Raft log into topics that already hold the records.
	addr := follower.Server.Addr()
	is.NoErr(follower.Stop())
	for i := range 10 {
		_, err := leader.Client(t, "alice").Produce(ctx, "t", client.Record{Value: fmt.Appendf(nil, "while down %d", i)})
		is.NoErr(err)
	}
	follower.Restart(t, server.WithListenAddr(addr))
	sameRecords(t, clientsOf(t, nodes), "t", 30)
}

func TestAFollowerWhoseDiskIsWipedCatchesUpThroughASnapshot(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	nodes := servertest.StartCluster(t, 3, server.WithRaft(server.RaftConfig{
		SnapshotThreshold: 16, TrailingLogs: 4, SnapshotInterval: 50 * time.Millisecond,
	}))
	leader := leaderOf(t, nodes)
	lc := leader.Client(t, "alice")
	_, err := lc.CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)
	victim := nodes[1]
	if victim == leader {
		victim = nodes[2]
	}
	addr := victim.Server.Addr()
	is.NoErr(victim.Stop())
	is.NoErr(os.RemoveAll(victim.Dir))
	for i := range 100 {
		_, err := lc.ProduceBatch(ctx, "t", []client.Record{{Value: fmt.Appendf(nil, "%d", i)}, {Value: []byte("x")}})
		is.NoErr(err)
	}
	// The leader's log no longer holds the first entries: the victim can only catch up from a
	// snapshot and the records it names, copied from a peer.
	victim.Restart(t, server.WithListenAddr(addr), server.WithBootstrap(false), server.WithJoin(leader.Server.SerfAddr()))
	sameRecords(t, clientsOf(t, nodes), "t", 200)
}

func TestRaftAndPeerCallsRefuseClientCertificates(t *testing.T) {
	is := is.New(t)
	nodes := servertest.StartCluster(t, 1)
	n := nodes[0]
	files := n.ClientFiles(t, "alice")
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	is.NoErr(err)
	conf, err := authz.ClientTLSConfig(files)
	is.NoErr(err)
	conf.Certificates = []tls.Certificate{cert}
	conf.ServerName = "127.0.0.1"

	conn, err := net.Dial("tcp", n.Server.Addr())
	is.NoErr(err)
	defer conn.Close()
	_, err = conn.Write([]byte{0x01}) // the Raft marker
	is.NoErr(err)
	tc := tls.Client(conn, conf)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	err = tc.Handshake()
	if err == nil {
		// TLS 1.3 clients finish before the server checks their certificate: the refusal is the
		// connection closing.
		_, err = tc.Read(make([]byte, 1))
	}
	is.True(err != nil)

	// The peer service too refuses a client certificate.
	cc, err := grpc.NewClient(n.Server.Addr(), grpc.WithTransportCredentials(mustTLS(t, files)))
	is.NoErr(err)
	defer cc.Close()
	err = cc.Invoke(ctxT(t), "/dislog.peer.v1.Peer/ReadIndex", &dislogv1.ConsumeRequest{}, &dislogv1.ConsumeResponse{})
	is.Equal(status.Code(err), codes.PermissionDenied)
}

func TestAFollowerThatLeavesGracefullyIsRemovedFromTheCluster(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	nodes := servertest.StartCluster(t, 3)
	leader := leaderOf(t, nodes)
	var gone *servertest.Node
	var stay []*servertest.Node
	for _, n := range nodes {
		if n != leader && gone == nil {
			gone = n
		} else {
			stay = append(stay, n)
		}
	}
	clients := clientsOf(t, stay)
	_, err := clients[0].CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)

	is.NoErr(gone.Stop()) // a graceful stop leaves Serf, and the leader removes the server from Raft
	servertest.WaitFor(t, 10*time.Second, "the leader to count two voters", func() bool { return leader.Server.Voters() == 2 })
	for _, c := range clients {
		servertest.WaitFor(t, 10*time.Second, "GetServers to list two servers", func() bool {
			servers, err := c.GetServers(ctx)
			if err != nil || len(servers) != 2 {
				return false
			}
			for _, s := range servers {
				if s.ID == gone.ID {
					return false
				}
			}
			return true
		})
	}

	// The two left are the whole cluster: a write needs them both, and lands on both.
	for i := range 10 {
		_, err := clients[i%2].Produce(ctx, "t", client.Record{Value: fmt.Appendf(nil, "v%d", i)})
		is.NoErr(err)
	}
	sameRecords(t, clients, "t", 10)
}

func TestFiveNodesReplicateEveryWriteMadeOnAnyNode(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	nodes := servertest.StartCluster(t, 5)
	clients := clientsOf(t, nodes)
	_, err := clients[4].CreateTopic(ctx, "orders", client.TopicConfig{})
	is.NoErr(err)
	want := uint64(0)
	for i := range 25 {
		base, err := clients[i%5].ProduceBatch(ctx, "orders", []client.Record{{Value: fmt.Appendf(nil, "v%d", i)}, {Value: []byte("second")}})
		is.NoErr(err)
		is.Equal(base, want)
		want += 2
	}
	sameRecords(t, clients, "orders", want)
	servers, err := clients[2].GetServers(ctx)
	is.NoErr(err)
	is.Equal(len(servers), 5)
	for _, s := range servers {
		is.True(s.IsVoter)
	}
}

// A topic created through one server is there, at once, for every call on every server: a
// follower that has not applied the creation yet waits for it rather than deny the topic. The
// same for a deletion: no server still describes a topic once DeleteTopic returned.
func TestATopicCreatedOrDeletedIsSeenAtOnceOnEveryServer(t *testing.T) {
	// Each round creates a topic, whose partition is a Raft group that must elect a leader (1-2 s
	// with a partition group's timings): 40 rounds take about as long as 200 did when topics were
	// entries in one group.
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	// About a dozen Raft writes and read barriers a round: more than ctxT's 30 s on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nodes := servertest.StartCluster(t, 3)
	clients := clientsOf(t, nodes)
	leaderOf(t, nodes)
	for round := range rounds {
		topic := fmt.Sprintf("t%d", round)
		creator := clients[round%3]
		if _, err := creator.CreateTopic(ctx, topic, client.TopicConfig{}); err != nil {
			t.Fatalf("round %d: create %q through node %d: %v", round, topic, round%3+1, err)
		}
		for i, c := range clients {
			if _, err := c.DescribeTopic(ctx, topic); err != nil {
				t.Fatalf("round %d: describe %q on node %d right after its creation through node %d: %v (want the topic)", round, topic, i+1, round%3+1, err)
			}
			off, err := c.Produce(ctx, topic, client.Record{Value: []byte{byte(i)}})
			if err != nil || off != uint64(i) {
				t.Fatalf("round %d: produce to %q through node %d: offset %d, error %v (want offset %d, no error)", round, topic, i+1, off, err, i)
			}
			rec, err := c.Consume(ctx, topic, uint64(i))
			if err != nil || !bytes.Equal(rec.Value, []byte{byte(i)}) {
				t.Fatalf("round %d: consume %q offset %d through node %d: value %v, error %v (want [%d])", round, topic, i, i+1, rec.Value, err, i)
			}
		}
		if err := creator.DeleteTopic(ctx, topic); err != nil {
			t.Fatalf("round %d: delete %q: %v", round, topic, err)
		}
		for i, c := range clients {
			if _, err := c.DescribeTopic(ctx, topic); status.Code(err) != codes.NotFound {
				t.Fatalf("round %d: describe %q on node %d right after its deletion: %v (want NotFound)", round, topic, i+1, err)
			}
		}
	}
}

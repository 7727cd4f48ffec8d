package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server"
	"github.com/dislog/dislog/server/servertest"
	"github.com/matryer/is"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// describe returns a topic's description.
func describe(t *testing.T, api dislogv1.LogServiceClient, topic string) *dislogv1.TopicInfo {
	t.Helper()
	resp, err := api.DescribeTopic(ctxT(t), &dislogv1.DescribeTopicRequest{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetTopic()
}

// waitForLeaders waits until every partition of a topic has a leader, as one server describes it.
func waitForLeaders(t *testing.T, api dislogv1.LogServiceClient, topic string) *dislogv1.TopicInfo {
	t.Helper()
	var info *dislogv1.TopicInfo
	servertest.WaitFor(t, 20*time.Second, "a leader for every partition of "+topic, func() bool {
		info = describe(t, api, topic)
		for _, p := range info.GetPartitionInfo() {
			if p.GetLeader() == "" {
				return false
			}
		}
		return true
	})
	return info
}

func TestATopicOfManyPartitionsOnOneServer(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	api := n.Client(t, "alice").API()
	_, err := api.CreateTopic(ctx, &dislogv1.CreateTopicRequest{Topic: "orders", Partitions: proto.Uint32(4)})
	is.NoErr(err)
	info := waitForLeaders(t, api, "orders")
	is.Equal(info.GetPartitions(), uint32(4))
	is.Equal(info.GetReplicationFactor(), uint32(1)) // the default on a single server
	for p, pi := range info.GetPartitionInfo() {
		is.Equal(pi.GetPartition(), uint32(p))
		is.Equal(pi.GetReplicas(), []string{"node1"})
		is.Equal(pi.GetLeader(), "node1")
		is.Equal(pi.GetLeaderAddr(), n.Server.Addr())
	}

	// Offsets are dense per partition; a key goes where KeyPartition says.
	for round := range 3 {
		for p := range uint32(4) {
			resp, err := api.Produce(ctx, &dislogv1.ProduceRequest{Topic: "orders", Partition: proto.Uint32(p),
				Records: []*dislogv1.Record{{Value: fmt.Appendf(nil, "p%d-r%d", p, round)}}})
			is.NoErr(err)
			is.Equal(resp.GetPartition(), p)
			is.Equal(resp.GetBaseOffset(), uint64(round))
		}
	}
	for _, key := range []string{"alice", "bob", "carol", "dave", "erin"} {
		resp, err := api.Produce(ctx, &dislogv1.ProduceRequest{Topic: "orders", Records: []*dislogv1.Record{{Key: []byte(key), Value: []byte(key)}}})
		is.NoErr(err)
		p := resp.GetPartition()
		is.Equal(int(p), client.KeyPartition([]byte(key), 4))
		rec, err := api.Consume(ctx, &dislogv1.ConsumeRequest{Topic: "orders", Partition: p, Offset: resp.GetBaseOffset()})
		is.NoErr(err)
		is.Equal(string(rec.GetRecord().GetValue()), key)
	}
	rec, err := api.Consume(ctx, &dislogv1.ConsumeRequest{Topic: "orders", Partition: 2, Offset: 1})
	is.NoErr(err)
	is.Equal(string(rec.GetRecord().GetValue()), "p2-r1")

	// Committed offsets are per partition.
	_, err = api.CommitOffset(ctx, &dislogv1.CommitOffsetRequest{Group: "g", Topic: "orders", Partition: 3, Offset: 2})
	is.NoErr(err)
	for p, want := range map[uint32]bool{3: true, 0: false} {
		resp, err := api.FetchOffset(ctx, &dislogv1.FetchOffsetRequest{Group: "g", Topic: "orders", Partition: p})
		is.NoErr(err)
		is.Equal(resp.GetCommitted(), want)
	}

	// Records and offsets survive a restart, partition by partition.
	is.NoErr(n.Stop())
	n2 := servertest.Start(t, "", server.WithDataDir(n.Dir))
	api = n2.Client(t, "alice").API()
	waitForLeaders(t, api, "orders")
	rec, err = api.Consume(ctx, &dislogv1.ConsumeRequest{Topic: "orders", Partition: 1, Offset: 2})
	is.NoErr(err)
	is.Equal(string(rec.GetRecord().GetValue()), "p1-r2")
	resp, err := api.FetchOffset(ctx, &dislogv1.FetchOffsetRequest{Group: "g", Topic: "orders", Partition: 3})
	is.NoErr(err)
	is.Equal(resp.GetOffset(), uint64(2))
	next, err := api.Produce(ctx, &dislogv1.ProduceRequest{Topic: "orders", Partition: proto.Uint32(0), Records: []*dislogv1.Record{{Value: []byte("after")}}})
	is.NoErr(err)
	is.True(next.GetBaseOffset() >= 3) // on after the records it had, never over them
}

func TestBadPartitionInputGetsAClearErrorAndChangesNothing(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	api := n.Client(t, "alice").API()
	_, err := api.CreateTopic(ctx, &dislogv1.CreateTopicRequest{Topic: "t", Partitions: proto.Uint32(2)})
	is.NoErr(err)
	waitForLeaders(t, api, "t")

	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"zero partitions", func() error {
			_, err := api.CreateTopic(ctx, &dislogv1.CreateTopicRequest{Topic: "u", Partitions: proto.Uint32(0)})
			return err
		}, codes.InvalidArgument},
		{"too many partitions", func() error {
			_, err := api.CreateTopic(ctx, &dislogv1.CreateTopicRequest{Topic: "u", Partitions: proto.Uint32(1025)})
			return err
		}, codes.InvalidArgument},
		{"an even replication factor", func() error {
			_, err := api.CreateTopic(ctx, &dislogv1.CreateTopicRequest{Topic: "u", ReplicationFactor: proto.Uint32(2)})
			return err
		}, codes.InvalidArgument},
		{"more replicas than servers up", func() error {
			_, err := api.CreateTopic(ctx, &dislogv1.CreateTopicRequest{Topic: "u", ReplicationFactor: proto.Uint32(3)})
			return err
		}, codes.FailedPrecondition},
		{"a topic created twice with other settings", func() error {
			_, err := api.CreateTopic(ctx, &dislogv1.CreateTopicRequest{Topic: "t", Partitions: proto.Uint32(8)})
			return err
		}, codes.AlreadyExists},
		{"a produce to a partition out of range", func() error {
			_, err := api.Produce(ctx, &dislogv1.ProduceRequest{Topic: "t", Partition: proto.Uint32(2), Records: []*dislogv1.Record{{Value: []byte("x")}}})
			return err
		}, codes.InvalidArgument},
		{"a consume of a partition out of range", func() error {
			_, err := api.Consume(ctx, &dislogv1.ConsumeRequest{Topic: "t", Partition: 5})
			return err
		}, codes.InvalidArgument},
		{"a commit on a partition out of range", func() error {
			_, err := api.CommitOffset(ctx, &dislogv1.CommitOffsetRequest{Group: "g", Topic: "t", Partition: 2})
			return err
		}, codes.InvalidArgument},
		{"a commit past a partition's end", func() error {
			_, err := api.CommitOffset(ctx, &dislogv1.CommitOffsetRequest{Group: "g", Topic: "t", Partition: 1, Offset: 1})
			return err
		}, codes.OutOfRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
		})
	}
	list, err := api.ListTopics(ctx, &dislogv1.ListTopicsRequest{})
	is.NoErr(err)
	is.Equal(len(list.GetTopics()), 1) // nothing was created
	is.Equal(list.GetTopics()[0].GetPartitions(), uint32(2))
}

func TestPartitionsSpreadOverThreeServersAndEachRecordIsWrittenOnce(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	nodes := servertest.StartCluster(t, 3)
	clients := clientsOf(t, nodes)
	_, err := clients[0].API().CreateTopic(ctx, &dislogv1.CreateTopicRequest{Topic: "events", Partitions: proto.Uint32(6)})
	is.NoErr(err)
	info := waitForLeaders(t, clients[1].API(), "events")
	is.Equal(info.GetReplicationFactor(), uint32(3)) // the default on three servers
	preferred := map[string]int{}
	for _, pi := range info.GetPartitionInfo() {
		is.Equal(len(pi.GetReplicas()), 3)
		preferred[pi.GetReplicas()[0]]++
	}
	is.Equal(preferred, map[string]int{"node1": 2, "node2": 2, "node3": 2}) // balanced placement

	// Produce to each partition through each server (forwarded to the partition's leader).
	const rounds = 5
	for round := range rounds {
		for p := range uint32(6) {
			api := clients[(round+int(p))%3].API()
			resp, err := api.Produce(ctx, &dislogv1.ProduceRequest{Topic: "events", Partition: proto.Uint32(p),
				Records: []*dislogv1.Record{{Value: fmt.Appendf(nil, "%d/%d", p, round)}}})
			is.NoErr(err)
			is.Equal(resp.GetBaseOffset(), uint64(round))
		}
	}
	// Every server reads every partition, dense and in order.
	for i, c := range clients {
		for p := range uint32(6) {
			for round := range uint64(rounds) {
				var rec *dislogv1.ConsumeResponse
				servertest.WaitFor(t, 10*time.Second, fmt.Sprintf("node %d to hold offset %d of partition %d", i+1, round, p), func() bool {
					rec, err = c.API().Consume(ctx, &dislogv1.ConsumeRequest{Topic: "events", Partition: p, Offset: round})
					return err == nil
				})
				is.Equal(string(rec.GetRecord().GetValue()), fmt.Sprintf("%d/%d", p, round))
			}
		}
	}
	// The records live in each partition's Raft log, and nowhere else.
	for _, n := range nodes {
		dirs, err := filepath.Glob(filepath.Join(n.Dir, "partitions", "events+*", "*"))
		is.NoErr(err)
		is.Equal(len(dirs), 6)
		_, err = os.Stat(filepath.Join(n.Dir, "topics"))
		is.True(os.IsNotExist(err))
	}
}

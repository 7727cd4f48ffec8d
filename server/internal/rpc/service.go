// Package rpc implements the dislog.v1 LogService over a cluster: metadata (topics, their partitions
// and replicas, consumer offsets) is read from the controller's state and changed through the
// controller's Raft log (package fsm); records are produced through each partition's Raft group and
// read from this server's replica of it (package partition). Authentication and the ACL are not
// here: interceptors (package acl) run before every call.
package rpc

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/internal/fsm"
	"github.com/dislog/dislog/server/internal/partition"
	"github.com/dislog/dislog/server/internal/topics"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Cluster is what the service serves: the controller's metadata and the partitions.
type Cluster interface {
	// Submit starts applying a controller command through the controller's Raft log, on its leader
	// or forwarded to it, and returns a wait for its result.
	Submit(ctx context.Context, cmd []byte) func() (*fsm.Result, error)
	// ReadBarrier returns once this server has applied every metadata write acknowledged before the
	// call: what it then reads of the metadata is linearizable. Its errors are status errors.
	ReadBarrier(ctx context.Context) error
	// Topic returns a topic's metadata as this server has applied it.
	Topic(name string) (fsm.TopicState, bool)
	// Topics lists the topics, sorted.
	Topics() []string
	// Offset is a consumer group's committed offset on a partition, and whether it committed one.
	Offset(group, topic string, partition uint32) (uint64, bool)
	// Place chooses the replicas of each partition of a new topic; its errors are status errors.
	Place(partitions, replicationFactor int) ([][]string, error)
	// DefaultReplicationFactor is the replication factor of a topic created without one.
	DefaultReplicationFactor() int
	// Replica returns this server's replica of a partition. One assigned to this server and not
	// opened yet is waited for, up to ctx's end; one on other servers only is a status error that
	// names them.
	Replica(ctx context.Context, topic string, partition int) (*partition.Replica, error)
	// Produce starts appending a batch to a partition through its leader and returns a wait for the
	// result. Batches one caller starts on one partition are appended in that order. Its errors are
	// status errors.
	Produce(ctx context.Context, topic string, partition int, b partition.Batch) func() (partition.Result, error)
	// Partitions describes a topic's partitions: their replicas, leaders and offsets, from this
	// server's replicas, and unless local is set, from other servers' for the partitions this one
	// does not hold.
	Partitions(ctx context.Context, topic string, local bool) []*dislogv1.PartitionInfo
	// Relays are clients of the servers that hold a partition, for the reads of a server that
	// holds none.
	Relays(topic string, partition int) []Relay
	// Servers lists the servers of the cluster, with this server's Raft term.
	Servers(ctx context.Context) (*dislogv1.GetServersResponse, error)
}

// Relay is a server that holds a partition, called for a read on behalf of a server that does not
// (the peer API's relayed calls).
type Relay interface {
	Consume(ctx context.Context, req *dislogv1.ConsumeRequest, opts ...grpc.CallOption) (*dislogv1.ConsumeResponse, error)
	ConsumeStream(ctx context.Context, req *dislogv1.ConsumeStreamRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[dislogv1.ConsumeStreamResponse], error)
}

// relayedKey marks the context of a call relayed from another server: it is served from this
// server's replicas alone, never relayed again.
type relayedKey struct{}

// Relayed marks ctx as a call relayed from another server.
func Relayed(ctx context.Context) context.Context { return context.WithValue(ctx, relayedKey{}, true) }

func relayed(ctx context.Context) bool { return ctx.Value(relayedKey{}) != nil }

// Config is what a Service serves.
type Config struct {
	Cluster Cluster
	// MaxRecordBytes bounds the key, headers and value of a record (codec.Payload); the framing of
	// its encoding is not counted, up to codec.MaxFraming.
	MaxRecordBytes int
	// Stopping is canceled when the server starts shutting down: streams end with UNAVAILABLE.
	Stopping context.Context
	// Visible, if set, says whether the caller of ctx may see a topic in ListTopics.
	Visible func(ctx context.Context, topic string) bool
	Logger  *slog.Logger
}

// Service is the LogService. Register it on a grpc.Server and its collectors on a Prometheus
// registry.
type Service struct {
	dislogv1.UnimplementedLogServiceServer
	cfg Config

	// roundRobin picks the partitions of keyless batches that name none.
	roundRobin atomic.Uint64

	producedRecords *prometheus.CounterVec
	producedBytes   *prometheus.CounterVec
	consumedRecords *prometheus.CounterVec
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{
		cfg: cfg,
		producedRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dislog_produced_records_total", Help: "Records appended, by topic.",
		}, []string{"topic"}),
		producedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dislog_produced_bytes_total", Help: "Encoded record bytes appended (key, headers, value), by topic.",
		}, []string{"topic"}),
		consumedRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dislog_consumed_records_total", Help: "Records sent to consumers, by topic.",
		}, []string{"topic"}),
	}
}

// Collectors are the service's metrics.
func (s *Service) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.producedRecords, s.producedBytes, s.consumedRecords}
}

// topic validates a topic name and looks its metadata up. A topic this server has not heard of is
// looked up again after a read barrier: a topic whose creation the cluster acknowledged exists for
// every caller, on every server. The barrier is paid only on a miss.
func (s *Service) topic(ctx context.Context, name string) (fsm.TopicState, error) {
	if err := topics.ValidateName(name); err != nil {
		return fsm.TopicState{}, topicError(err, name)
	}
	if t, ok := s.cfg.Cluster.Topic(name); ok {
		return t, nil
	}
	if err := s.cfg.Cluster.ReadBarrier(ctx); err != nil {
		return fsm.TopicState{}, err
	}
	if t, ok := s.cfg.Cluster.Topic(name); ok {
		return t, nil
	}
	return fsm.TopicState{}, topicError(topics.ErrNotFound, name)
}

// checkPartition checks that a topic has partition p.
func checkPartition(name string, t fsm.TopicState, p uint32) error {
	if int(p) >= t.Partitions() {
		if t.Partitions() == 1 {
			return status.Errorf(codes.InvalidArgument, "topic %q has one partition, 0; there is no partition %d", name, p)
		}
		return status.Errorf(codes.InvalidArgument, "topic %q has partitions 0 to %d; there is no partition %d", name, t.Partitions()-1, p)
	}
	return nil
}

// GetServers lists every server of the Raft configuration.
func (s *Service) GetServers(ctx context.Context, _ *dislogv1.GetServersRequest) (*dislogv1.GetServersResponse, error) {
	return s.cfg.Cluster.Servers(ctx)
}

// apply applies one controller command and waits for its result.
func (s *Service) apply(ctx context.Context, c *fsm.Command) error {
	r, err := s.cfg.Cluster.Submit(ctx, fsm.AppendCommand(nil, c))()
	if err != nil {
		return err
	}
	if r.Err != nil {
		return ResultError(r.Err)
	}
	return nil
}

// CreateTopic creates a topic: the controller places its partitions' replicas and commits the
// topic; every server then opens the replicas assigned to it.
func (s *Service) CreateTopic(ctx context.Context, req *dislogv1.CreateTopicRequest) (*dislogv1.CreateTopicResponse, error) {
	name := req.GetTopic()
	if err := topics.ValidateName(name); err != nil {
		return nil, topicError(err, name)
	}
	var c topics.Config
	if pc := req.GetConfig(); pc != nil {
		c.RetentionBytes = pc.GetRetentionBytes()
		if age := pc.GetRetentionAge(); age != nil {
			if err := age.CheckValid(); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "invalid retention_age: %v", err)
			}
			c.RetentionAge = age.AsDuration()
		}
	}
	if c.RetentionBytes < 0 || c.RetentionAge < 0 {
		return nil, topicError(fmt.Errorf("%w: retention must not be negative", topics.ErrInvalidConfig), name)
	}
	parts := 1
	if req.Partitions != nil {
		parts = int(req.GetPartitions())
	}
	if parts < 1 || parts > fsm.MaxPartitions {
		return nil, status.Errorf(codes.InvalidArgument, "invalid partition count %d: a topic has 1 to %d partitions", parts, fsm.MaxPartitions)
	}
	rf := s.cfg.Cluster.DefaultReplicationFactor()
	if req.ReplicationFactor != nil {
		rf = int(req.GetReplicationFactor())
	}
	if rf != 1 && rf != 3 && rf != 5 {
		return nil, status.Errorf(codes.InvalidArgument, "invalid replication factor %d: use 1, 3 or 5 (an odd number of replicas, so that a majority survives the loss of the others)", rf)
	}
	// A topic that exists already is refused without placing anything.
	if _, ok := s.cfg.Cluster.Topic(name); ok {
		return nil, topicError(topics.ErrExists, name)
	}
	// Place over the servers of the controller's configuration as of now: a server that just
	// joined may not have applied the latest one.
	if err := s.cfg.Cluster.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	replicas, err := s.cfg.Cluster.Place(parts, rf)
	if err != nil {
		return nil, err
	}
	if err := s.apply(ctx, &fsm.Command{
		Kind: fsm.KindCreateTopic, Topic: name, RetentionBytes: c.RetentionBytes, RetentionAge: int64(c.RetentionAge),
		ReplicationFactor: rf, Replicas: replicas,
	}); err != nil {
		return nil, err
	}
	t, ok := s.cfg.Cluster.Topic(name)
	if !ok {
		// Created through the leader and not yet applied here.
		t = fsm.TopicState{RetentionBytes: c.RetentionBytes, RetentionAge: int64(c.RetentionAge), ReplicationFactor: rf, Replicas: replicas}
	}
	return &dislogv1.CreateTopicResponse{Topic: s.topicInfo(ctx, name, t)}, nil
}

// DeleteTopic deletes a topic and the offsets committed on it.
func (s *Service) DeleteTopic(ctx context.Context, req *dislogv1.DeleteTopicRequest) (*dislogv1.DeleteTopicResponse, error) {
	if err := topics.ValidateName(req.GetTopic()); err != nil {
		return nil, topicError(err, req.GetTopic())
	}
	if err := s.apply(ctx, &fsm.Command{Kind: fsm.KindDeleteTopic, Topic: req.GetTopic()}); err != nil {
		return nil, err
	}
	for _, c := range s.Collectors() {
		c.(*prometheus.CounterVec).DeleteLabelValues(req.GetTopic())
	}
	return &dislogv1.DeleteTopicResponse{}, nil
}

// ListTopics lists the topics the caller may see, as of the call: see DescribeTopic.
func (s *Service) ListTopics(ctx context.Context, _ *dislogv1.ListTopicsRequest) (*dislogv1.ListTopicsResponse, error) {
	if err := s.cfg.Cluster.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	resp := &dislogv1.ListTopicsResponse{}
	for _, name := range s.cfg.Cluster.Topics() {
		t, ok := s.cfg.Cluster.Topic(name)
		if ok && (s.cfg.Visible == nil || s.cfg.Visible(ctx, name)) {
			resp.Topics = append(resp.Topics, s.topicInfo(ctx, name, t))
		}
	}
	return resp, nil
}

// DescribeTopic describes one topic and each of its partitions. Topic metadata reads are
// linearizable, as FetchOffset is: a topic created or deleted through any server before the call
// began is seen so on every server. The read barrier costs one round trip to the controller's
// leader; metadata reads are rare next to record reads, which stay local.
func (s *Service) DescribeTopic(ctx context.Context, req *dislogv1.DescribeTopicRequest) (*dislogv1.DescribeTopicResponse, error) {
	if err := topics.ValidateName(req.GetTopic()); err != nil {
		return nil, topicError(err, req.GetTopic())
	}
	if err := s.cfg.Cluster.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	t, ok := s.cfg.Cluster.Topic(req.GetTopic())
	if !ok {
		return nil, topicError(topics.ErrNotFound, req.GetTopic())
	}
	return &dislogv1.DescribeTopicResponse{Topic: s.topicInfo(ctx, req.GetTopic(), t)}, nil
}

// DescribeRelayed is DescribeTopic for another server: what this server's replicas know, with no
// read barrier.
func (s *Service) DescribeRelayed(ctx context.Context, req *dislogv1.DescribeTopicRequest) (*dislogv1.DescribeTopicResponse, error) {
	t, ok := s.cfg.Cluster.Topic(req.GetTopic())
	if !ok {
		return nil, topicError(topics.ErrNotFound, req.GetTopic())
	}
	return &dislogv1.DescribeTopicResponse{Topic: s.topicInfo(Relayed(ctx), req.GetTopic(), t)}, nil
}

// topicInfo describes a topic: its configuration, and each partition as this server knows it.
// The topic's offsets are partition 0's; bytes and segments are summed over partitions.
func (s *Service) topicInfo(ctx context.Context, name string, t fsm.TopicState) *dislogv1.TopicInfo {
	info := &dislogv1.TopicInfo{
		Topic:             name,
		Config:            &dislogv1.TopicConfig{RetentionBytes: t.RetentionBytes},
		Partitions:        uint32(t.Partitions()),
		ReplicationFactor: uint32(t.ReplicationFactor),
	}
	if t.RetentionAge > 0 {
		info.Config.RetentionAge = durationpb.New(time.Duration(t.RetentionAge))
	}
	info.PartitionInfo = s.cfg.Cluster.Partitions(ctx, name, relayed(ctx))
	for _, pi := range info.PartitionInfo {
		info.Bytes += pi.GetBytes()
		info.Segments += pi.GetSegments()
	}
	if len(info.PartitionInfo) > 0 {
		info.LowestOffset, info.NextOffset = info.PartitionInfo[0].GetLowestOffset(), info.PartitionInfo[0].GetNextOffset()
	}
	return info
}

// CommitOffset records a consumer group's next offset on a partition.
func (s *Service) CommitOffset(ctx context.Context, req *dislogv1.CommitOffsetRequest) (*dislogv1.CommitOffsetResponse, error) {
	if err := topics.ValidateName(req.GetGroup()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid group name: %v", trimPrefix(err))
	}
	t, err := s.topic(ctx, req.GetTopic())
	if err != nil {
		return nil, err
	}
	if err := checkPartition(req.GetTopic(), t, req.GetPartition()); err != nil {
		return nil, err
	}
	// An offset past the partition's end is refused, as far as a replica here can tell within a
	// second (a follower may lag behind records its caller was acknowledged); a server without a
	// replica lets the commit through.
	if rep, err := s.cfg.Cluster.Replica(ctx, req.GetTopic(), int(req.GetPartition())); err == nil && req.GetOffset() > nextOf(rep) {
		wait, cancel := context.WithTimeout(ctx, time.Second)
		err := rep.Wait(wait, req.GetOffset()-1)
		cancel()
		if err != nil {
			return nil, status.Errorf(codes.OutOfRange, "offset %d is past the end of partition %d of topic %q, whose next offset is %d; commit the offset after the last record processed",
				req.GetOffset(), req.GetPartition(), req.GetTopic(), nextOf(rep))
		}
	}
	if err := s.apply(ctx, &fsm.Command{
		Kind: fsm.KindCommitOffset, Topic: req.GetTopic(), Group: req.GetGroup(), Partition: req.GetPartition(), Offset: req.GetOffset(),
	}); err != nil {
		return nil, err
	}
	return &dislogv1.CommitOffsetResponse{}, nil
}

func nextOf(rep *partition.Replica) uint64 {
	_, next := rep.Offsets()
	return next
}

// FetchOffset returns a consumer group's committed offset on a partition.
func (s *Service) FetchOffset(ctx context.Context, req *dislogv1.FetchOffsetRequest) (*dislogv1.FetchOffsetResponse, error) {
	if err := topics.ValidateName(req.GetGroup()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid group name: %v", trimPrefix(err))
	}
	// Linearizable, as Kafka's group coordinator is: a consumer that resumes anywhere starts after
	// everything its group was acknowledged for.
	if err := s.cfg.Cluster.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	t, err := s.topic(ctx, req.GetTopic())
	if err != nil {
		return nil, err
	}
	if err := checkPartition(req.GetTopic(), t, req.GetPartition()); err != nil {
		return nil, err
	}
	off, ok := s.cfg.Cluster.Offset(req.GetGroup(), req.GetTopic(), req.GetPartition())
	return &dislogv1.FetchOffsetResponse{Offset: off, Committed: ok}, nil
}

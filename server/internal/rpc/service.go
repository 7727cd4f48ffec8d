// Package rpc implements the dislog.v1 LogService over a topic registry, which it reads, and a
// Raft cluster, through which it writes: every produce, topic change and offset commit is an FSM
// command (package fsm). Authentication and the ACL are not here: interceptors (package acl) run
// before every call.
package rpc

import (
	"context"
	"fmt"
	"log/slog"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/internal/codec"
	"github.com/dislog/dislog/server/internal/fsm"
	"github.com/dislog/dislog/server/internal/topics"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Cluster is the Raft cluster the service writes through.
type Cluster interface {
	// Submit starts applying an FSM command through the Raft log, on the leader or forwarded to it,
	// and returns a wait for its result. Commands one caller submits are applied in that order.
	Submit(ctx context.Context, cmd []byte) func() (*fsm.Result, error)
	// ReadBarrier returns once this server has applied every write acknowledged before the call:
	// what it then reads from its own state is linearizable. Its errors are status errors.
	ReadBarrier(ctx context.Context) error
	// Offset is a consumer group's committed offset on a topic, and whether it committed one.
	Offset(group, topic string) (uint64, bool)
	// Servers lists the servers of the cluster, with this server's Raft term.
	Servers(ctx context.Context) (*dislogv1.GetServersResponse, error)
}

// Config is what a Service serves.
type Config struct {
	// Topics are the local topics, which reads are served from and which the FSM writes.
	Topics  *topics.Registry
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

// topic validates a topic name and looks it up.
func (s *Service) topic(name string) (*topics.Topic, error) {
	if err := topics.ValidateName(name); err != nil {
		return nil, topicError(err, name)
	}
	t, err := s.cfg.Topics.Get(name)
	if err != nil {
		return nil, topicError(err, name)
	}
	return t, nil
}

// Consume reads one record.
func (s *Service) Consume(ctx context.Context, req *dislogv1.ConsumeRequest) (*dislogv1.ConsumeResponse, error) {
	t, err := s.awaitTopic(ctx, req.GetTopic())
	if err != nil {
		return nil, err
	}
	if req.GetReadYourWrites() {
		if err := s.awaitWrites(ctx, t, req.GetOffset()); err != nil {
			return nil, err
		}
	}
	rec, err := s.read(ctx, t, req.GetOffset())
	if err != nil {
		return nil, err
	}
	s.consumedRecords.WithLabelValues(t.Name).Inc()
	return &dislogv1.ConsumeResponse{Record: rec}, nil
}

// read reads and decodes the record at offset.
func (s *Service) read(ctx context.Context, t *topics.Topic, offset uint64) (*dislogv1.Record, error) {
	stored, err := t.Log.Read(offset)
	if err != nil {
		if isRange(err) {
			return nil, rangeError(t, offset)
		}
		return nil, s.logError(ctx, err, t)
	}
	rec := &dislogv1.Record{Offset: offset, AppendTime: timestamppb.New(timeOf(stored.Time))}
	if err := codec.Decode(stored.Value, rec); err != nil {
		return nil, s.logError(ctx, err, t)
	}
	return rec, nil
}

// GetServers lists every server of the Raft configuration.
func (s *Service) GetServers(ctx context.Context, _ *dislogv1.GetServersRequest) (*dislogv1.GetServersResponse, error) {
	return s.cfg.Cluster.Servers(ctx)
}

// apply applies one command through the cluster and waits for its result.
func (s *Service) apply(ctx context.Context, c *fsm.Command) (*fsm.Result, error) {
	r, err := s.cfg.Cluster.Submit(ctx, fsm.AppendCommand(make([]byte, 0, fsm.CommandSize(c)), c))()
	if err != nil {
		return nil, err
	}
	if r.Err != nil {
		return nil, ResultError(r.Err)
	}
	return r, nil
}

// CreateTopic creates a topic.
func (s *Service) CreateTopic(ctx context.Context, req *dislogv1.CreateTopicRequest) (*dislogv1.CreateTopicResponse, error) {
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
	if err := topics.ValidateName(req.GetTopic()); err != nil {
		return nil, topicError(err, req.GetTopic())
	}
	if c.RetentionBytes < 0 || c.RetentionAge < 0 {
		return nil, topicError(fmt.Errorf("%w: retention must not be negative", topics.ErrInvalidConfig), req.GetTopic())
	}
	if _, err := s.apply(ctx, &fsm.Command{
		Kind: fsm.KindCreateTopic, Topic: req.GetTopic(), RetentionBytes: c.RetentionBytes, RetentionAge: int64(c.RetentionAge),
	}); err != nil {
		return nil, err
	}
	if t, err := s.cfg.Topics.Get(req.GetTopic()); err == nil {
		return &dislogv1.CreateTopicResponse{Topic: topicInfo(t)}, nil
	}
	// Created through the leader and not yet applied here.
	return &dislogv1.CreateTopicResponse{Topic: topicInfo(&topics.Topic{Name: req.GetTopic(), Config: c})}, nil
}

// DeleteTopic deletes a topic and the offsets committed on it.
func (s *Service) DeleteTopic(ctx context.Context, req *dislogv1.DeleteTopicRequest) (*dislogv1.DeleteTopicResponse, error) {
	if err := topics.ValidateName(req.GetTopic()); err != nil {
		return nil, topicError(err, req.GetTopic())
	}
	if _, err := s.apply(ctx, &fsm.Command{Kind: fsm.KindDeleteTopic, Topic: req.GetTopic()}); err != nil {
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
	for _, t := range s.cfg.Topics.List() {
		if s.cfg.Visible == nil || s.cfg.Visible(ctx, t.Name) {
			resp.Topics = append(resp.Topics, topicInfo(t))
		}
	}
	return resp, nil
}

// DescribeTopic describes one topic. Topic metadata reads are linearizable, as FetchOffset is: a
// topic created, deleted or reconfigured through any server before the call began is seen so on
// every server (a follower that had not applied the change would otherwise deny a topic its
// caller was just told exists). The read barrier costs one round trip to the leader; metadata
// reads are rare next to record reads, which stay local.
func (s *Service) DescribeTopic(ctx context.Context, req *dislogv1.DescribeTopicRequest) (*dislogv1.DescribeTopicResponse, error) {
	if err := topics.ValidateName(req.GetTopic()); err != nil {
		return nil, topicError(err, req.GetTopic())
	}
	if err := s.cfg.Cluster.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	t, err := s.topic(req.GetTopic())
	if err != nil {
		return nil, err
	}
	return &dislogv1.DescribeTopicResponse{Topic: topicInfo(t)}, nil
}

func topicInfo(t *topics.Topic) *dislogv1.TopicInfo {
	info := &dislogv1.TopicInfo{
		Topic:  t.Name,
		Config: &dislogv1.TopicConfig{RetentionBytes: t.Config.RetentionBytes},
	}
	if t.Log != nil {
		st := t.Log.Stats()
		info.LowestOffset, info.NextOffset, info.Bytes, info.Segments = st.LowestOffset, st.NextOffset, st.Bytes, int64(st.Segments)
	}
	if t.Config.RetentionAge > 0 {
		info.Config.RetentionAge = durationpb.New(t.Config.RetentionAge)
	}
	return info
}

// CommitOffset records a consumer group's next offset on a topic.
func (s *Service) CommitOffset(ctx context.Context, req *dislogv1.CommitOffsetRequest) (*dislogv1.CommitOffsetResponse, error) {
	if err := topics.ValidateName(req.GetGroup()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid group name: %v", trimPrefix(err))
	}
	if err := topics.ValidateName(req.GetTopic()); err != nil {
		return nil, topicError(err, req.GetTopic())
	}
	if _, err := s.apply(ctx, &fsm.Command{
		Kind: fsm.KindCommitOffset, Topic: req.GetTopic(), Group: req.GetGroup(), Offset: req.GetOffset(),
	}); err != nil {
		return nil, err
	}
	return &dislogv1.CommitOffsetResponse{}, nil
}

// FetchOffset returns a consumer group's committed offset on a topic.
func (s *Service) FetchOffset(ctx context.Context, req *dislogv1.FetchOffsetRequest) (*dislogv1.FetchOffsetResponse, error) {
	if err := topics.ValidateName(req.GetGroup()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid group name: %v", trimPrefix(err))
	}
	// Linearizable, as Kafka's group coordinator is: a consumer that resumes anywhere starts after
	// everything its group was acknowledged for.
	if err := s.cfg.Cluster.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	t, err := s.topic(req.GetTopic())
	if err != nil {
		return nil, err
	}
	off, ok := s.cfg.Cluster.Offset(req.GetGroup(), t.Name)
	return &dislogv1.FetchOffsetResponse{Offset: off, Committed: ok}, nil
}

// Package rpc implements the dislog.v1 LogService over a topic registry and a consumer offset
// store. Authentication and the ACL are not here: interceptors (package acl) run before every call.
package rpc

import (
	"context"
	"log/slog"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/internal/codec"
	"github.com/dislog/dislog/server/internal/offsets"
	"github.com/dislog/dislog/server/internal/topics"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Config is what a Service serves.
type Config struct {
	Topics  *topics.Registry
	Offsets *offsets.Store
	// MaxRecordBytes is the largest encoded record (key, headers and value) a produce may carry.
	MaxRecordBytes int
	// NodeID and RPCAddr describe this server in GetServers.
	NodeID, RPCAddr string
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
	t, err := s.topic(req.GetTopic())
	if err != nil {
		return nil, err
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

// GetServers lists this server: until replication, it is the whole cluster and its leader.
func (s *Service) GetServers(context.Context, *dislogv1.GetServersRequest) (*dislogv1.GetServersResponse, error) {
	return &dislogv1.GetServersResponse{Servers: []*dislogv1.Server{{Id: s.cfg.NodeID, RpcAddr: s.cfg.RPCAddr, IsLeader: true}}}, nil
}

// CreateTopic creates a topic.
func (s *Service) CreateTopic(_ context.Context, req *dislogv1.CreateTopicRequest) (*dislogv1.CreateTopicResponse, error) {
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
	t, err := s.cfg.Topics.Create(req.GetTopic(), c)
	if err != nil {
		return nil, topicError(err, req.GetTopic())
	}
	return &dislogv1.CreateTopicResponse{Topic: topicInfo(t)}, nil
}

// DeleteTopic deletes a topic and the offsets committed on it.
func (s *Service) DeleteTopic(_ context.Context, req *dislogv1.DeleteTopicRequest) (*dislogv1.DeleteTopicResponse, error) {
	if err := topics.ValidateName(req.GetTopic()); err != nil {
		return nil, topicError(err, req.GetTopic())
	}
	if err := s.cfg.Topics.Delete(req.GetTopic()); err != nil {
		return nil, topicError(err, req.GetTopic())
	}
	for _, c := range s.Collectors() {
		c.(*prometheus.CounterVec).DeleteLabelValues(req.GetTopic())
	}
	if err := s.cfg.Offsets.DeleteTopic(req.GetTopic()); err != nil {
		return nil, status.Errorf(codes.Internal, "topic %q was deleted, but not the offsets committed on it: %v", req.GetTopic(), err)
	}
	return &dislogv1.DeleteTopicResponse{}, nil
}

// ListTopics lists the topics the caller may see.
func (s *Service) ListTopics(ctx context.Context, _ *dislogv1.ListTopicsRequest) (*dislogv1.ListTopicsResponse, error) {
	resp := &dislogv1.ListTopicsResponse{}
	for _, t := range s.cfg.Topics.List() {
		if s.cfg.Visible == nil || s.cfg.Visible(ctx, t.Name) {
			resp.Topics = append(resp.Topics, topicInfo(t))
		}
	}
	return resp, nil
}

// DescribeTopic describes one topic.
func (s *Service) DescribeTopic(_ context.Context, req *dislogv1.DescribeTopicRequest) (*dislogv1.DescribeTopicResponse, error) {
	t, err := s.topic(req.GetTopic())
	if err != nil {
		return nil, err
	}
	return &dislogv1.DescribeTopicResponse{Topic: topicInfo(t)}, nil
}

func topicInfo(t *topics.Topic) *dislogv1.TopicInfo {
	st := t.Log.Stats()
	info := &dislogv1.TopicInfo{
		Topic:        t.Name,
		Config:       &dislogv1.TopicConfig{RetentionBytes: t.Config.RetentionBytes},
		LowestOffset: st.LowestOffset,
		NextOffset:   st.NextOffset,
		Bytes:        st.Bytes,
		Segments:     int64(st.Segments),
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
	t, err := s.topic(req.GetTopic())
	if err != nil {
		return nil, err
	}
	if next := t.Log.NextOffset(); req.GetOffset() > next {
		return nil, status.Errorf(codes.OutOfRange,
			"offset %d is past the end of topic %q, whose next offset is %d: commit the offset after the last record processed", req.GetOffset(), t.Name, next)
	}
	if err := s.cfg.Offsets.Commit(req.GetGroup(), t.Name, req.GetOffset()); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return &dislogv1.CommitOffsetResponse{}, nil
}

// FetchOffset returns a consumer group's committed offset on a topic.
func (s *Service) FetchOffset(ctx context.Context, req *dislogv1.FetchOffsetRequest) (*dislogv1.FetchOffsetResponse, error) {
	if err := topics.ValidateName(req.GetGroup()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid group name: %v", trimPrefix(err))
	}
	t, err := s.topic(req.GetTopic())
	if err != nil {
		return nil, err
	}
	off, ok := s.cfg.Offsets.Fetch(req.GetGroup(), t.Name)
	return &dislogv1.FetchOffsetResponse{Offset: off, Committed: ok}, nil
}

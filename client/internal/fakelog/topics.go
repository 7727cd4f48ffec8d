package fakelog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Bounds of CreateTopic, as the real server checks them.
const (
	maxPartitions = 1024
	// followCluster is the leader of a partition led by whichever server leads the cluster.
	followCluster = -2
)

type topic struct {
	parts  []*partition
	rf     int
	config *dislogv1.TopicConfig
}

// partition is one partition of a topic: its records, its replicas (server indexes, the
// preferred leader first) and its leader (a server index, -1 for none, or followCluster).
type partition struct {
	records  []*dislogv1.Record
	replicas []int
	leader   int
}

// AddTopic creates an empty topic of one partition, held by every server and led by whichever
// server leads the cluster: a topic as every topic was before partitions.
func (c *Cluster) AddTopic(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.topics[name] != nil {
		return
	}
	all := make([]int, len(c.Servers))
	for i := range all {
		all[i] = i
	}
	c.topics[name] = &topic{rf: len(c.Servers), config: &dislogv1.TopicConfig{},
		parts: []*partition{{replicas: all, leader: followCluster}}}
}

// AddPartitionedTopic creates an empty topic of partitions partitions, each on replicationFactor
// servers, placed as CreateTopic places them.
func (c *Cluster) AddPartitionedTopic(name string, partitions, replicationFactor int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.topics[name] == nil {
		c.topics[name] = c.placeLocked(partitions, replicationFactor)
	}
}

// placeLocked lays out a topic: partition p's replicas are the replicationFactor servers from
// (cluster leader + p) round the ring, the first its leader, so that leaders and replicas spread
// evenly, as the real controller places them.
func (c *Cluster) placeLocked(partitions, replicationFactor int) *topic {
	t := &topic{rf: replicationFactor, config: &dislogv1.TopicConfig{}}
	start := max(c.leader, 0)
	for p := range partitions {
		part := &partition{}
		for i := range replicationFactor {
			part.replicas = append(part.replicas, (start+p+i)%len(c.Servers))
		}
		part.leader = part.replicas[0]
		t.parts = append(t.parts, part)
	}
	return t
}

// SetPartitionLeader makes Servers[server] lead a topic's partition (-1: none, as during its
// election). The server need not be one of its replicas.
func (c *Cluster) SetPartitionLeader(name string, p, server int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.topics[name].parts[p].leader = server
}

// PartitionLeader returns the index of the server that leads a topic's partition, -1 if none.
func (c *Cluster) PartitionLeader(name string, p int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaderLocked(c.topics[name].parts[p])
}

func (c *Cluster) leaderLocked(part *partition) int {
	if part.leader == followCluster {
		return c.leader
	}
	return part.leader
}

// Records returns a copy of the records of a topic's partition 0.
func (c *Cluster) Records(name string) []*dislogv1.Record { return c.PartitionRecords(name, 0) }

// PartitionRecords returns a copy of the records of a topic's partition.
func (c *Cluster) PartitionRecords(name string, p int) []*dislogv1.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[name]
	if t == nil || p >= len(t.parts) {
		return nil
	}
	return slices.Clone(t.parts[p].records)
}

// BeforePartitions makes every server answer as a server from before partitions did: topic
// descriptions leave partitions, replication_factor and partition_info out, produce answers
// leave partition out, and the partition of every request is ignored (every call is on partition
// 0), as a server that does not know the field ignores it.
func (c *Cluster) BeforePartitions(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.beforePartitions = on
}

// BeforePartitions is Cluster.BeforePartitions.
func (s *Server) BeforePartitions(on bool) { s.c.BeforePartitions(on) }

// topicLocked returns the named topic and the partition a request names, or the error the
// server answers.
func (c *Cluster) topicLocked(name string, p uint32) (*topic, int, error) {
	t := c.topics[name]
	if t == nil {
		return nil, 0, status.Errorf(codes.NotFound, "topic %q does not exist; create it with CreateTopic", name)
	}
	if c.beforePartitions {
		return t, 0, nil
	}
	if int(p) >= len(t.parts) {
		return nil, 0, status.Errorf(codes.InvalidArgument, "partition %d is out of range: topic %q has %d partitions (0 to %d)",
			p, name, len(t.parts), len(t.parts)-1)
	}
	return t, int(p), nil
}

// readableLocked refuses a read on a server that holds no replica of the partition.
func (s *Server) readableLocked(name string, p int, part *partition) error {
	if s.c.beforePartitions || slices.Contains(part.replicas, s.index) {
		return nil
	}
	return status.Errorf(codes.FailedPrecondition, "fakelog: %s holds no replica of %s/%d", s.ID, name, p)
}

func (s *Server) shouldBreak(sent int) error {
	s.c.mu.Lock()
	f := s.breakStream
	s.c.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(sent)
}

// append appends a batch, or finds it was appended before (duplicate), and returns the partition,
// its base offset and what to do with the answer.
func (s *Server) append(req *dislogv1.ProduceRequest) (p int, base uint64, duplicate bool, fault Fault, err error) {
	c := s.c
	c.mu.Lock()
	defer func() {
		f := s.afterAppend
		c.mu.Unlock()
		if err == nil && !duplicate && f != nil {
			fault = f(req)
		}
	}()
	s.produceReqs++
	if c.topics[req.GetTopic()] == nil && c.leader != s.index {
		return 0, 0, false, Answer, dislogv1.NotLeaderError("fakelog: " + s.ID + " is not the leader")
	}
	t, p, err := c.topicLocked(req.GetTopic(), req.GetPartition())
	if err != nil {
		return 0, 0, false, Answer, err
	}
	if req.Partition == nil && !c.beforePartitions && len(t.parts) > 1 && len(req.GetRecords()) > 0 {
		// The server's choice for a request that names no partition, as the API says.
		if key := req.GetRecords()[0].GetKey(); len(key) > 0 {
			p = client.KeyPartition(key, len(t.parts))
		}
	}
	part := t.parts[p]
	if c.leaderLocked(part) != s.index {
		return 0, 0, false, Answer, dislogv1.NotLeaderError(fmt.Sprintf("fakelog: %s does not lead %s/%d", s.ID, req.GetTopic(), p))
	}
	if s.refuse != nil {
		if err := s.refuse(req); err != nil {
			return 0, 0, false, Answer, err
		}
	}
	if len(req.GetRecords()) == 0 {
		return 0, 0, false, Answer, status.Error(codes.InvalidArgument, "empty batch")
	}
	key := producerKey{req.GetProducerId(), req.GetTopic(), p}
	if key.id != 0 {
		last, ok := c.producers[key]
		switch seq := req.GetSequence(); {
		case ok && seq == last.sequence:
			return p, last.base, true, Answer, nil
		case !ok && seq != 1 || ok && seq != last.sequence+1:
			return 0, 0, false, Answer, status.Errorf(codes.FailedPrecondition,
				"fakelog: producer %d on %s/%d: sequence %d does not follow %d", key.id, key.topic, p, seq, last.sequence)
		}
	}
	base = uint64(len(part.records))
	now := time.Now()
	for i, r := range req.GetRecords() {
		r := proto.Clone(r).(*dislogv1.Record)
		r.Offset = base + uint64(i)
		r.AppendTime = timestamppb.New(now)
		part.records = append(part.records, r)
	}
	if key.id != 0 {
		c.producers[key] = appended{sequence: req.GetSequence(), base: base}
	}
	c.appends++
	close(c.grew)
	c.grew = make(chan struct{})
	return p, base, false, Answer, nil
}

var errLeaderFailed = status.Error(codes.Unavailable, "fakelog: the leader failed after appending the batch")

func (s *Server) produceResponse(p int, base uint64, dup bool) *dislogv1.ProduceResponse {
	resp := &dislogv1.ProduceResponse{BaseOffset: base, Duplicate: dup}
	s.c.mu.Lock()
	if !s.c.beforePartitions {
		resp.Partition = uint32(p)
	}
	s.c.mu.Unlock()
	return resp
}

// Produce appends a batch.
func (s *Server) Produce(ctx context.Context, req *dislogv1.ProduceRequest) (*dislogv1.ProduceResponse, error) {
	p, base, dup, fault, err := s.append(req)
	switch {
	case err != nil:
		return nil, err
	case fault == LoseAnswer:
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case fault == Fail:
		return nil, errLeaderFailed
	}
	return s.produceResponse(p, base, dup), nil
}

// Consume reads one record.
func (s *Server) Consume(_ context.Context, req *dislogv1.ConsumeRequest) (*dislogv1.ConsumeResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	t, p, err := s.c.topicLocked(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	part := t.parts[p]
	if err := s.readableLocked(req.GetTopic(), p, part); err != nil {
		return nil, err
	}
	if req.GetOffset() >= uint64(len(part.records)) {
		return nil, status.Errorf(codes.OutOfRange, "offset %d is past the end of %s/%d", req.GetOffset(), req.GetTopic(), p)
	}
	return &dislogv1.ConsumeResponse{Record: part.records[req.GetOffset()]}, nil
}

// ProduceStream appends each request in order and answers it, ending at the first refusal.
func (s *Server) ProduceStream(stream dislogv1.LogService_ProduceStreamServer) error {
	for answered := 0; ; {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		// A stream opened before Freeze hangs from its next request on.
		if err := s.waitThawed(stream.Context()); err != nil {
			return err
		}
		if err := s.shouldBreak(answered); err != nil {
			return err
		}
		p, base, dup, fault, err := s.append(req)
		switch {
		case err != nil:
			return err
		case fault == LoseAnswer:
			continue
		case fault == Fail:
			return errLeaderFailed
		}
		if err := stream.Send(s.produceResponse(p, base, dup)); err != nil {
			return err
		}
		answered++
	}
}

// ConsumeStream sends a partition's records from the start the request names, one or more per
// response, and with follow waits for more.
func (s *Server) ConsumeStream(req *dislogv1.ConsumeStreamRequest, stream dislogv1.LogService_ConsumeStreamServer) error {
	c := s.c
	c.mu.Lock()
	t, p, err := c.topicLocked(req.GetTopic(), req.GetPartition())
	var part *partition
	if err == nil {
		part = t.parts[p]
		err = s.readableLocked(req.GetTopic(), p, part)
	}
	var off uint64
	if err == nil {
		switch start := req.GetStart().(type) {
		case *dislogv1.ConsumeStreamRequest_Offset:
			off = start.Offset
		case *dislogv1.ConsumeStreamRequest_Time:
			at := start.Time.AsTime()
			off = uint64(sort.Search(len(part.records), func(i int) bool { return !part.records[i].AppendTime.AsTime().Before(at) }))
		case *dislogv1.ConsumeStreamRequest_Position:
			if start.Position == dislogv1.StartPosition_START_POSITION_LATEST {
				off = uint64(len(part.records))
			}
		}
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	sent := 0
	for {
		c.mu.Lock()
		if off > uint64(len(part.records)) {
			c.mu.Unlock()
			return status.Errorf(codes.OutOfRange, "offset %d is past the end of %s/%d", off, req.GetTopic(), p)
		}
		recs, grew := part.records[off:], c.grew
		if len(recs) > 3 {
			recs = recs[:3]
		}
		c.mu.Unlock()
		if len(recs) == 0 {
			if !req.GetFollow() {
				return nil
			}
			select {
			case <-grew:
				continue
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		if err := s.shouldBreak(sent); err != nil {
			return err
		}
		if err := stream.Send(&dislogv1.ConsumeStreamResponse{Records: recs}); err != nil {
			return err
		}
		off += uint64(len(recs))
		sent += len(recs)
	}
}

// GetServers lists every server of the cluster, the closed ones too.
func (s *Server) GetServers(context.Context, *dislogv1.GetServersRequest) (*dislogv1.GetServersResponse, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	resp := &dislogv1.GetServersResponse{Term: c.term}
	for i, srv := range c.Servers {
		resp.Servers = append(resp.Servers, &dislogv1.Server{
			Id: srv.ID, RpcAddr: srv.Addr, IsLeader: i == c.leader, IsVoter: srv.voter, LastIndex: uint64(c.appends),
		})
	}
	return resp, nil
}

// CreateTopic creates a topic, checking its partitions and replication factor as the real server
// does, and places its partitions (see placeLocked).
func (s *Server) CreateTopic(_ context.Context, req *dislogv1.CreateTopicRequest) (*dislogv1.CreateTopicResponse, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	name := req.GetTopic()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "a topic needs a name")
	}
	if c.topics[name] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "topic %q already exists", name)
	}
	partitions, rf := int(req.GetPartitions()), int(req.GetReplicationFactor())
	up := 0
	for _, srv := range c.Servers {
		if !srv.closed {
			up++
		}
	}
	if c.beforePartitions {
		partitions, rf = 1, len(c.Servers)
	}
	if req.Partitions == nil {
		partitions = 1
	}
	if req.ReplicationFactor == nil {
		rf = 1
		if up >= 3 {
			rf = 3
		}
	}
	switch {
	case partitions > maxPartitions:
		return nil, status.Errorf(codes.InvalidArgument, "partitions %d: want 1 to %d", partitions, maxPartitions)
	case rf != 1 && rf != 3 && rf != 5 && !c.beforePartitions:
		return nil, status.Errorf(codes.InvalidArgument, "replication factor %d: want 1, 3 or 5", rf)
	case rf > up:
		return nil, status.Errorf(codes.FailedPrecondition, "replication factor %d: only %d servers are up", rf, up)
	}
	t := c.placeLocked(partitions, rf)
	if conf := req.GetConfig(); conf != nil {
		t.config = proto.Clone(conf).(*dislogv1.TopicConfig)
	}
	c.topics[name] = t
	return &dislogv1.CreateTopicResponse{Topic: c.infoLocked(name)}, nil
}

// DeleteTopic deletes a topic and the offsets committed on it.
func (s *Server) DeleteTopic(_ context.Context, req *dislogv1.DeleteTopicRequest) (*dislogv1.DeleteTopicResponse, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.topics[req.GetTopic()] == nil {
		return nil, status.Errorf(codes.NotFound, "topic %q does not exist", req.GetTopic())
	}
	delete(c.topics, req.GetTopic())
	for k := range c.offsets {
		if k.topic == req.GetTopic() {
			delete(c.offsets, k)
		}
	}
	return &dislogv1.DeleteTopicResponse{}, nil
}

// DescribeTopic describes a topic.
func (s *Server) DescribeTopic(_ context.Context, req *dislogv1.DescribeTopicRequest) (*dislogv1.DescribeTopicResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.topics[req.GetTopic()] == nil {
		return nil, status.Errorf(codes.NotFound, "topic %q does not exist", req.GetTopic())
	}
	return &dislogv1.DescribeTopicResponse{Topic: s.c.infoLocked(req.GetTopic())}, nil
}

// ListTopics lists the topics, sorted by name.
func (s *Server) ListTopics(context.Context, *dislogv1.ListTopicsRequest) (*dislogv1.ListTopicsResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	resp := &dislogv1.ListTopicsResponse{}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for name := range s.c.topics {
			if !yield(name) {
				return
			}
		}
	}) {
		resp.Topics = append(resp.Topics, s.c.infoLocked(name))
	}
	return resp, nil
}

// CommitOffset records a group's offset on a topic's partition.
func (s *Server) CommitOffset(_ context.Context, req *dislogv1.CommitOffsetRequest) (*dislogv1.CommitOffsetResponse, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if req.GetGroup() == "" {
		return nil, status.Error(codes.InvalidArgument, "a group needs a name")
	}
	t, p, err := c.topicLocked(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	if next := uint64(len(t.parts[p].records)); req.GetOffset() > next {
		return nil, status.Errorf(codes.OutOfRange, "offset %d is past the next offset %d of %s/%d", req.GetOffset(), next, req.GetTopic(), p)
	}
	c.offsets[offsetKey{req.GetGroup(), req.GetTopic(), p}] = req.GetOffset()
	return &dislogv1.CommitOffsetResponse{}, nil
}

// FetchOffset returns a group's offset on a topic's partition.
func (s *Server) FetchOffset(_ context.Context, req *dislogv1.FetchOffsetRequest) (*dislogv1.FetchOffsetResponse, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if req.GetGroup() == "" {
		return nil, status.Error(codes.InvalidArgument, "a group needs a name")
	}
	_, p, err := c.topicLocked(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	off, ok := c.offsets[offsetKey{req.GetGroup(), req.GetTopic(), p}]
	return &dislogv1.FetchOffsetResponse{Offset: off, Committed: ok}, nil
}

func (c *Cluster) infoLocked(name string) *dislogv1.TopicInfo {
	t := c.topics[name]
	info := &dislogv1.TopicInfo{Topic: name, Config: t.config, NextOffset: uint64(len(t.parts[0].records)), Segments: int64(len(t.parts))}
	if c.beforePartitions {
		info.Segments = 1
		return info
	}
	info.Partitions, info.ReplicationFactor = uint32(len(t.parts)), uint32(t.rf)
	for p, part := range t.parts {
		pi := &dislogv1.PartitionInfo{Partition: uint32(p), NextOffset: uint64(len(part.records))}
		if l := c.leaderLocked(part); l >= 0 {
			pi.Leader, pi.LeaderAddr = c.Servers[l].ID, c.Servers[l].Addr
		}
		for _, r := range part.replicas {
			pi.Replicas = append(pi.Replicas, c.Servers[r].ID)
			if c.Servers[r].voter && !c.Servers[r].closed {
				pi.InSync = append(pi.InSync, c.Servers[r].ID)
			}
		}
		for _, r := range part.records {
			pi.Bytes += int64(len(r.GetKey()) + len(r.GetValue()))
		}
		info.Bytes += pi.Bytes
		info.PartitionInfo = append(info.PartitionInfo, pi)
	}
	return info
}

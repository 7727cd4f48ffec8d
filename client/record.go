package client

import (
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
)

// Record is one record of a topic.
type Record struct {
	// Partition is the partition of the topic the record is in; set on records read, ignored on
	// produce (ProduceTo and ProducerOptions.Partitioner choose it).
	Partition int
	// Offset is the record's position in its partition; set on records read, ignored on produce.
	Offset uint64
	// Key is optional; empty means none.
	Key   []byte
	Value []byte
	// Headers are optional metadata, in order; keys may repeat.
	Headers []Header
	// Time is when the server appended the record; set on records read, ignored on produce.
	Time time.Time
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

func (r *Record) proto() *dislogv1.Record {
	p := &dislogv1.Record{Key: r.Key, Value: r.Value}
	if len(r.Headers) > 0 {
		p.Headers = make([]*dislogv1.Header, len(r.Headers))
		for i, h := range r.Headers {
			p.Headers[i] = &dislogv1.Header{Key: h.Key, Value: h.Value}
		}
	}
	return p
}

// RecordFromProto converts a record of the generated API, as ConsumeStream returns them. The
// record's byte slices are shared, not copied.
func RecordFromProto(p *dislogv1.Record) Record {
	r := Record{Offset: p.GetOffset(), Key: p.GetKey(), Value: p.GetValue()}
	if hs := p.GetHeaders(); len(hs) > 0 {
		r.Headers = make([]Header, len(hs))
		for i, h := range hs {
			r.Headers[i] = Header{Key: h.GetKey(), Value: h.GetValue()}
		}
	}
	if t := p.GetAppendTime(); t != nil {
		r.Time = t.AsTime()
	}
	return r
}

// ToProto converts a record to the generated API's type, for ProduceStream. Offset and Time are
// left out: the server sets them.
func (r Record) ToProto() *dislogv1.Record { return r.proto() }

// TopicConfig is a topic's layout and retention, as CreateTopic takes it. Zero values keep
// everything, in one partition, on the cluster's default number of servers.
type TopicConfig struct {
	// RetentionBytes deletes the oldest records of each partition, a whole segment at a time,
	// while the partition is larger.
	RetentionBytes int64
	// RetentionAge deletes records older than this, a whole segment at a time.
	RetentionAge time.Duration
	// Partitions is the topic's partition count, 1 to 1024; 0 means 1. Each partition is a Raft
	// group of its own, with its own leader and offsets; a record's key chooses its partition
	// (KeyPartition).
	Partitions int
	// ReplicationFactor is how many servers hold each partition: 1, 3 or 5, at most the servers
	// up; 0 means the cluster's default (3 on a cluster of three servers or more, else 1).
	ReplicationFactor int
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Topic  string
	Config TopicConfig
	// LowestOffset is the oldest record's offset in partition 0; it equals NextOffset when the
	// partition is empty.
	LowestOffset uint64
	// NextOffset is the offset the next record produced to partition 0 gets.
	NextOffset uint64
	// Bytes and Segments add up every partition's.
	Bytes    int64
	Segments int64
	// Partitions is the topic's partition count: 1 for a topic of one partition, and for any
	// topic of a server from before partitions.
	Partitions int
	// ReplicationFactor is how many servers hold each partition; 0 when the server did not say.
	ReplicationFactor int
	// PartitionInfo describes each partition, in partition order; empty when the server did not
	// (a server from before partitions).
	PartitionInfo []PartitionInfo
}

// PartitionInfo describes one partition of a topic: a Raft group of its own.
type PartitionInfo struct {
	Partition int
	// Leader is the ID of the server that leads the partition and takes its produces, and
	// LeaderAddr its client address; both are empty during an election.
	Leader, LeaderAddr string
	// Replicas are the IDs of the servers that hold the partition, its preferred leader first.
	Replicas []string
	// InSync are the replicas caught up with the leader, as the leader last saw them.
	InSync []string
	// LowestOffset and NextOffset bound the partition's records; they are equal when it is empty.
	LowestOffset, NextOffset uint64
	// Bytes is the size of the partition's log on the server that answered.
	Bytes int64
}

func topicInfoFromProto(p *dislogv1.TopicInfo) TopicInfo {
	info := TopicInfo{
		Topic:             p.GetTopic(),
		LowestOffset:      p.GetLowestOffset(),
		NextOffset:        p.GetNextOffset(),
		Bytes:             p.GetBytes(),
		Segments:          p.GetSegments(),
		Partitions:        max(int(p.GetPartitions()), len(p.GetPartitionInfo()), 1),
		ReplicationFactor: int(p.GetReplicationFactor()),
	}
	for _, pi := range p.GetPartitionInfo() {
		info.PartitionInfo = append(info.PartitionInfo, PartitionInfo{
			Partition: int(pi.GetPartition()), Leader: pi.GetLeader(), LeaderAddr: pi.GetLeaderAddr(),
			Replicas: pi.GetReplicas(), InSync: pi.GetInSync(),
			LowestOffset: pi.GetLowestOffset(), NextOffset: pi.GetNextOffset(), Bytes: pi.GetBytes(),
		})
	}
	info.Config.Partitions, info.Config.ReplicationFactor = info.Partitions, info.ReplicationFactor
	if c := p.GetConfig(); c != nil {
		info.Config.RetentionBytes = c.GetRetentionBytes()
		if c.GetRetentionAge() != nil {
			info.Config.RetentionAge = c.GetRetentionAge().AsDuration()
		}
	}
	return info
}

package fsm

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dislog/dislog/server/internal/topics"
)

// Layout is the data directory layout this build reads and writes (docs/ARCHITECTURE.md): 2 has a
// controller group for metadata and a Raft group per partition. The server refuses another.
const Layout = 2

// Bounds of a topic's shape.
const (
	// MaxPartitions is the most partitions a topic may have.
	MaxPartitions = 1024
	// MaxReplicationFactor is the most servers a partition may be on.
	MaxReplicationFactor = 5
)

// The state format, in every snapshot of the controller group: JSON of State. Snapshots hold
// metadata, never records, so their size does not grow with the data. Version is part of the
// format: DecodeState refuses any other. Version 3 (layout 2) has partitions and their replicas;
// versions 1 and 2 (layout 1) had each topic's offsets and the producers' table, which now live in
// each partition's group.
const stateVersion = 3

// ErrMalformedState is returned by DecodeState for bytes that are not a state of a version it knows.
var ErrMalformedState = errors.New("fsm: malformed state")

// State is the cluster's metadata: what the controller group replicates.
type State struct {
	Version int `json:"version"`
	// Index is the Raft index of the last command applied to this state.
	Index  uint64                `json:"index"`
	Topics map[string]TopicState `json:"topics"`
	// Offsets are consumer groups' next offsets: group → topic → partition → offset.
	Offsets map[string]map[string]map[uint32]uint64 `json:"offsets,omitempty"`
}

// TopicState is one topic's configuration and the replicas of its partitions.
type TopicState struct {
	// Created is the Raft index of the command that created the topic: a topic deleted and created
	// again under its name is another topic, whose partitions are other Raft groups.
	Created           uint64 `json:"created"`
	RetentionBytes    int64  `json:"retention_bytes,omitempty"`
	RetentionAge      int64  `json:"retention_age_ns,omitempty"`
	ReplicationFactor int    `json:"replication_factor"`
	// Replicas are each partition's servers (ids), the preferred leader first.
	Replicas [][]string `json:"replicas"`
	// Assigned is the Raft index of the command that gave each partition its replicas: Created
	// for the replicas it was created with, which bootstrap its group; later replicas are added to
	// the group by its leader.
	Assigned []uint64 `json:"assigned"`
}

// Partitions is the topic's partition count.
func (t TopicState) Partitions() int { return len(t.Replicas) }

func newState() State {
	return State{Version: stateVersion, Topics: map[string]TopicState{}}
}

// DecodeState decodes and checks a state.
func DecodeState(b []byte) (State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("%w: %v", ErrMalformedState, err)
	}
	if s.Version != stateVersion {
		return State{}, fmt.Errorf("%w: version %d, this build reads %d (data directory layout %d)", ErrMalformedState, s.Version, stateVersion, Layout)
	}
	if s.Topics == nil {
		s.Topics = map[string]TopicState{}
	}
	for name, t := range s.Topics {
		if err := topics.ValidateName(name); err != nil {
			return State{}, fmt.Errorf("%w: %v", ErrMalformedState, err)
		}
		if err := checkTopic(t); err != nil {
			return State{}, fmt.Errorf("%w: topic %q: %v", ErrMalformedState, name, err)
		}
	}
	for group, offs := range s.Offsets {
		if err := topics.ValidateName(group); err != nil {
			return State{}, fmt.Errorf("%w: group: %v", ErrMalformedState, err)
		}
		for topic, parts := range offs {
			t, ok := s.Topics[topic]
			if !ok {
				return State{}, fmt.Errorf("%w: group %q has an offset on unknown topic %q", ErrMalformedState, group, topic)
			}
			for p := range parts {
				if int(p) >= t.Partitions() {
					return State{}, fmt.Errorf("%w: group %q has an offset on partition %d of topic %q, which has %d", ErrMalformedState, group, p, topic, t.Partitions())
				}
			}
		}
	}
	return s, nil
}

// checkTopic checks a topic's shape.
func checkTopic(t TopicState) error {
	if t.RetentionBytes < 0 || t.RetentionAge < 0 {
		return fmt.Errorf("retention %d bytes, %d ns", t.RetentionBytes, t.RetentionAge)
	}
	if n := t.Partitions(); n == 0 || n > MaxPartitions {
		return fmt.Errorf("%d partitions, want 1 to %d", n, MaxPartitions)
	}
	if t.ReplicationFactor < 1 || t.ReplicationFactor > MaxReplicationFactor {
		return fmt.Errorf("replication factor %d, want 1 to %d", t.ReplicationFactor, MaxReplicationFactor)
	}
	if len(t.Assigned) != len(t.Replicas) {
		return fmt.Errorf("%d assignment indexes for %d partitions", len(t.Assigned), len(t.Replicas))
	}
	for p, rs := range t.Replicas {
		if len(rs) == 0 {
			return fmt.Errorf("partition %d has no replica", p)
		}
		seen := map[string]bool{}
		for _, r := range rs {
			if r == "" || seen[r] {
				return fmt.Errorf("partition %d has replicas %q", p, rs)
			}
			seen[r] = true
		}
	}
	return nil
}

package chaos

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Fault is a kind of fault the nemesis injects.
type Fault string

const (
	// Kill ends a node with SIGKILL, the leader or a random follower, and restarts it with the same
	// data directory and flags when the fault ends.
	Kill Fault = "kill"
	// Pause stops a node with SIGSTOP, the leader or a random follower, and continues it with
	// SIGCONT when the fault ends: longer than the election timeout, so the others elect a leader
	// while the paused one still believes it leads.
	Pause Fault = "pause"
	// PartitionLeader cuts the leader from every other node, both ways. Clients still reach it.
	PartitionLeader Fault = "partition-leader"
	// PartitionSplit splits the nodes in a random minority and majority, both ways.
	PartitionSplit Fault = "partition-split"
	// PartitionOneWay blocks one direction between a node, the leader or a random follower, and
	// every other node: either the connections it opens to them, or the ones they open to it (see
	// faultproxy for what one way means for a TCP connection).
	PartitionOneWay Fault = "partition-oneway"
	// LeaderMove stops a node that leads partitions with SIGTERM: its graceful shutdown hands the
	// leadership of each partition it leads to another replica and leaves the cluster. The node is
	// started again on its data when the fault ends, and the preferred-leader election moves
	// leaderships back to it.
	LeaderMove Fault = "leader-move"
	// RemoveReadd stops a node (SIGKILL) and keeps it down past the failed-remove grace period,
	// until the cluster has removed it and placed its partitions' replicas on the other nodes;
	// then a new node takes its place, with an empty data directory and a new ID, on its
	// addresses.
	RemoveReadd Fault = "remove-readd"
)

// AllFaults is every kind of fault.
var AllFaults = []Fault{Kill, Pause, PartitionLeader, PartitionSplit, PartitionOneWay, LeaderMove, RemoveReadd}

// ParseFaults reads a comma-separated list of faults; "partition" stands for the three kinds of
// partition and "all" for every fault.
func ParseFaults(s string) ([]Fault, error) {
	var out []Fault
	add := func(fs ...Fault) {
		for _, f := range fs {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	for name := range strings.SplitSeq(s, ",") {
		switch name = strings.TrimSpace(name); name {
		case "":
		case "all":
			add(AllFaults...)
		case "partition":
			add(PartitionLeader, PartitionSplit, PartitionOneWay)
		default:
			if !slices.Contains(AllFaults, Fault(name)) {
				return nil, fmt.Errorf("chaos: unknown fault %q: want kill, pause, partition, partition-leader, partition-split, partition-oneway, leader-move, remove-readd or all", name)
			}
			add(Fault(name))
		}
	}
	return out, nil
}

// DefaultFailedRemoveAfter is the failed-remove grace period of a run with the RemoveReadd fault:
// longer than any other fault keeps a node down (1.5 times the mean fault duration), so that only
// RemoveReadd makes the cluster remove a node, and short enough to keep the fault's length near
// the others'.
const DefaultFailedRemoveAfter = 8 * time.Second

// RaftTimings are the nodes' Raft timeouts (the dislog flags --raft-*). Zero values keep dislog's
// defaults.
type RaftTimings struct {
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration
}

// DefaultRaftTimings are shorter than dislog's defaults (500 ms, 500 ms, 250 ms, 10 ms), so that a
// fault of a few seconds outlasts the election timeout several times and the cluster recovers from
// each within a second, while a node that the test machine's load delays by a hundred
// milliseconds does not lose its leadership for it.
var DefaultRaftTimings = RaftTimings{
	HeartbeatTimeout:   300 * time.Millisecond,
	ElectionTimeout:    300 * time.Millisecond,
	LeaderLeaseTimeout: 200 * time.Millisecond,
	CommitTimeout:      10 * time.Millisecond,
}

func (r RaftTimings) args() []string {
	var args []string
	for _, f := range []struct {
		flag string
		d    time.Duration
	}{
		{"--raft-heartbeat-timeout", r.HeartbeatTimeout},
		{"--raft-election-timeout", r.ElectionTimeout},
		{"--raft-leader-lease-timeout", r.LeaderLeaseTimeout},
		{"--raft-commit-timeout", r.CommitTimeout},
	} {
		if f.d > 0 {
			args = append(args, f.flag, f.d.String())
		}
	}
	return args
}

// Config is one chaos run.
type Config struct {
	// Bin is the dislog binary. Required.
	Bin string
	// Nodes is the cluster's size: 3 or 5. Default 3.
	Nodes int
	// Duration is how long the clients and the nemesis run. Default 1 minute.
	Duration time.Duration
	// Seed makes the nemesis's schedule and the clients' choices; the same seed gives the same
	// schedule (the timing of a real cluster never repeats exactly).
	Seed int64
	// Clients is the number of clients, each with its own connection and one operation at a time:
	// even ones dial the cluster (dislog:///, produces to the leader), odd ones one node each
	// (which forwards produces to the leader). Default 6.
	Clients int
	// Topics is the number of topics the clients share. Default 2.
	Topics int
	// Partitions is each topic's partition count, and ReplicationFactor the servers that hold
	// each partition (0: the cluster's default, 3). The clients spread their operations evenly
	// over the partitions, and the checks take each partition on its own. The linearizability
	// check's cost grows steeply with a partition's history, so a long run wants more partitions
	// or a lower Rate. Default 1.
	Partitions        int
	ReplicationFactor int
	// Rate caps the operations a second of all clients together; 0 means no cap. Default 0.
	Rate float64
	// Faults are the kinds of fault the nemesis picks from; none runs the clients on a healthy
	// cluster.
	Faults []Fault
	// MaxFaults bounds the number of faults injected. Default: no bound but the duration.
	MaxFaults int
	// FaultDuration is the mean length of a fault; each lasts between half and one and a half of
	// it. Default 3s.
	FaultDuration time.Duration
	// FaultInterval is the mean quiet time before each fault, drawn like FaultDuration. Default 2s.
	FaultInterval time.Duration
	// Raft are the nodes' Raft timeouts. Default DefaultRaftTimings.
	Raft RaftTimings
	// FailedRemoveAfter is the nodes' --failed-remove-after: how long a node may be down before
	// the cluster removes it and places its replicas elsewhere. Default: dislog's (1 minute), or
	// DefaultFailedRemoveAfter with the RemoveReadd fault, which waits that long.
	FailedRemoveAfter time.Duration
	// LinearizabilityTimeout bounds porcupine's search for each topic; a search that runs out
	// gives the verdict "unknown". Default 5 minutes.
	LinearizabilityTimeout time.Duration
	// VisualizeDir, if set, receives porcupine's HTML rendering of each topic whose history is not
	// linearizable.
	VisualizeDir string
	// Log receives the nodes' output and the nemesis's account of each fault. Default: discard.
	Log io.Writer
}

func (c *Config) setDefaults() error {
	if c.Bin == "" {
		return errors.New("chaos: no dislog binary")
	}
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Nodes != 3 && c.Nodes != 5 {
		return fmt.Errorf("chaos: %d nodes: want 3 or 5", c.Nodes)
	}
	if c.Duration == 0 {
		c.Duration = time.Minute
	}
	if c.Clients == 0 {
		c.Clients = 6
	}
	if c.Topics == 0 {
		c.Topics = 2
	}
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.Duration < 0 || c.Clients < 0 || c.Topics < 0 || c.Partitions < 0 || c.ReplicationFactor < 0 || c.Rate < 0 ||
		c.MaxFaults < 0 || c.FaultDuration < 0 || c.FaultInterval < 0 || c.FailedRemoveAfter < 0 {
		return errors.New("chaos: negative duration, count or rate")
	}
	if c.Partitions > 1024 {
		return fmt.Errorf("chaos: %d partitions: want 1 to 1024", c.Partitions)
	}
	if c.ReplicationFactor > c.Nodes {
		return fmt.Errorf("chaos: replication factor %d on %d nodes", c.ReplicationFactor, c.Nodes)
	}
	if c.FailedRemoveAfter == 0 && slices.Contains(c.Faults, RemoveReadd) {
		c.FailedRemoveAfter = DefaultFailedRemoveAfter
	}
	if c.FaultDuration == 0 {
		c.FaultDuration = 3 * time.Second
	}
	if c.FaultInterval == 0 {
		c.FaultInterval = 2 * time.Second
	}
	if c.Raft == (RaftTimings{}) {
		c.Raft = DefaultRaftTimings
	}
	if c.LinearizabilityTimeout == 0 {
		c.LinearizabilityTimeout = 5 * time.Minute
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

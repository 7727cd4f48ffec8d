package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dislog/dislog/client"
)

// leaderTimeout bounds the wait, before a run measures, for every partition of its topic to have a
// leader.
const leaderTimeout = time.Minute

// Describe describes topic through the clients in turn until the information on each partition
// came from a server that holds a replica of it: a server without one knows the partition's
// replicas but neither its leader nor its offsets. A partition whose replicas all lack a leader
// (an election) keeps the information without one after a few rounds. A topic of a server from
// before partitions has no PartitionInfo and is returned as the first server described it.
func Describe(ctx context.Context, clients []*client.Client, topic string) (client.TopicInfo, error) {
	var info client.TopicInfo
	rounds := 2*len(clients) + 2
	for try := range rounds {
		got, err := clients[try%len(clients)].DescribeTopic(ctx, topic)
		if err != nil {
			return info, fmt.Errorf("bench: describe topic %q: %w", topic, err)
		}
		if try == 0 || len(got.PartitionInfo) != len(info.PartitionInfo) {
			info = got
		} else {
			for p, pi := range got.PartitionInfo {
				if info.PartitionInfo[p].Leader == "" && pi.Leader != "" {
					info.PartitionInfo[p] = pi
				}
			}
		}
		if leaderless(info) == 0 {
			break
		}
	}
	return info, nil
}

// leaderless counts the partitions of info that have no leader.
func leaderless(info client.TopicInfo) int {
	n := 0
	for _, pi := range info.PartitionInfo {
		if pi.Leader == "" {
			n++
		}
	}
	return n
}

// ErrLeaderless is wrapped by AwaitLeaders when a partition still has no leader at the deadline.
var ErrLeaderless = errors.New("bench: partitions without a leader")

// AwaitLeaders waits until every partition of topic has a leader, as Describe finds them, polling
// every 20 ms, and returns the topic's description then. It gives up after timeout.
func AwaitLeaders(ctx context.Context, clients []*client.Client, topic string, timeout time.Duration) (client.TopicInfo, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := Describe(ctx, clients, topic)
		if err == nil && leaderless(info) == 0 {
			return info, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%w: %d of the %d partitions of %q after %s", ErrLeaderless, leaderless(info), info.Partitions, topic, timeout)
			}
			return info, err
		}
		select {
		case <-ctx.Done():
			return info, ctx.Err()
		case <-tick.C:
		}
	}
}

// Leaders is how a topic's partitions are spread over the servers.
type Leaders struct {
	Partitions        int `json:"partitions"`
	ReplicationFactor int `json:"replication_factor"`
	// Servers lists every server of the cluster with what it leads and holds, by name.
	Servers []ServerLeaders `json:"servers"`
	// Leaderless counts the partitions with no leader known.
	Leaderless int `json:"leaderless"`
	// Balanced is set when each server leads P/N ± 1 partitions and holds P·R/N ± 1 replicas (P
	// partitions of R replicas on N servers), the balance the placement promises.
	Balanced bool `json:"balanced"`
}

// ServerLeaders is one server's share of a topic.
type ServerLeaders struct {
	Server   string `json:"server"`
	Leads    int    `json:"leads"`
	Replicas int    `json:"replicas"`
}

// CountLeaders counts, from a topic's description, the partitions each of servers (the cluster's
// server IDs; others that hold replicas are added) leads and holds.
func CountLeaders(info client.TopicInfo, servers []string) *Leaders {
	l := &Leaders{Partitions: info.Partitions, ReplicationFactor: info.ReplicationFactor}
	byName := map[string]*ServerLeaders{}
	add := func(name string) *ServerLeaders {
		if s, ok := byName[name]; ok {
			return s
		}
		byName[name] = &ServerLeaders{Server: name}
		return byName[name]
	}
	for _, s := range servers {
		add(s)
	}
	for _, pi := range info.PartitionInfo {
		if pi.Leader == "" {
			l.Leaderless++
		} else {
			add(pi.Leader).Leads++
		}
		for _, r := range pi.Replicas {
			add(r).Replicas++
		}
	}
	for _, s := range byName {
		l.Servers = append(l.Servers, *s)
	}
	slices.SortFunc(l.Servers, func(a, b ServerLeaders) int { return cmp.Compare(a.Server, b.Server) })
	n := float64(len(l.Servers))
	l.Balanced = l.Leaderless == 0 && n > 0
	for _, s := range l.Servers {
		leads := float64(info.Partitions) / n
		replicas := float64(info.Partitions*info.ReplicationFactor) / n
		if math.Abs(float64(s.Leads)-leads) > 1 || info.ReplicationFactor > 0 && math.Abs(float64(s.Replicas)-replicas) > 1 {
			l.Balanced = false
		}
	}
	return l
}

// serverNames lists the cluster's servers by ID, as c's server knows them.
func serverNames(ctx context.Context, c *client.Client) ([]string, error) {
	servers, err := c.GetServers(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: list the servers: %w", err)
	}
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = s.ID
	}
	return names, nil
}

// ends returns where each partition of info ends (its next offset), or, for a topic described
// without partitions, where the topic does.
func ends(info client.TopicInfo) []uint64 {
	if len(info.PartitionInfo) == 0 {
		return []uint64{info.NextOffset}
	}
	out := make([]uint64, len(info.PartitionInfo))
	for p, pi := range info.PartitionInfo {
		out[p] = pi.NextOffset
	}
	return out
}

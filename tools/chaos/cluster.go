package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/localcluster"
	"github.com/dislog/dislog/tools/internal/faultproxy"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// nodeIP is node i's loopback address, from 0: 127.0.0.11, 127.0.0.12, ...
func nodeIP(i int) string { return fmt.Sprintf("127.0.0.%d", 11+i) }

// cluster is the dislog processes, the proxy in front of each, and a client of each node for the
// harness's own calls. Clients connect from 127.0.0.1, which is no node's IP, so no partition
// ever cuts them off.
type cluster struct {
	cfg *Config
	lc  *localcluster.Cluster
	net *faultproxy.Network
	// labels name the nodes' slots and proxies, node i's at i (node1, node2, ...): a node that
	// RemoveReadd replaces keeps its label, IP, addresses and proxy.
	labels []string
	// listen is node i's listening address, behind its proxy.
	listen []string
	admin  []*client.Client

	mu sync.RWMutex
	// ids are the nodes' IDs: their labels, or the new one a replacement took.
	ids []string
	// replaced are the nodes that replaced the localcluster processes of their slots, and
	// generation counts the replacements of each slot.
	replaced   map[int]*process
	generation map[int]int
	// args are the arguments each node runs with, which a replacement starts from.
	args [][]string
}

func startCluster(ctx context.Context, cfg *Config) (_ *cluster, err error) {
	c := &cluster{cfg: cfg, net: faultproxy.New(), replaced: map[int]*process{}, generation: map[int]int{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.close())
		}
	}()
	ips := make([]string, cfg.Nodes)
	for i := range ips {
		ips[i] = nodeIP(i)
		c.labels = append(c.labels, localcluster.NodeName(i))
	}
	c.ids = slices.Clone(c.labels)
	c.listen = make([]string, cfg.Nodes)
	args := cfg.Raft.args()
	if cfg.FailedRemoveAfter > 0 {
		args = append(args, "--failed-remove-after", cfg.FailedRemoveAfter.String())
	}
	c.lc, err = localcluster.StartProcesses(ctx, localcluster.Options{
		Bin: cfg.Bin, Nodes: cfg.Nodes, Log: cfg.Log, IPs: ips, Args: args,
		Advertise: func(i int, listen string) (string, error) {
			c.listen[i] = listen
			p, err := c.net.Listen(c.labels[i], ips[i], net.JoinHostPort(ips[i], "0"), listen)
			if err != nil {
				return "", err
			}
			return p.Addr(), nil
		},
	})
	if err != nil {
		return nil, err
	}
	if c.args, err = c.commandLines(); err != nil {
		return nil, err
	}
	for _, addr := range c.lc.Addrs {
		cl, err := c.lc.Dial(addr, client.WithProduceRetries(0))
		if err != nil {
			return nil, err
		}
		c.admin = append(c.admin, cl)
	}
	return c, nil
}

func (c *cluster) close() error {
	var errs []error
	for _, cl := range c.admin {
		cl.Close()
	}
	c.mu.Lock()
	for _, p := range c.replaced {
		errs = append(errs, p.stop())
	}
	c.mu.Unlock()
	if c.lc != nil {
		errs = append(errs, c.lc.Close())
	}
	return errors.Join(append(errs, c.net.Close())...)
}

// size is the number of nodes.
func (c *cluster) size() int { return len(c.labels) }

// id returns node i's ID.
func (c *cluster) id(i int) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ids[i]
}

// nodeIDs returns the nodes' IDs, node i's at i.
func (c *cluster) nodeIDs() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.ids)
}

// index returns the index of the node whose ID is id, or -1.
func (c *cluster) index(id string) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Index(c.ids, id)
}

// nodeOf names the node whose advertised address addr is, or returns addr.
func (c *cluster) nodeOf(addr string) string {
	for i, a := range c.lc.Addrs {
		if a == addr {
			return c.id(i)
		}
	}
	return addr
}

// leader returns the node that most nodes name as their leader, or -1 if none does.
func (c *cluster) leader(ctx context.Context) int {
	votes := make([]int, c.size())
	for _, cl := range c.admin {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		servers, err := cl.GetServers(ctx)
		cancel()
		if err != nil {
			continue
		}
		for _, s := range servers {
			for i, a := range c.lc.Addrs {
				if s.IsLeader && s.RPCAddr == a {
					votes[i]++
				}
			}
		}
	}
	best := -1
	for i, v := range votes {
		if v > 0 && (best < 0 || v > votes[best]) {
			best = i
		}
	}
	return best
}

// describe describes topic through the nodes in turn, starting at node from, until one answers
// with partition p's leader, and returns that description's partition p.
func (c *cluster) describe(ctx context.Context, l Log, from int) (client.PartitionInfo, bool) {
	for k := range c.admin {
		i := (from + k) % len(c.admin)
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := c.admin[i].DescribeTopic(ctx, l.Topic)
		cancel()
		if err != nil || l.Partition >= len(info.PartitionInfo) {
			continue
		}
		if pi := info.PartitionInfo[l.Partition]; pi.Leader != "" {
			return pi, true
		}
	}
	return client.PartitionInfo{}, false
}

// partitionLeader returns the node that leads partition l, or -1 if no node names one.
func (c *cluster) partitionLeader(ctx context.Context, l Log, from int) int {
	pi, ok := c.describe(ctx, l, from)
	if !ok {
		return -1
	}
	return c.index(pi.Leader)
}

// createTopics creates the topics, each of partitions partitions on rf replicas, and waits until
// every node has them and every partition has a leader.
func (c *cluster) createTopics(ctx context.Context, topics []string, partitions, rf int) error {
	for _, t := range topics {
		err := poll(ctx, "topic "+t+" to be created", func() error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := c.admin[0].CreateTopic(ctx, t, client.TopicConfig{Partitions: partitions, ReplicationFactor: rf})
			if status.Code(err) == codes.AlreadyExists {
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		for i, cl := range c.admin {
			err := poll(ctx, c.id(i)+" to have topic "+t+" with a leader for each partition", func() error {
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				info, err := cl.DescribeTopic(ctx, t)
				if err != nil {
					return err
				}
				for _, pi := range info.PartitionInfo {
					if pi.Leader == "" && slices.Contains(pi.Replicas, c.id(i)) {
						return fmt.Errorf("partition %d has no leader", pi.Partition)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// replicaSet is where a partition is when the nodes agree: the nodes that hold it, the one that
// leads it, and its end (next offset).
type replicaSet struct {
	holders []int
	leader  int
	end     uint64
}

// converge waits until every node names the same leader of the cluster and counts every node a
// voter, and the replicas of every partition name the same leader and hold the partition to the
// same end, the same twice in a row; it returns where each partition is then.
func (c *cluster) converge(ctx context.Context, topics []string) (map[Log]replicaSet, error) {
	var last map[Log]replicaSet
	var agreed map[Log]replicaSet
	err := poll(ctx, "the nodes to agree", func() error {
		sets, err := c.agreed(ctx, topics)
		if err != nil {
			last = nil
			return err
		}
		if last == nil || !sameSets(sets, last) {
			last = sets
			return errors.New("partitions still moving")
		}
		agreed = sets
		return nil
	})
	return agreed, err
}

func sameSets(a, b map[Log]replicaSet) bool {
	if len(a) != len(b) {
		return false
	}
	for l, s := range a {
		t, ok := b[l]
		if !ok || s.leader != t.leader || s.end != t.end || !slices.Equal(s.holders, t.holders) {
			return false
		}
	}
	return true
}

// agreed returns where each partition is if every node agrees on the cluster's leader and counts
// every node a voter, and each partition's replicas agree on its leader and end.
func (c *cluster) agreed(ctx context.Context, topics []string) (map[Log]replicaSet, error) {
	leader := ""
	for i, cl := range c.admin {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		servers, err := cl.GetServers(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.id(i), err)
		}
		voters, lead := 0, ""
		for _, s := range servers {
			if s.IsVoter {
				voters++
			}
			if s.IsLeader {
				lead = s.RPCAddr
			}
		}
		if voters != c.size() || lead == "" || (leader != "" && lead != leader) {
			return nil, fmt.Errorf("%s: %d voters, leader %q", c.id(i), voters, c.nodeOf(lead))
		}
		leader = lead
	}
	sets := map[Log]replicaSet{}
	for _, t := range topics {
		// Each node's own view of the partitions it holds.
		views := make([]client.TopicInfo, len(c.admin))
		for i, cl := range c.admin {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			info, err := cl.DescribeTopic(ctx, t)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.id(i), err)
			}
			views[i] = info
		}
		for p, pi := range views[0].PartitionInfo {
			l := Log{Topic: t, Partition: p}
			set := replicaSet{leader: -1}
			for _, id := range pi.Replicas {
				i := c.index(id)
				if i < 0 {
					return nil, fmt.Errorf("%s: replica %s is no node of the cluster", l, id)
				}
				if p >= len(views[i].PartitionInfo) {
					return nil, fmt.Errorf("%s: %s does not describe it", l, id)
				}
				v := views[i].PartitionInfo[p]
				if !slices.Equal(v.Replicas, pi.Replicas) {
					return nil, fmt.Errorf("%s: replicas %v on %s, %v on %s", l, pi.Replicas, c.id(0), v.Replicas, id)
				}
				lead := c.index(v.Leader)
				if lead < 0 || (set.leader >= 0 && lead != set.leader) {
					return nil, fmt.Errorf("%s: %s names the leader %q", l, id, v.Leader)
				}
				if len(set.holders) > 0 && v.NextOffset != set.end {
					return nil, fmt.Errorf("%s ends at %d on %s, %d on %s", l, set.end, c.id(set.holders[0]), v.NextOffset, id)
				}
				set.leader, set.end = lead, v.NextOffset
				set.holders = append(set.holders, i)
			}
			if len(set.holders) == 0 {
				return nil, fmt.Errorf("%s: no replica", l)
			}
			slices.Sort(set.holders)
			sets[l] = set
		}
	}
	return sets, nil
}

// guessReplicas is where partition l is, as some node describes it, when the nodes do not agree:
// its replicas and leader, or every node and the cluster's leader.
func (c *cluster) guessReplicas(ctx context.Context, l Log) replicaSet {
	set := replicaSet{leader: -1}
	if pi, ok := c.describe(ctx, l, 0); ok {
		set.leader = c.index(pi.Leader)
		for _, id := range pi.Replicas {
			if i := c.index(id); i >= 0 {
				set.holders = append(set.holders, i)
			}
		}
	}
	if len(set.holders) == 0 {
		set.holders = make([]int, c.size())
		for i := range set.holders {
			set.holders[i] = i
		}
	}
	if !slices.Contains(set.holders, set.leader) {
		set.leader = set.holders[0]
		if lead := c.leader(ctx); slices.Contains(set.holders, lead) {
			set.leader = lead
		}
	}
	return set
}

// removed reports, as an error, whether any node but i still counts the node old in the cluster
// or among the replicas of a partition of logs; nil once none does.
func (c *cluster) removed(ctx context.Context, i int, old string, logs []Log) error {
	topics := map[string]bool{}
	for _, l := range logs {
		topics[l.Topic] = true
	}
	var last error
	for j, cl := range c.admin {
		if j == i {
			continue
		}
		if last = c.lists(ctx, cl, old, topics); last == nil {
			return nil
		}
	}
	return last
}

// lists returns an error saying where cl's node counts id: in the cluster, or among a partition's
// replicas; nil if nowhere.
func (c *cluster) lists(ctx context.Context, cl *client.Client, id string, topics map[string]bool) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	servers, err := cl.GetServers(ctx)
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.ID == id {
			return fmt.Errorf("%s is still in the cluster", id)
		}
	}
	for t := range topics {
		info, err := cl.DescribeTopic(ctx, t)
		if err != nil {
			return err
		}
		for _, pi := range info.PartitionInfo {
			if slices.Contains(pi.Replicas, id) {
				return fmt.Errorf("%s still holds partition %d of %s", id, pi.Partition, t)
			}
		}
	}
	return nil
}

// readAll reads partition l from node i's own replica, from offset 0 to its end.
func (c *cluster) readAll(ctx context.Context, i int, l Log) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	stream, err := c.admin[i].API().ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{
		Topic: l.Topic, Partition: uint32(l.Partition), Start: &dislogv1.ConsumeStreamRequest_Offset{Offset: 0}, ReadYourWrites: true,
	})
	if err != nil {
		return nil, err
	}
	var values []string
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return values, nil
		}
		if err != nil {
			return values, err
		}
		for _, r := range resp.GetRecords() {
			if r.GetOffset() != uint64(len(values)) {
				return values, fmt.Errorf("record at offset %d where %d was next", r.GetOffset(), len(values))
			}
			values = append(values, string(r.GetValue()))
		}
	}
}

// poll calls f every 100 ms until it returns nil or ctx ends, and then returns f's last error.
func poll(ctx context.Context, what string, f func() error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
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
	lc    *localcluster.Cluster
	net   *faultproxy.Network
	names []string
	admin []*client.Client
}

func startCluster(ctx context.Context, cfg *Config) (_ *cluster, err error) {
	c := &cluster{net: faultproxy.New()}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.close())
		}
	}()
	ips := make([]string, cfg.Nodes)
	for i := range ips {
		ips[i] = nodeIP(i)
		c.names = append(c.names, localcluster.NodeName(i))
	}
	c.lc, err = localcluster.StartProcesses(ctx, localcluster.Options{
		Bin: cfg.Bin, Nodes: cfg.Nodes, Log: cfg.Log, IPs: ips, Args: cfg.Raft.args(),
		Advertise: func(i int, listen string) (string, error) {
			p, err := c.net.Listen(c.names[i], ips[i], net.JoinHostPort(ips[i], "0"), listen)
			if err != nil {
				return "", err
			}
			return p.Addr(), nil
		},
	})
	if err != nil {
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
	if c.lc != nil {
		errs = append(errs, c.lc.Close())
	}
	return errors.Join(append(errs, c.net.Close())...)
}

// nodeOf names the node whose advertised address addr is, or returns addr.
func (c *cluster) nodeOf(addr string) string {
	for i, a := range c.lc.Addrs {
		if a == addr {
			return c.names[i]
		}
	}
	return addr
}

// leader returns the node that most nodes name as their leader, or -1 if none does.
func (c *cluster) leader(ctx context.Context) int {
	votes := make([]int, len(c.names))
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

// createTopics creates the topics and waits until every node has them.
func (c *cluster) createTopics(ctx context.Context, topics []string) error {
	for _, t := range topics {
		err := poll(ctx, "topic "+t+" to be created", func() error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := c.admin[0].CreateTopic(ctx, t, client.TopicConfig{})
			if status.Code(err) == codes.AlreadyExists {
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		for i, cl := range c.admin {
			err := poll(ctx, c.names[i]+" to have topic "+t, func() error {
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, err := cl.DescribeTopic(ctx, t)
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// converge waits until every node names the same leader, every node votes, and every node holds
// each topic up to the leader's end, the same twice in a row.
func (c *cluster) converge(ctx context.Context, topics []string) error {
	var last []uint64
	return poll(ctx, "the nodes to agree", func() error {
		ends, err := c.agreedEnds(ctx, topics)
		if err != nil {
			last = nil
			return err
		}
		if last == nil || !slices.Equal(ends, last) {
			last = ends
			return fmt.Errorf("topic ends %v, still moving", ends)
		}
		return nil
	})
}

// agreedEnds returns each topic's next offset if every node agrees on the leader, counts every
// node a voter, and holds each topic to the same end.
func (c *cluster) agreedEnds(ctx context.Context, topics []string) ([]uint64, error) {
	leader := ""
	for i, cl := range c.admin {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		servers, err := cl.GetServers(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.names[i], err)
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
		if voters != len(c.names) || lead == "" || (leader != "" && lead != leader) {
			return nil, fmt.Errorf("%s: %d voters, leader %q", c.names[i], voters, c.nodeOf(lead))
		}
		leader = lead
	}
	ends := make([]uint64, len(topics))
	for ti, t := range topics {
		for i, cl := range c.admin {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			info, err := cl.DescribeTopic(ctx, t)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.names[i], err)
			}
			if i > 0 && info.NextOffset != ends[ti] {
				return nil, fmt.Errorf("topic %s ends at %d on %s, %d on %s", t, ends[ti], c.names[0], info.NextOffset, c.names[i])
			}
			ends[ti] = info.NextOffset
		}
	}
	return ends, nil
}

// readAll reads topic from node i's own log, from offset 0 to its end.
func (c *cluster) readAll(ctx context.Context, i int, topic string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	stream, err := c.admin[i].API().ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{
		Topic: topic, Start: &dislogv1.ConsumeStreamRequest_Offset{Offset: 0}, ReadYourWrites: true,
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

package discovery_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dislog/dislog/discovery"
	"github.com/dislog/dislog/discovery/discoverytest"
)

// settle bounds every wait on the cluster. The fast timings detect a failure in about half a second;
// the margin is for the race detector on two busy cores.
const settle = 15 * time.Second

var nextRPCPort atomic.Int32

// node is a running Membership with the Recorder its events go to.
type node struct {
	*discovery.Membership
	name string
	rpc  string
	rec  *discoverytest.Recorder
}

// start runs a node named name on 127.0.0.1 with a kernel-chosen port and the fast test timings,
// joining through seeds. opts adjust the config before it is used. The node is shut down when the test
// ends.
func start(t testing.TB, name string, seeds []string, opts ...func(*discovery.Config)) *node {
	t.Helper()
	cfg := discovery.Config{
		NodeName:  name,
		BindAddr:  "127.0.0.1:0",
		RPCAddr:   fmt.Sprintf("127.0.0.1:%d", 20000+nextRPCPort.Add(1)),
		SeedAddrs: seeds,
		Timings:   discoverytest.Timings(),
		Logger:    discoverytest.Logger(t),
	}
	for _, o := range opts {
		o(&cfg)
	}
	rec := &discoverytest.Recorder{}
	m, err := discovery.New(cfg, rec)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return &node{Membership: m, name: name, rpc: cfg.RPCAddr, rec: rec}
}

// cluster starts n nodes, n0 to n<n-1>, the others joining through n0, and waits until every node sees
// all n alive. Gossip can miss a node, which then learns of a join at its next push/pull, so the wait
// allows two of those.
func cluster(t testing.TB, n int, opts ...func(*discovery.Config)) []*node {
	t.Helper()
	probe := discovery.Config{Timings: discoverytest.Timings()}
	for _, o := range opts {
		o(&probe)
	}
	pushPull := probe.Timings.PushPullInterval
	if pushPull == 0 {
		pushPull = discovery.DefaultTimings().PushPullInterval
	}
	nodes := []*node{start(t, "n0", nil, opts...)}
	for i := 1; i < n; i++ {
		nodes = append(nodes, start(t, fmt.Sprintf("n%d", i), []string{nodes[0].Addr()}, opts...))
	}
	for _, nd := range nodes {
		discoverytest.WaitFor(t, settle+2*pushPull, nd.name+" to see the whole cluster alive", func() bool {
			return countStatus(nd.Members(), discovery.StatusAlive) == n
		})
	}
	return nodes
}

func countStatus(ms []discovery.Member, s discovery.MemberStatus) int {
	n := 0
	for _, m := range ms {
		if m.Status == s {
			n++
		}
	}
	return n
}

// member returns the entry for id in ms and how many entries have that id.
func member(ms []discovery.Member, id string) (discovery.Member, int) {
	var found discovery.Member
	n := 0
	for _, m := range ms {
		if m.ID == id {
			found = m
			n++
		}
	}
	return found, n
}

// sees reports whether nd's view has exactly one entry for id, with status s.
func (nd *node) sees(id string, s discovery.MemberStatus) bool {
	m, n := member(nd.Members(), id)
	return n == 1 && m.Status == s
}

// lastIs reports whether the latest handler call nd received about id is of kind k.
func (nd *node) lastIs(id string, k discoverytest.Kind) bool {
	e, ok := nd.rec.Last(id)
	return ok && e.Kind == k
}

package raftnet_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/server/internal/raftnet"
	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

// tcpLayer is a raft.StreamLayer over plain TCP on loopback (the server wraps TLS around it).
type tcpLayer struct{ net.Listener }

func (l tcpLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

func listen(t *testing.T, addr string) tcpLayer {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return tcpLayer{l}
}

func newNetwork(t *testing.T, layer tcpLayer, timeout time.Duration) *raftnet.Network {
	t.Helper()
	n, err := raftnet.New(layer, raftnet.Options{LocalAddr: raft.ServerAddress(layer.Addr().String()), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// counter is a state machine that sums the entries it applies.
type counter struct {
	mu       sync.Mutex
	sum, n   int
	values   []int // applied since the last restore
	restored int   // snapshots restored
}

func (c *counter) Apply(l *raft.Log) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var v int
	fmt.Sscan(string(l.Data), &v)
	c.sum += v
	c.n++
	c.values = append(c.values, v)
	return nil
}

func (c *counter) get() (sum, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sum, c.n
}

func (c *counter) Snapshot() (raft.FSMSnapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return snap(fmt.Sprintf("%d %d", c.sum, c.n)), nil
}

func (c *counter) Restore(r io.ReadCloser) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.restored++
	_, err = fmt.Sscan(string(b), &c.sum, &c.n)
	return err
}

type snap string

func (s snap) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write([]byte(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}
func (snap) Release() {}

type node struct {
	raft *raft.Raft
	fsm  *counter
}

// fastConfig has Raft timings for a test on loopback; they leave room for a loaded two-core
// machine running the race detector.
func fastConfig(id raft.ServerAddress) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 150 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.LogLevel = "error"
	return c
}

func startNode(t *testing.T, n *raftnet.Network, group string, conf *raft.Config, servers []raft.Server) node {
	t.Helper()
	tr, err := n.Transport(group)
	if err != nil {
		t.Fatal(err)
	}
	store := raft.NewInmemStore()
	fsm := &counter{}
	r, err := raft.NewRaft(conf, fsm, store, store, raft.NewInmemSnapshotStore(), tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown().Error() })
	if servers != nil {
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatal(err)
		}
	}
	return node{raft: r, fsm: fsm}
}

// waitFor polls cond until it holds, failing with what describe says after timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, describe())
		}
		<-tick.C
	}
}

func says(s string) func() string { return func() string { return s } }

// hasAll reports whether values hold every number from 1 to n.
func hasAll(values []int, n int) bool {
	for v := 1; v <= n; v++ {
		if !slices.Contains(values, v) {
			return false
		}
	}
	return true
}

func leaderOf(nodes []node) *raft.Raft {
	for _, n := range nodes {
		if n.raft.State() == raft.Leader {
			return n.raft
		}
	}
	return nil
}

// Two dozen groups on three servers replicate over one connection each way between two servers.
func TestManyGroupsShareOneConnectionPerPeer(t *testing.T) {
	const groups, servers, entries = 24, 3, 20
	var layers []tcpLayer
	var nets []*raftnet.Network
	var config []raft.Server
	for range servers {
		l := listen(t, "127.0.0.1:0")
		layers = append(layers, l)
		addr := raft.ServerAddress(l.Addr().String())
		config = append(config, raft.Server{ID: raft.ServerID(addr), Address: addr})
	}
	for _, l := range layers {
		nets = append(nets, newNetwork(t, l, 2*time.Second))
	}
	all := make([][]node, groups)
	for g := range groups {
		for i, n := range nets {
			// Seventy Raft nodes on two cores under the race detector: timings with room.
			conf := fastConfig(config[i].Address)
			conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
			all[g] = append(all[g], startNode(t, n, fmt.Sprintf("topic/%d", g), conf, config))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, groups)
	for g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(60 * time.Second)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for i := 1; i <= entries; {
				l := leaderOf(all[g])
				if l == nil {
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("group %d: no leader", g)
						return
					}
					<-tick.C
					continue
				}
				if err := l.Apply(fmt.Appendf(nil, "%d", i), time.Second).Error(); err != nil {
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("group %d: %w", g, err)
						return
					}
					continue
				}
				i++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every replica applies the same entries in the same order, each value at least once (an
	// Apply that failed with a lost leadership may have committed: the retry can apply it twice).
	for g := range groups {
		var first []int
		for i, n := range all[g] {
			var values []int
			waitFor(t, 30*time.Second, func() bool {
				n.fsm.mu.Lock()
				values = slices.Clone(n.fsm.values)
				n.fsm.mu.Unlock()
				return i == 0 && hasAll(values, entries) || i > 0 && slices.Equal(values, first)
			}, func() string {
				return fmt.Sprintf("group %d: server %d applied %v, server 0 %v; want 1 to %d on each, the same; raft: %v",
					g, i, values, first, entries, n.raft.Stats())
			})
			first = values
		}
	}
	for i, n := range nets {
		dialed, accepted := n.Connections()
		if dialed > servers-1 || accepted > servers-1 {
			t.Fatalf("server %d holds %d dialed and %d accepted connections for %d groups, want at most %d each",
				i, dialed, accepted, groups, servers-1)
		}
	}
}

// A follower added after the leader compacted its log gets a snapshot over the network, and a
// leadership transfer (TimeoutNow) works.
func TestSnapshotAndLeadershipTransfer(t *testing.T) {
	is := is.New(t)
	l1, l2 := listen(t, "127.0.0.1:0"), listen(t, "127.0.0.1:0")
	n1, n2 := newNetwork(t, l1, 2*time.Second), newNetwork(t, l2, 2*time.Second)
	a1, a2 := raft.ServerAddress(l1.Addr().String()), raft.ServerAddress(l2.Addr().String())
	c1 := fastConfig(a1)
	c1.TrailingLogs = 5
	c1.SnapshotThreshold = 10
	first := startNode(t, n1, "g", c1, []raft.Server{{ID: raft.ServerID(a1), Address: a1}})
	waitFor(t, 5*time.Second, func() bool { return first.raft.State() == raft.Leader }, says("a leader"))
	for i := 1; i <= 100; i++ {
		is.NoErr(first.raft.Apply(fmt.Appendf(nil, "%d", i), time.Second).Error())
	}
	is.NoErr(first.raft.Snapshot().Error())
	second := startNode(t, n2, "g", fastConfig(a2), nil)
	is.NoErr(first.raft.AddVoter(raft.ServerID(a2), a2, 0, 5*time.Second).Error())
	waitFor(t, 10*time.Second, func() bool {
		sum, _ := second.fsm.get()
		return sum == 5050
	}, says("the new follower to catch up"))
	second.fsm.mu.Lock()
	restored := second.fsm.restored
	second.fsm.mu.Unlock()
	if restored == 0 {
		t.Fatal("the follower applied every entry one by one; it should have started from a snapshot")
	}
	is.NoErr(first.raft.LeadershipTransferToServer(raft.ServerID(a2), a2).Error())
	waitFor(t, 5*time.Second, func() bool { return second.raft.State() == raft.Leader }, says("the follower to take the lead"))
}

func TestACallForAGroupThePeerDoesNotRunFails(t *testing.T) {
	l1, l2 := listen(t, "127.0.0.1:0"), listen(t, "127.0.0.1:0")
	n1 := newNetwork(t, l1, 2*time.Second)
	newNetwork(t, l2, 2*time.Second)
	tr, err := n1.Transport("here-only")
	if err != nil {
		t.Fatal(err)
	}
	var resp raft.RequestVoteResponse
	err = tr.RequestVote("x", raft.ServerAddress(l2.Addr().String()), &raft.RequestVoteRequest{Term: 1}, &resp)
	if err == nil || !strings.Contains(err.Error(), "no such group") {
		t.Fatalf("got %v, want the peer's 'no such group' answer", err)
	}
	if _, err := n1.Transport("here-only"); !errors.Is(err, raftnet.ErrGroupExists) {
		t.Fatalf("a second transport for one group: got %v, want ErrGroupExists", err)
	}
}

// A peer that takes the connection but never answers (a frozen process, a cut network) costs one
// timeout: the connection is dropped and the next call dials again.
func TestASilentConnectionIsDialedAgain(t *testing.T) {
	l1 := listen(t, "127.0.0.1:0")
	n1 := newNetwork(t, l1, 200*time.Millisecond)
	silent := listen(t, "127.0.0.1:0")
	defer silent.Close()
	var mu sync.Mutex
	accepted := 0
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted++
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	tr, err := n1.Transport("g")
	if err != nil {
		t.Fatal(err)
	}
	target := raft.ServerAddress(silent.Addr().String())
	for range 2 {
		var resp raft.RequestVoteResponse
		err := tr.RequestVote("x", target, &raft.RequestVoteRequest{Term: 1}, &resp)
		if !errors.Is(err, raftnet.ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
	}
	waitFor(t, 2*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return accepted == 2
	}, says("a second connection after the first answered nothing"))
}

// A peer that restarts on the same address is reached again.
func TestAPeerThatRestartsIsReachedAgain(t *testing.T) {
	is := is.New(t)
	l1, l2 := listen(t, "127.0.0.1:0"), listen(t, "127.0.0.1:0")
	n1 := newNetwork(t, l1, time.Second)
	addr := l2.Addr().String()
	n2, err := raftnet.New(l2, raftnet.Options{LocalAddr: raft.ServerAddress(addr), Timeout: time.Second})
	is.NoErr(err)
	if _, err := n2.Transport("g"); err != nil {
		t.Fatal(err)
	}
	tr, err := n1.Transport("g")
	is.NoErr(err)
	ping := func() error {
		var resp raft.TimeoutNowResponse
		return tr.TimeoutNow("x", raft.ServerAddress(addr), &raft.TimeoutNowRequest{}, &resp)
	}
	is.NoErr(n2.Close())
	if err := ping(); err == nil {
		t.Fatal("a call to a server that closed succeeded")
	}
	l2b := listen(t, addr)
	n2b := newNetwork(t, l2b, time.Second)
	t2, err := n2b.Transport("g")
	is.NoErr(err)
	go func() {
		for rpc := range t2.Consumer() {
			rpc.Respond(&raft.TimeoutNowResponse{}, nil)
		}
	}()
	waitFor(t, 5*time.Second, func() bool { return ping() == nil }, says("the restarted peer to answer"))
}

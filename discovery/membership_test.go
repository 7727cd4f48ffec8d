package discovery_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/discovery"
	"github.com/dislog/dislog/discovery/discoverytest"
	"github.com/matryer/is"
)

func TestNodesJoinThroughASeedAndSeeEachOther(t *testing.T) {
	is := is.New(t)
	nodes := cluster(t, 3, func(c *discovery.Config) { c.Tags = map[string]string{"rack": "r1"} })

	for _, nd := range nodes {
		ms := nd.Members()
		is.Equal(len(ms), 3)
		for _, other := range nodes {
			m, n := member(ms, other.name)
			is.Equal(n, 1)
			is.Equal(m.Addr, other.Addr())
			is.Equal(m.RPCAddr, other.rpc)
			is.Equal(m.Tags, map[string]string{"rack": "r1"}) // RPCAddrTag is not among the user's tags
		}
		for _, other := range nodes {
			if other == nd {
				continue
			}
			discoverytest.WaitFor(t, settle, nd.name+"'s handler to hear that "+other.name+" joined", func() bool {
				return nd.lastIs(other.name, discoverytest.Join)
			})
			e, _ := nd.rec.Last(other.name)
			is.Equal(e.RPCAddr, other.rpc)
		}
		_, self := nd.rec.Last(nd.name)
		is.True(!self) // the handler never hears about its own node
	}
}

func TestNodesStartedInAnyOrderFindEachOther(t *testing.T) {
	is := is.New(t)
	// The late node's address has to be known before it runs, so the early node can list it as its
	// seed. Hold a port on 127.0.0.1; the same port on 127.0.0.3, which nothing else here uses, is
	// then free for the late node.
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	defer hold.Close()
	lateAddr := fmt.Sprintf("127.0.0.3:%d", hold.Addr().(*net.TCPAddr).Port)

	var mu sync.Mutex
	failedJoins := 0
	early := start(t, "early", []string{lateAddr}, func(c *discovery.Config) {
		c.Logger = slog.New(&joinFailureCounter{Handler: c.Logger.Handler(), mu: &mu, n: &failedJoins})
	})
	discoverytest.WaitFor(t, settle, "the early node to fail joining twice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return failedJoins >= 2
	})
	is.Equal(len(early.Members()), 1)

	late := start(t, "late", nil, func(c *discovery.Config) { c.BindAddr = lateAddr })
	is.Equal(late.Addr(), lateAddr)
	for _, nd := range []*node{early, late} {
		discoverytest.WaitFor(t, settle, nd.name+" to see both nodes alive", func() bool {
			return countStatus(nd.Members(), discovery.StatusAlive) == 2
		})
	}
}

func TestASeedThatIsTheNodeItselfDoesNotEndTheJoin(t *testing.T) {
	is := is.New(t)
	// Every server of a compose file or a Kubernetes StatefulSet gets the same seed list, its own
	// name included. Here the node's own address is spelled as an IPv4-mapped IPv6 address, which
	// the seed filter does not recognize, as it would not recognize a host name: a join through it
	// reaches the node itself, which must not count as joining.
	holdSelf, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	defer holdSelf.Close()
	port := holdSelf.Addr().(*net.TCPAddr).Port
	selfAddr := fmt.Sprintf("127.0.0.5:%d", port)
	selfAlias := fmt.Sprintf("[::ffff:127.0.0.5]:%d", port)
	holdLate, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	defer holdLate.Close()
	lateAddr := fmt.Sprintf("127.0.0.3:%d", holdLate.Addr().(*net.TCPAddr).Port)

	var mu sync.Mutex
	failedJoins := 0
	early := start(t, "early", []string{selfAlias, lateAddr}, func(c *discovery.Config) {
		c.BindAddr = selfAddr
		c.Logger = slog.New(&joinFailureCounter{Handler: c.Logger.Handler(), mu: &mu, n: &failedJoins})
	})
	discoverytest.WaitFor(t, settle, "the early node to fail joining twice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return failedJoins >= 2
	})
	is.Equal(len(early.Members()), 1)

	late := start(t, "late", nil, func(c *discovery.Config) { c.BindAddr = lateAddr })
	for _, nd := range []*node{early, late} {
		discoverytest.WaitFor(t, settle, nd.name+" to see both nodes alive", func() bool {
			return countStatus(nd.Members(), discovery.StatusAlive) == 2
		})
	}
}

// joinFailureCounter counts the "join failed, retrying" records that pass through it.
type joinFailureCounter struct {
	slog.Handler
	mu *sync.Mutex
	n  *int
}

func (h *joinFailureCounter) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "join failed") {
		h.mu.Lock()
		*h.n++
		h.mu.Unlock()
	}
	return h.Handler.Handle(ctx, r)
}

func (h *joinFailureCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return &joinFailureCounter{Handler: h.Handler.WithAttrs(as), mu: h.mu, n: h.n}
}

func TestGracefulLeaveIsReportedAsALeave(t *testing.T) {
	is := is.New(t)
	nodes := cluster(t, 3)
	leaver := nodes[2]

	is.NoErr(leaver.Close())

	for _, nd := range nodes[:2] {
		discoverytest.WaitFor(t, settle, nd.name+" to see "+leaver.name+" left", func() bool {
			return nd.sees(leaver.name, discovery.StatusLeft) && nd.lastIs(leaver.name, discoverytest.Leave)
		})
	}
}

func TestAStoppedNodeIsDetectedAsFailed(t *testing.T) {
	nodes := cluster(t, 4)
	victim := nodes[3]

	if err := victim.Shutdown(); err != nil { // no leave message: a crash, as far as the cluster knows
		t.Fatal(err)
	}

	for _, nd := range nodes[:3] {
		discoverytest.WaitFor(t, settle, nd.name+" to detect that "+victim.name+" failed", func() bool {
			return nd.sees(victim.name, discovery.StatusFailed) && nd.lastIs(victim.name, discoverytest.Leave)
		})
	}
}

func TestARestartedNodeReplacesItsOldAddress(t *testing.T) {
	tests := []struct {
		name string
		// detectFirst waits for the cluster to declare the old node failed before the restart.
		detectFirst bool
	}{
		{"after its failure was detected", true},
		{"before its failure was detected", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			nodes := cluster(t, 3)
			old := nodes[2]
			is.NoErr(old.Shutdown())
			if tt.detectFirst {
				for _, nd := range nodes[:2] {
					discoverytest.WaitFor(t, settle, nd.name+" to detect the failure", func() bool {
						return nd.sees(old.name, discovery.StatusFailed)
					})
				}
			}

			restarted := start(t, old.name, []string{nodes[0].Addr()}) // same name, new ports
			is.True(restarted.Addr() != old.Addr())
			is.True(restarted.rpc != old.rpc)

			for _, nd := range nodes[:2] {
				discoverytest.WaitFor(t, settle, nd.name+" to see "+old.name+" alive at its new address", func() bool {
					m, n := member(nd.Members(), old.name)
					return n == 1 && m.Status == discovery.StatusAlive && m.Addr == restarted.Addr() && m.RPCAddr == restarted.rpc
				})
				discoverytest.WaitFor(t, settle, nd.name+"'s handler to hear the join at the new address", func() bool {
					e, ok := nd.rec.Last(old.name)
					return ok && e.Kind == discoverytest.Join && e.RPCAddr == restarted.rpc
				})
				// The old incarnation was reported gone before the new one was reported: the handler
				// saw join(old), leave, join(new), never two live addresses at once.
				var kinds []string
				for _, e := range nd.rec.Events() {
					if e.ID == old.name {
						kinds = append(kinds, string(e.Kind)+"@"+e.RPCAddr)
					}
				}
				is.Equal(kinds, []string{"join@" + old.rpc, "leave@", "join@" + restarted.rpc})
				is.Equal(len(nd.Members()), 3) // no ghost
			}
		})
	}
}

func TestANodeWithAnotherKeyNeverJoins(t *testing.T) {
	is := is.New(t)
	key, otherKey := make([]byte, 32), make([]byte, 32)
	_, _ = rand.Read(key)
	_, _ = rand.Read(otherKey)
	withKey := func(k []byte) func(*discovery.Config) {
		return func(c *discovery.Config) { c.EncryptKey = k }
	}
	nodes := cluster(t, 2, withKey(key))

	var mu sync.Mutex
	failedJoins := 0
	intruder := start(t, "intruder", []string{nodes[0].Addr(), nodes[1].Addr()}, withKey(otherKey), func(c *discovery.Config) {
		c.Logger = slog.New(&joinFailureCounter{Handler: c.Logger.Handler(), mu: &mu, n: &failedJoins})
	})
	plain := start(t, "plain", []string{nodes[0].Addr()}, func(c *discovery.Config) {
		c.Logger = slog.New(&joinFailureCounter{Handler: c.Logger.Handler(), mu: &mu, n: &failedJoins})
	})
	discoverytest.WaitFor(t, settle, "the intruder and the unencrypted node to be refused a few times", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return failedJoins >= 6
	})
	// A node with the right key, started after the intruder, gets in: the cluster is not just slow.
	late := start(t, "late", []string{nodes[1].Addr()}, withKey(key))
	for _, nd := range append(nodes, late) {
		discoverytest.WaitFor(t, settle, nd.name+" to see the late node", func() bool {
			return nd.sees(late.name, discovery.StatusAlive)
		})
	}

	for _, nd := range append(nodes, late) {
		_, n := member(nd.Members(), intruder.name)
		is.Equal(n, 0)
		_, n = member(nd.Members(), plain.name)
		is.Equal(n, 0)
		_, heard := nd.rec.Last(intruder.name)
		is.True(!heard)
	}
	is.Equal(len(intruder.Members()), 1)
	is.Equal(len(plain.Members()), 1)
}

func TestTagChangesReachEveryMember(t *testing.T) {
	is := is.New(t)
	nodes := cluster(t, 5, func(c *discovery.Config) { c.Tags = map[string]string{"version": "1"} })
	changer := nodes[4]

	is.NoErr(changer.SetTags(map[string]string{"version": "2", "zone": "b"}))

	for _, nd := range nodes {
		discoverytest.WaitFor(t, settle, nd.name+" to see the new tags", func() bool {
			m, _ := member(nd.Members(), changer.name)
			return m.Tags["version"] == "2" && m.Tags["zone"] == "b" && m.RPCAddr == changer.rpc
		})
	}
	for _, nd := range nodes[:4] {
		// A tag change is reported as a join again, with the RPC address kept.
		discoverytest.WaitFor(t, settle, nd.name+"'s handler to hear the change", func() bool {
			joins := 0
			for _, e := range nd.rec.Events() {
				if e.ID == changer.name && e.Kind == discoverytest.Join && e.RPCAddr == changer.rpc {
					joins++
				}
			}
			return joins >= 2
		})
	}
}

func TestFailedMembersAreReapedAfterTheReconnectTimeout(t *testing.T) {
	nodes := cluster(t, 3, func(c *discovery.Config) {
		c.Timings.ReconnectTimeout = 300 * time.Millisecond
	})
	victim := nodes[2]
	if err := victim.Shutdown(); err != nil {
		t.Fatal(err)
	}

	for _, nd := range nodes[:2] {
		discoverytest.WaitFor(t, settle, nd.name+" to reap "+victim.name, func() bool {
			_, n := member(nd.Members(), victim.name)
			return n == 0
		})
		// Failure and reap each call Leave; the handler hears of the reap just after Members shows it.
		discoverytest.WaitFor(t, settle, nd.name+"'s handler to hear two leaves (failed, reaped)", func() bool {
			leaves := 0
			for _, e := range nd.rec.Events() {
				if e.ID == victim.name && e.Kind == discoverytest.Leave {
					leaves++
				}
			}
			return leaves == 2
		})
	}
}

// gate is a Handler whose calls block until it is opened, then record.
type gate struct {
	discoverytest.Recorder
	open  chan struct{}
	calls chan struct{} // gets a token when a call starts
}

func (g *gate) Join(id, rpcAddr string) error {
	g.calls <- struct{}{}
	<-g.open
	return g.Recorder.Join(id, rpcAddr)
}

func (g *gate) Leave(id string) error {
	g.calls <- struct{}{}
	<-g.open
	return g.Recorder.Leave(id)
}

func TestASlowHandlerLosesNoEventsAndKeepsTheirOrder(t *testing.T) {
	is := is.New(t)
	g := &gate{open: make(chan struct{}), calls: make(chan struct{}, 1000)}
	slow, err := discovery.New(discovery.Config{
		NodeName: "slow",
		BindAddr: "127.0.0.1:0",
		RPCAddr:  "127.0.0.1:1",
		Timings:  discoverytest.Timings(),
		Logger:   discoverytest.Logger(t),
	}, g)
	is.NoErr(err)
	t.Cleanup(func() { _ = slow.Shutdown() })
	var openOnce sync.Once
	openGate := func() { openOnce.Do(func() { close(g.open) }) }
	t.Cleanup(openGate) // runs first, so a failed test does not leave Shutdown waiting on the handler

	var others []*node
	for i := range 4 {
		others = append(others, start(t, fmt.Sprintf("o%d", i), []string{slow.Addr()}))
	}
	<-g.calls // the handler is now stuck in its first call
	discoverytest.WaitFor(t, settle, "the slow node to see all five alive", func() bool {
		return countStatus(slow.Members(), discovery.StatusAlive) == 5
	})
	is.NoErr(others[0].Close())
	is.NoErr(others[1].Close())

	// Serf keeps going while the handler is stuck: membership is current. A closed member is Left,
	// or Failed when its leave message lost the race with the failure detector (seen under load).
	discoverytest.WaitFor(t, settle, "the slow node to see two members gone and three alive", func() bool {
		ms := slow.Members()
		for _, o := range others[:2] {
			if m, n := member(ms, o.name); n != 1 || m.Status != discovery.StatusLeft && m.Status != discovery.StatusFailed {
				return false
			}
		}
		return countStatus(ms, discovery.StatusAlive) == 3
	})
	openGate()

	discoverytest.WaitFor(t, settle, "the handler to catch up", func() bool {
		for _, o := range others[:2] {
			e, ok := g.Last(o.name)
			if !ok || e.Kind != discoverytest.Leave {
				return false
			}
		}
		for _, o := range others[2:] {
			if e, ok := g.Last(o.name); !ok || e.Kind != discoverytest.Join {
				return false
			}
		}
		return true
	})
	for _, o := range others {
		var kinds []discoverytest.Kind
		for _, e := range g.Events() {
			// Leave may be reported again (a member that left is reaped later: see Handler), and
			// so may Join; what must hold is the order of the changes.
			if e.ID == o.name && (len(kinds) == 0 || kinds[len(kinds)-1] != e.Kind) {
				kinds = append(kinds, e.Kind)
			}
		}
		// The changes start with the join and end with the member's state. In between, a member
		// may flap: on a loaded machine the fast test timings (50 ms probes) can see a live member
		// fail and come back, which Handler reports as Leave then Join.
		final := discoverytest.Join
		if o == others[0] || o == others[1] {
			final = discoverytest.Leave
		}
		if len(kinds) == 0 || kinds[0] != discoverytest.Join || kinds[len(kinds)-1] != final {
			t.Fatalf("%s: the handler saw %v; want a join first and %s last, in the order Serf saw them", o.name, kinds, final)
		}
	}
}

func TestSetTagsRejectsTheReservedKeyAndOversizedTags(t *testing.T) {
	is := is.New(t)
	nd := start(t, "n", nil)

	err := nd.SetTags(map[string]string{discovery.RPCAddrTag: "10.0.0.1:1"})
	is.True(errors.Is(err, discovery.ErrInvalidTags))

	err = nd.SetTags(map[string]string{"big": strings.Repeat("x", 600)})
	is.True(errors.Is(err, discovery.ErrInvalidTags))

	m, _ := member(nd.Members(), "n")
	is.Equal(m.RPCAddr, nd.rpc) // a refused change leaves the tags as they were
}

func TestCallsAfterShutdownReturnErrClosed(t *testing.T) {
	is := is.New(t)
	nd := start(t, "n", nil)
	is.NoErr(nd.Shutdown())
	is.NoErr(nd.Shutdown()) // idempotent

	is.True(errors.Is(nd.SetTags(map[string]string{"a": "b"}), discovery.ErrClosed))
	is.True(errors.Is(nd.Leave(), discovery.ErrClosed))
	is.NoErr(nd.Close()) // closing a shut down node is not an error
}

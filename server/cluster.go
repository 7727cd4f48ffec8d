package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/discovery"
	"github.com/dislog/dislog/raftlog"
	"github.com/dislog/dislog/server/internal/fsm"
	"github.com/dislog/dislog/server/internal/hclogslog"
	"github.com/dislog/dislog/server/internal/mux"
	peerv1 "github.com/dislog/dislog/server/internal/peerapi/v1"
	"github.com/dislog/dislog/server/internal/raftnet"
	"github.com/dislog/dislog/server/internal/rpc"
	"github.com/dislog/dislog/storelog"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// controllerGroup names the cluster's Raft group on the Raft network (docs/ARCHITECTURE.md).
const controllerGroup = "controller"

// lastIndexTag is the Serf tag in which each server gossips its last Raft index, for GetServers.
const lastIndexTag = "last_index"

// cluster is a server's place in its cluster: its replica of the controller group (the Raft node
// and the metadata FSM it drives), Serf membership, the Raft network every group shares, the
// partition replicas it holds, and connections to peers for forwarded writes.
type cluster struct {
	opts     *options
	log      *slog.Logger
	id, addr string

	fsm       *fsm.FSM
	stable    *raftlog.StableStore // every group's, keys prefixed by group
	logs      *raftlog.LogStore    // the controller group's
	snapshots *raft.FileSnapshotStore
	network   *raftnet.Network   // every Raft group's traffic, one connection per peer
	transport *raftnet.Transport // the controller group's
	replicas  *replicas
	// startIndex is the controller log's last index when the server started.
	startIndex uint64
	raft       *raft.Raft
	members    *discovery.Membership
	peers      *peerConns
	// term is this server's current leadership as Raft last reported it (see reads.go).
	term atomic.Pointer[leaderTerm]

	stop    context.CancelFunc
	stopped context.Context
	loops   sync.WaitGroup
	// noMembership is set when the server starts shutting down: see stopMembership.
	noMembership atomic.Bool

	// failedSince is when the leader first saw each failed member; the reconcile loop removes it
	// after the grace period. Only the reconcile loop and the membership handler touch it.
	mu          sync.Mutex
	failedSince map[string]time.Time
}

func openCluster(o *options, log *slog.Logger, m *mux.Mux, addr string, peerTLS *tls.Config, source net.Addr) (_ *cluster, err error) {
	c := &cluster{
		opts: o, log: log, id: o.nodeID, addr: addr,
		peers:       &peerConns{tls: peerTLS, dialer: net.Dialer{LocalAddr: source}, conns: map[string]*grpc.ClientConn{}},
		failedSince: map[string]time.Time{},
	}
	c.stopped, c.stop = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			c.close(func(string) {})
		}
	}()
	c.fsm = fsm.New(fsm.Config{Logger: log})
	if c.stable, err = raftlog.OpenStableStore(filepath.Join(o.dataDir, "stable"), raftlog.Options{Logger: log}); err != nil {
		return nil, fmt.Errorf("server: stable store: %w", err)
	}
	raftDir := filepath.Join(o.dataDir, "controller")
	if c.logs, err = raftlog.OpenLogStore(filepath.Join(raftDir, "log"), raftlog.Options{
		MaxEntryBytes: uint32(o.maxMessageBytes + 1<<20),
		Logger:        log,
	}); err != nil {
		if errors.Is(err, storelog.ErrCorrupt) || errors.Is(err, raftlog.ErrCorrupt) {
			return nil, damagedRaftLog(raftDir, o, err)
		}
		return nil, fmt.Errorf("server: raft log: %w", err)
	}
	hlog := hclogslog.New(log, "raft")
	if c.snapshots, err = raft.NewFileSnapshotStoreWithLogger(raftDir, 2, hlog); err != nil {
		return nil, fmt.Errorf("server: raft snapshots: %w", err)
	}
	if err := checkRaftLog(c.logs, c.snapshots); err != nil {
		return nil, damagedRaftLog(raftDir, o, err)
	}
	if c.network, err = raftnet.New(m.Raft(), raftnet.Options{LocalAddr: raft.ServerAddress(addr), Logger: log}); err != nil {
		return nil, fmt.Errorf("server: raft network: %w", err)
	}
	if c.transport, err = c.network.Transport(controllerGroup); err != nil {
		return nil, fmt.Errorf("server: raft network: %w", err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(o.nodeID)
	conf.HeartbeatTimeout = o.raft.HeartbeatTimeout
	conf.ElectionTimeout = o.raft.ElectionTimeout
	conf.LeaderLeaseTimeout = o.raft.LeaderLeaseTimeout
	conf.CommitTimeout = o.raft.CommitTimeout
	conf.SnapshotThreshold = o.raft.SnapshotThreshold
	conf.SnapshotInterval = o.raft.SnapshotInterval
	conf.TrailingLogs = o.raft.TrailingLogs
	conf.MaxAppendEntries = 256
	conf.BatchApplyCh = true
	conf.Logger = hlog
	notify := make(chan bool, 1)
	conf.NotifyCh = notify
	if err := raft.ValidateConfig(conf); err != nil {
		return nil, fmt.Errorf("server: raft: %w", err)
	}
	stable := c.stable.Group(controllerGroup)
	hasState, err := raft.HasExistingState(c.logs, stable, c.snapshots)
	if err != nil {
		return nil, fmt.Errorf("server: raft: %w", err)
	}
	if c.raft, err = raft.NewRaft(conf, c.fsm, c.logs, stable, c.snapshots, c.transport); err != nil {
		return nil, fmt.Errorf("server: raft: %w", err)
	}
	c.startIndex = c.raft.LastIndex()
	c.goLoop(func() { c.watchLeadership(notify) })
	c.replicas = newReplicas(c)
	if o.bootstrap && !hasState {
		err := c.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: raft.ServerID(o.nodeID), Address: raft.ServerAddress(addr),
		}}}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return nil, fmt.Errorf("server: bootstrap: %w", err)
		}
	}
	if o.serfAddr != "" {
		if c.members, err = discovery.New(discovery.Config{
			NodeName: o.nodeID, BindAddr: o.serfAddr, RPCAddr: addr, SeedAddrs: o.join,
			// The last index from the start, not after the first gossip tick: a server with no
			// state tells a fresh cluster (every member at 0) from one it should wait to join.
			Tags:    map[string]string{lastIndexTag: strconv.FormatUint(c.raft.LastIndex(), 10)},
			Timings: serfTimings(o), Logger: log,
		}, membershipHandler{c}); err != nil {
			return nil, fmt.Errorf("server: membership: %w", err)
		}
		if o.bootstrapExpect > 0 && !hasState {
			c.goLoop(c.bootstrapExpected)
		}
		c.goLoop(c.reconcileLoop)
		c.goLoop(c.gossipLastIndex)
	}
	// The partition replicas' loops read the membership: they start once it is set.
	c.goLoop(c.replicas.run)
	c.goLoop(c.replicas.retentionLoop)
	c.goLoop(c.replicas.preferredLeaderLoop)
	c.goLoop(c.replicas.membershipLoop)
	c.goLoop(c.replicas.reassignLoop)
	return c, nil
}

// checkRaftLog reads every entry that raft.NewRaft reads on start (those after the newest snapshot),
// so that a damaged one stops the server with an error that says how to recover, instead of a panic
// inside raft. storelog's Open already refuses a log damaged below its last fsync; this catches damage
// to a log that was closed cleanly, which Open trusts without reading.
func checkRaftLog(logs raft.LogStore, snapshots raft.SnapshotStore) error {
	first, err := logs.FirstIndex()
	if err != nil {
		return err
	}
	last, err := logs.LastIndex()
	if err != nil {
		return err
	}
	metas, err := snapshots.List()
	if err != nil {
		return err
	}
	if len(metas) > 0 {
		first = max(first, metas[0].Index+1)
	}
	var entry raft.Log
	for i := max(first, 1); i <= last; i++ {
		if err := logs.GetLog(i, &entry); err != nil {
			return err
		}
	}
	return nil
}

// damagedRaftLog is the error a server that will not start on a damaged Raft log returns: what is
// damaged, and the one recovery that cannot make a replica that lost entries vote or lead.
func damagedRaftLog(raftDir string, o *options, err error) error {
	return fmt.Errorf("server: the Raft log in %s is damaged, so this server will not start on it: %w. "+
		"To recover (server/README.md, \"A damaged Raft log\"): keep this server stopped until the leader no longer lists %q "+
		"(dislogctl servers); then move the data directory %s aside and start this server on an empty data directory "+
		"with a new node ID, joining the cluster: it comes back as a new member and copies everything from its peers. "+
		"Never start it again as %q with its Raft state gone: it could vote twice in one term and help elect a leader "+
		"that lacks committed entries", raftDir, err, o.nodeID, o.dataDir, o.nodeID)
}

func (c *cluster) goLoop(f func()) {
	c.loops.Add(1)
	go func() {
		defer c.loops.Done()
		f()
	}()
}

// SerfAddr is the address Serf gossips on, or "" without Serf.
func (c *cluster) serfAddr() string {
	if c.members == nil {
		return ""
	}
	return c.members.Addr()
}

// bootstrapExpected waits for the expected number of servers to gossip, then bootstraps Raft with
// all of them. Every server does the same with the same set, which Raft allows.
//
// A server with no state that finds a member with Raft state (a last index above 0) is joining an
// existing cluster, as a replacement with an empty volume does: it never bootstraps, which would
// give it a configuration and a term of its own, and waits for the leader to add it.
func (c *cluster) bootstrapExpected() {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var servers []raft.Server
		for _, m := range c.members.Members() {
			if m.ID != c.id && m.Status == discovery.StatusAlive && m.Tags[lastIndexTag] != "0" && m.Tags[lastIndexTag] != "" {
				c.log.Info("joining an existing cluster, not bootstrapping", slog.String("member", m.ID), slog.String("last_index", m.Tags[lastIndexTag]))
				return
			}
			if m.Status == discovery.StatusAlive && m.RPCAddr != "" {
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RPCAddr)})
			}
		}
		if len(servers) >= c.opts.bootstrapExpect {
			err := c.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
			if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
				c.log.Error("bootstrap", slog.Any("error", err))
			} else {
				c.log.Info("bootstrapped the cluster", slog.Int("servers", len(servers)))
			}
			return
		}
		select {
		case <-c.stopped.Done():
			return
		case <-tick.C:
		}
		if _, id := c.raft.LeaderWithID(); id != "" {
			return // another server bootstrapped and this one was added
		}
	}
}

// reconcileLoop makes the leader's Raft configuration follow Serf membership, repairing any event
// the handler missed, and removes failed servers after the grace period.
func (c *cluster) reconcileLoop() {
	tick := time.NewTicker(c.opts.reconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stopped.Done():
			return
		case <-tick.C:
		}
		if !c.membershipStopped() && c.raft.State() == raft.Leader {
			c.reconcile()
		}
	}
}

func (c *cluster) reconcile() {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	inConfig := map[raft.ServerID]raft.ServerAddress{}
	for _, s := range f.Configuration().Servers {
		inConfig[s.ID] = s.Address
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members.Members() {
		id := raft.ServerID(m.ID)
		if m.ID == c.id {
			continue
		}
		addr, known := inConfig[id]
		switch m.Status {
		case discovery.StatusAlive:
			delete(c.failedSince, m.ID)
			if m.RPCAddr != "" && (!known || addr != raft.ServerAddress(m.RPCAddr)) {
				c.addVoter(m.ID, m.RPCAddr)
			}
		case discovery.StatusLeft:
			if known {
				c.removeServer(m.ID, "left")
			}
		case discovery.StatusFailed:
			since, ok := c.failedSince[m.ID]
			if !ok {
				c.failedSince[m.ID] = now
			} else if known && now.Sub(since) >= c.opts.failedRemoveAfter {
				c.removeServer(m.ID, "failed")
				delete(c.failedSince, m.ID)
			}
		}
	}
}

func (c *cluster) addVoter(id, addr string) {
	if err := c.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 10*time.Second).Error(); err != nil {
		c.log.Warn("adding a server to the cluster", slog.String("id", id), slog.String("addr", addr), slog.Any("error", err))
		return
	}
	c.log.Info("server joined the cluster", slog.String("id", id), slog.String("addr", addr))
}

func (c *cluster) removeServer(id, why string) {
	if err := c.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		c.log.Warn("removing a server from the cluster", slog.String("id", id), slog.Any("error", err))
		return
	}
	c.log.Info("server removed from the cluster", slog.String("id", id), slog.String("why", why))
}

// membershipHandler turns Serf events into Raft configuration changes on the leader.
type membershipHandler struct{ c *cluster }

func (h membershipHandler) Join(id, rpcAddr string) error {
	if h.c.membershipStopped() || h.c.raft.State() != raft.Leader {
		return nil
	}
	f := h.c.raft.GetConfiguration()
	if f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.ID == raft.ServerID(id) && s.Address == raft.ServerAddress(rpcAddr) {
				return nil
			}
		}
	}
	h.c.addVoter(id, rpcAddr)
	return nil
}

func (h membershipHandler) Leave(id string) error {
	if h.c.membershipStopped() || h.c.raft.State() != raft.Leader {
		return nil
	}
	for _, m := range h.c.members.Members() {
		if m.ID == id && (m.Status == discovery.StatusLeft || m.Status == discovery.StatusLeaving) {
			h.c.removeServer(id, "left")
		}
	}
	// A failed server is removed by the reconcile loop once the grace period is over.
	return nil
}

// gossipLastIndex puts this server's last Raft index in its Serf tags every second.
func (c *cluster) gossipLastIndex() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	sent := uint64(0)
	for {
		select {
		case <-c.stopped.Done():
			return
		case <-tick.C:
		}
		if last := c.raft.LastIndex(); last != sent {
			if err := c.members.SetTags(map[string]string{lastIndexTag: strconv.FormatUint(last, 10)}); err == nil {
				sent = last
			}
		}
	}
}

// leader returns the leader's ID and address, or "" if no leader is known.
func (c *cluster) leader() (string, string) {
	addr, id := c.raft.LeaderWithID()
	return string(id), string(addr)
}

// Submit starts applying a command through Raft: on the leader it is appended at once and the
// returned wait gives the FSM's result; on a follower it is forwarded to the leader. Commands from
// one caller are applied in the order they were submitted.
func (c *cluster) Submit(ctx context.Context, cmd []byte) func() (*fsm.Result, error) {
	if c.raft.State() == raft.Leader {
		f := c.raft.Apply(cmd, applyTimeout(ctx))
		return func() (*fsm.Result, error) { return result(f) }
	}
	r, err := c.forward(ctx, cmd)
	return func() (*fsm.Result, error) { return r, err }
}

func applyTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 10 * time.Second
}

func result(f raft.ApplyFuture) (*fsm.Result, error) {
	if err := f.Error(); err != nil {
		return nil, raftError(err)
	}
	return f.Response().(*fsm.Result), nil
}

// raftError explains a Raft error to a client.
func raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return status.Error(codes.Unavailable, "the server lost its leadership before the write was made; retry")
	case errors.Is(err, raft.ErrLeadershipLost):
		return status.Error(codes.Unavailable, "the leader changed while the write was replicated: it may or may not have been written; retry with an idempotent producer to be sure of writing it once")
	case errors.Is(err, raft.ErrRaftShutdown):
		return status.Error(codes.Unavailable, "the server is shutting down; retry on another server")
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return status.Error(codes.DeadlineExceeded, "the write was not replicated before the deadline")
	}
	return status.Errorf(codes.Internal, "raft: %v", err)
}

// forward sends a command to the leader, waiting for one to be known (up to ctx's deadline, or
// 10 s) and retrying a leader that says it no longer leads, which means it did not append it.
func (c *cluster) forward(ctx context.Context, cmd []byte) (*fsm.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, applyTimeout(ctx))
	defer cancel()
	retry := time.NewTicker(20 * time.Millisecond)
	defer retry.Stop()
	for {
		_, addr := c.leader()
		switch {
		case addr == c.addr:
			return result(c.raft.Apply(cmd, applyTimeout(ctx)))
		case addr != "":
			client, err := c.peers.client(addr)
			if err != nil {
				return nil, status.Errorf(codes.Internal, "dial the leader: %v", err)
			}
			_, err = client.Apply(ctx, &peerv1.ApplyRequest{Command: cmd})
			if err == nil {
				return &fsm.Result{}, nil
			}
			if !dislogv1.IsNotLeader(err) {
				return nil, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, status.Error(codes.Unavailable, "no leader: the cluster has no leader it agrees on; retry later")
		case <-c.stopped.Done():
			return nil, status.Error(codes.Unavailable, "the server is shutting down; retry on another server")
		case <-retry.C:
		}
	}
}

// Offset returns a consumer group's committed offset on a partition.
func (c *cluster) Offset(group, topic string, partition uint32) (uint64, bool) {
	return c.fsm.Offset(group, topic, partition)
}

// Servers lists every server of the Raft configuration.
func (c *cluster) Servers(context.Context) (*dislogv1.GetServersResponse, error) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, raftError(err)
	}
	// The term before the leader: an answer never claims an older term than its leader's.
	term := c.raft.CurrentTerm()
	_, leaderID := c.raft.LeaderWithID()
	tags := map[string]string{}
	if c.members != nil {
		for _, m := range c.members.Members() {
			tags[m.ID] = m.Tags[lastIndexTag]
		}
	}
	var servers []*dislogv1.Server
	for _, s := range f.Configuration().Servers {
		srv := &dislogv1.Server{
			Id: string(s.ID), RpcAddr: string(s.Address),
			IsLeader: s.ID == leaderID, IsVoter: s.Suffrage == raft.Voter,
		}
		if string(s.ID) == c.id {
			srv.LastIndex = c.raft.LastIndex()
		} else if v, err := strconv.ParseUint(tags[string(s.ID)], 10, 64); err == nil {
			srv.LastIndex = v
		}
		servers = append(servers, srv)
	}
	slices.SortFunc(servers, func(a, b *dislogv1.Server) int {
		switch {
		case a.Id < b.Id:
			return -1
		case a.Id > b.Id:
			return 1
		}
		return 0
	})
	return &dislogv1.GetServersResponse{Servers: servers, Term: term}, nil
}

// serfTimings are the Serf timings given, with a leave that fits the shutdown: Serf waits up to
// its broadcast timeout (5 s by default) for a leave message to go out, and to peers that are
// stopping too it never does; Serf's shutdown then waits for that leave. A fifth of the shutdown
// timeout (2 s by default) is plenty for a message on a LAN.
func serfTimings(o *options) discovery.Timings {
	t := o.serfTimings
	if t.BroadcastTimeout == 0 {
		t.BroadcastTimeout = min(5*time.Second, o.shutdownTimeout/5)
	}
	return t
}

// stopMembership stops the changes of the Raft configuration that follow Serf: a server shutting
// down, which may become leader as the others stop too, does not wait on removals that no quorum
// is left to commit.
func (c *cluster) stopMembership() { c.noMembership.Store(true) }

func (c *cluster) membershipStopped() bool { return c.noMembership.Load() }

// leave hands the leadership of every partition and of the controller to other replicas where this
// server leads, then leaves Serf gracefully, so that the new leader removes this server from the
// configuration.
func (c *cluster) leave() {
	if c.replicas != nil {
		c.replicas.leaveAll()
	}
	if c.raft.State() == raft.Leader && c.voters() > 1 {
		if err := c.raft.LeadershipTransfer().Error(); err != nil {
			c.log.Warn("leadership transfer", slog.Any("error", err))
		} else {
			c.log.Info("handed leadership to another server")
		}
	}
	if c.members != nil {
		if err := c.members.Leave(); err != nil {
			c.log.Warn("leaving the cluster", slog.Any("error", err))
		}
	}
}

func (c *cluster) voters() int {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	n := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// close stops Raft and membership and closes the stores. It is safe on a partly opened cluster.
// It tells step the name of each step as it starts, for a shutdown that overruns its timeout to
// say where.
func (c *cluster) close(step func(string)) error {
	c.stop()
	var errs []error
	// The network closes first: raft.Shutdown waits for the replication goroutines, and one in
	// an RPC to a peer whose Raft has stopped but whose network has not would wait out the RPC
	// timeout, while that peer's shutdown waits the same way for this one (every server stopping
	// at once: all three overran the shutdown timeout so in a dislog-bench run). A closed network
	// fails the calls in flight and drops the connections, which ends the peers' calls too.
	step("Raft network")
	if c.transport != nil {
		errs = append(errs, c.transport.Close())
	}
	if c.network != nil {
		errs = append(errs, c.network.Close())
	}
	step("partition replicas")
	if c.replicas != nil {
		errs = append(errs, c.replicas.close())
	}
	step("Raft shutdown")
	if c.raft != nil {
		errs = append(errs, c.raft.Shutdown().Error())
	}
	// Serf after Raft: its Shutdown waits for a Leave still broadcasting (the shutdown stops
	// waiting for the leave after its share of the timeout). The loops only call Raft and Serf,
	// which answer at once once shut down.
	step("Serf shutdown")
	if c.members != nil {
		errs = append(errs, c.members.Shutdown())
	}
	step("background loops")
	c.loops.Wait()
	step("Raft store")
	if c.logs != nil {
		errs = append(errs, c.logs.Close())
	}
	if c.stable != nil {
		errs = append(errs, c.stable.Close())
	}
	c.peers.close()
	return errors.Join(errs...)
}

// peerConns holds one gRPC connection per peer address, dialed with the server's certificate.
type peerConns struct {
	tls    *tls.Config
	dialer net.Dialer // from the server's peer source address, if it has one
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
}

func (p *peerConns) client(addr string) (peerv1.PeerClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.conns[addr]; ok {
		return peerv1.NewPeerClient(cc), nil
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(p.tls)),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return p.dialer.DialContext(ctx, "tcp", addr)
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		grpc.WithInitialWindowSize(streamWindowBytes), grpc.WithInitialConnWindowSize(connWindowBytes),
		grpc.WithWriteBufferSize(ioBufferBytes), grpc.WithReadBufferSize(ioBufferBytes))
	if err != nil {
		return nil, err
	}
	p.conns[addr] = cc
	return peerv1.NewPeerClient(cc), nil
}

func (p *peerConns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, cc := range p.conns {
		cc.Close()
		delete(p.conns, addr)
	}
}

// peerService is the dislog.peer.v1 service other servers call.
type peerService struct {
	peerv1.UnimplementedPeerServer
	c   *cluster
	svc *rpc.Service // for the reads relayed from servers that hold no replica
}

func (s *peerService) Apply(ctx context.Context, req *peerv1.ApplyRequest) (*peerv1.ApplyResponse, error) {
	if s.c.raft.State() != raft.Leader {
		return nil, dislogv1.NotLeaderError("not the leader")
	}
	r, err := result(s.c.raft.Apply(req.GetCommand(), applyTimeout(ctx)))
	if err != nil {
		return nil, err
	}
	if r.Err != nil {
		return nil, rpc.ResultError(r.Err)
	}
	return &peerv1.ApplyResponse{}, nil
}

package server

import (
	"log/slog"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/discovery"
)

// Option configures a Server.
type Option func(*options)

type options struct {
	dataDir              string
	listenAddr           string
	advertiseAddr        string
	peerSourceIP         string
	adminAddr            string
	nodeID               string
	tls                  authz.TLSOptions
	policyFile           string
	policyReloadInterval time.Duration
	maxRecordBytes       int
	maxMessageBytes      int
	segmentBytes         int
	retentionInterval    time.Duration
	shutdownTimeout      time.Duration
	logger               *slog.Logger

	raft              RaftConfig
	bootstrap         bool
	bootstrapExpect   int
	join              []string
	serfAddr          string
	serfTimings       discovery.Timings
	failedRemoveAfter time.Duration
	reconcileInterval time.Duration
}

// RaftConfig tunes Raft. Zero fields take the defaults of DefaultRaftConfig.
type RaftConfig struct {
	// HeartbeatTimeout and ElectionTimeout bound how long a follower waits without hearing from a
	// leader before it stands for election; LeaderLeaseTimeout how long a leader keeps leading
	// without hearing from a majority. Together they set the failover gap after a leader dies.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is how long a leader with nothing to send waits before it tells followers the
	// commit index, which is when their FSMs apply (and their consumers see) the last writes.
	CommitTimeout time.Duration
	// SnapshotInterval is how often Raft checks whether to snapshot; SnapshotThreshold how many
	// entries since the last snapshot make it take one; TrailingLogs how many entries it keeps
	// behind a snapshot, so that a slightly late follower catches up from the log.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
}

// DefaultRaftConfig is tuned for a LAN: a dead leader is replaced in about a second.
func DefaultRaftConfig() RaftConfig {
	return RaftConfig{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
		SnapshotInterval:   30 * time.Second,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
	}
}

func (c RaftConfig) withDefaults() RaftConfig {
	d := DefaultRaftConfig()
	for _, f := range []struct{ v, d *time.Duration }{
		{&c.HeartbeatTimeout, &d.HeartbeatTimeout}, {&c.ElectionTimeout, &d.ElectionTimeout},
		{&c.LeaderLeaseTimeout, &d.LeaderLeaseTimeout}, {&c.CommitTimeout, &d.CommitTimeout},
		{&c.SnapshotInterval, &d.SnapshotInterval},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	return c
}

// Defaults of the options.
const (
	DefaultListenAddr      = "127.0.0.1:7070"
	DefaultAdminAddr       = "127.0.0.1:7071"
	DefaultMaxRecordBytes  = 1 << 20
	DefaultMaxMessageBytes = 16 << 20
	DefaultSegmentBytes    = 64 << 20
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultFailedRemoveAfter is how long a failed server stays in the Raft configuration.
	DefaultFailedRemoveAfter = time.Minute
	// DefaultReconcileInterval is how often the leader reconciles Serf members and Raft.
	DefaultReconcileInterval = 5 * time.Second
)

func defaultOptions() options {
	return options{
		listenAddr:        DefaultListenAddr,
		adminAddr:         DefaultAdminAddr,
		maxRecordBytes:    DefaultMaxRecordBytes,
		maxMessageBytes:   DefaultMaxMessageBytes,
		segmentBytes:      DefaultSegmentBytes,
		retentionInterval: time.Minute,
		shutdownTimeout:   DefaultShutdownTimeout,
		failedRemoveAfter: DefaultFailedRemoveAfter,
		reconcileInterval: DefaultReconcileInterval,
	}
}

// WithDataDir is where the server keeps its topics (<dir>/topics), its Raft log and snapshots
// (<dir>/raft) and its metadata (<dir>/fsm.json: topics, consumer offsets, producers). Required.
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithListenAddr is the address the gRPC API listens on. Default DefaultListenAddr; port 0 picks a
// free port (see Server.Addr).
func WithListenAddr(addr string) Option { return func(o *options) { o.listenAddr = addr } }

// WithAdvertiseAddr is the address GetServers tells clients to dial. Default the listening address.
func WithAdvertiseAddr(addr string) Option { return func(o *options) { o.advertiseAddr = addr } }

// WithPeerSourceIP is the local IP address the server's connections to other servers (Raft and
// forwarded calls) come from. Default: the operating system's choice. A server bound to one of
// several addresses of a host sets it so that peers, and firewalls or proxies between them, see
// that address.
func WithPeerSourceIP(ip string) Option { return func(o *options) { o.peerSourceIP = ip } }

// WithAdminAddr is the address of the HTTP admin server (/metrics, /debug/pprof/, /healthz).
// Default DefaultAdminAddr; the empty string turns it off. It is plain HTTP: keep it on loopback or
// a private network.
func WithAdminAddr(addr string) Option { return func(o *options) { o.adminAddr = addr } }

// WithNodeID names the server in GetServers. Default the host name.
func WithNodeID(id string) Option { return func(o *options) { o.nodeID = id } }

// WithTLS names the server's certificate, key and the CA bundle that client certificates must chain
// to (see authz.ServerTLSConfig). Required.
func WithTLS(files authz.TLSOptions) Option { return func(o *options) { o.tls = files } }

// WithPolicyFile is the ACL policy (see the authz package). Required: a server without one would
// deny everything. The file is watched and reloaded when it changes.
func WithPolicyFile(path string) Option { return func(o *options) { o.policyFile = path } }

// WithPolicyReloadInterval is how often the policy file is checked for changes. Default 1s.
func WithPolicyReloadInterval(d time.Duration) Option {
	return func(o *options) { o.policyReloadInterval = d }
}

// WithMaxRecordBytes is the largest record accepted: its key, header keys and values, and value,
// without the few bytes of framing the server adds. A value of exactly this size fits. Default
// 1 MiB.
func WithMaxRecordBytes(n int) Option { return func(o *options) { o.maxRecordBytes = n } }

// WithMaxMessageBytes is the largest gRPC message the server receives or sends: it bounds a produce
// batch. Default 16 MiB; it must exceed the largest record.
func WithMaxMessageBytes(n int) Option { return func(o *options) { o.maxMessageBytes = n } }

// WithSegmentBytes is the size at which a topic's log starts a new segment file. Retention deletes
// whole segments. Default 64 MiB.
func WithSegmentBytes(n int) Option { return func(o *options) { o.segmentBytes = n } }

// WithRetentionInterval is how often retention runs on each topic. Default 1 minute.
func WithRetentionInterval(d time.Duration) Option {
	return func(o *options) { o.retentionInterval = d }
}

// WithShutdownTimeout bounds how long a shutdown waits for calls in flight before it cuts them.
// Default 10s.
func WithShutdownTimeout(d time.Duration) Option { return func(o *options) { o.shutdownTimeout = d } }

// WithLogger receives the server's structured logs. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRaft tunes Raft; zero fields keep DefaultRaftConfig's values.
func WithRaft(c RaftConfig) Option { return func(o *options) { o.raft = c } }

// WithBootstrap makes a server with no Raft state start a cluster of its own, of which it is the
// only voter; others join it through Serf. A server given neither WithJoin nor WithBootstrapExpect
// bootstraps anyway: a single node is a cluster of one.
func WithBootstrap(b bool) Option { return func(o *options) { o.bootstrap = b } }

// WithBootstrapExpect makes servers with no Raft state wait until n of them gossip in Serf, then
// start the cluster with all of them as voters. Give every server of a new cluster the same n.
func WithBootstrapExpect(n int) Option { return func(o *options) { o.bootstrapExpect = n } }

// WithJoin names the Serf addresses of servers already in the cluster (or starting with this one).
func WithJoin(seeds ...string) Option { return func(o *options) { o.join = seeds } }

// WithSerfAddr is the address Serf gossips on (UDP and TCP). Without it the server runs alone.
func WithSerfAddr(addr string) Option { return func(o *options) { o.serfAddr = addr } }

// WithSerfTimings tunes failure detection (see discovery.Timings); tests make it fast.
func WithSerfTimings(t discovery.Timings) Option { return func(o *options) { o.serfTimings = t } }

// WithFailedRemoveAfter is how long the leader keeps a failed server in the Raft configuration
// before removing it. Default DefaultFailedRemoveAfter: a server that restarts sooner stays a voter.
func WithFailedRemoveAfter(d time.Duration) Option {
	return func(o *options) { o.failedRemoveAfter = d }
}

// WithReconcileInterval is how often the leader reconciles Serf members against the Raft
// configuration, which repairs any membership event it missed. Default DefaultReconcileInterval.
func WithReconcileInterval(d time.Duration) Option {
	return func(o *options) { o.reconcileInterval = d }
}

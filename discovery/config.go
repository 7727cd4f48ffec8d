package discovery

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/dislog/dislog/discovery/internal/serflog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Config describes one node. NodeName, BindAddr and RPCAddr are required; every other field has a
// default, given on the field.
type Config struct {
	// NodeName is the node's ID in the cluster (for Dislog, its Raft server ID). It must be unique: a node
	// that starts with the name of a dead one takes its place (see Timings.DeadNodeReclaimTime).
	NodeName string

	// BindAddr is the "ip:port" Serf gossips on, over both UDP and TCP. Port 0 lets the kernel choose a
	// port, which Membership.Addr then reports.
	BindAddr string

	// AdvertiseAddr is the "ip:port" other nodes reach this one on, when it differs from BindAddr (behind
	// NAT, or when binding 0.0.0.0). Default: BindAddr, except that a node bound to 0.0.0.0 with no
	// AdvertiseAddr advertises its host's private IPv4 address (memberlist's choice), as a container or a
	// pod should. With a BindAddr port of 0 the advertised port is the chosen one whatever this says.
	AdvertiseAddr string

	// RPCAddr is the "host:port" of the node's RPC server. It travels in the node's tags and is what
	// Handler.Join receives.
	RPCAddr string

	// Tags are extra key/value pairs gossiped with the node, such as a rack or a version. The key
	// RPCAddrTag is reserved. All tags, RPCAddr included, must encode in 512 bytes.
	Tags map[string]string

	// SeedAddrs are "host:port" gossip addresses of nodes that may already be in the cluster. The node
	// joins through any one of them, retrying with backoff until one other than itself answers, so nodes
	// can start in any order and every node can be given the same list. Host names are resolved at each
	// attempt (a compose service or a Kubernetes headless service name works). Empty: the node starts a
	// cluster of its own and waits to be joined.
	SeedAddrs []string

	// EncryptKey, when set, encrypts and authenticates all gossip with AES (16, 24 or 32 bytes: AES-128,
	// -192 or -256). Every node must hold the same key; a node with another key, or none, never joins.
	EncryptKey []byte

	// Timings are the failure detection and cleanup timings. Zero fields take DefaultTimings' values.
	Timings Timings

	// Logger receives this package's logs and Serf's and memberlist's, whose INFO lines are logged at
	// Debug. Default: slog.Default().
	Logger *slog.Logger
}

// Timings tune how fast the cluster learns about changes, at the cost of gossip traffic and of false
// failure reports on a slow network. The defaults are memberlist's and Serf's LAN defaults. Tests on
// loopback use intervals tens of times shorter (see discoverytest.Timings).
type Timings struct {
	// GossipInterval is how often a node gossips queued messages (joins, leaves, suspicions) to a few
	// random peers. Shorter spreads news faster. Default 200ms.
	GossipInterval time.Duration

	// ProbeInterval is how often a node probes one random peer to check it is alive. Default 1s.
	ProbeInterval time.Duration

	// ProbeTimeout is how long a probe waits for an answer before asking other nodes to probe
	// indirectly. It should exceed the network's round trip time at the 99th percentile. Default 500ms.
	ProbeTimeout time.Duration

	// SuspicionMult sets how long a peer that missed a probe stays suspect before it is declared failed:
	// SuspicionMult * max(1, log10(cluster size)) * ProbeInterval, stretched by up to 6x while no other
	// node confirms the suspicion. Must be at least 1. Default 4.
	SuspicionMult int

	// PushPullInterval is how often a node swaps its full state with a random peer; it heals what
	// gossip missed, and is how a restarted node with a new address hears that its old one is dead.
	// Default 30s.
	PushPullInterval time.Duration

	// TCPTimeout bounds the TCP connection for a join or a state swap. Default 10s.
	TCPTimeout time.Duration

	// DeadNodeReclaimTime is how long after a node is declared failed (or at once, once it has left) a
	// new node may claim its name from a different address. Until then such a node is a name conflict
	// and is ignored. Default 10s.
	DeadNodeReclaimTime time.Duration

	// ReconnectInterval is how often Serf tries to reconnect to one failed node, to heal a partition.
	// Default 30s.
	ReconnectInterval time.Duration

	// ReconnectTimeout is how long a failed node is kept, and retried, before it is reaped: removed from
	// Members, with a last Handler.Leave. Default 24h.
	ReconnectTimeout time.Duration

	// TombstoneTimeout is how long a node that left gracefully is kept in Members, as left, before it is
	// reaped. Default 24h.
	TombstoneTimeout time.Duration

	// ReapInterval is how often failed and left nodes are checked against the two timeouts above.
	// Default 15s.
	ReapInterval time.Duration

	// BroadcastTimeout bounds how long Leave and SetTags wait for their message to be sent. Default 5s.
	BroadcastTimeout time.Duration

	// LeavePropagateDelay is how long Leave keeps the node answering probes after its leave message is
	// out, so peers learn it left rather than failed. Default 1s.
	LeavePropagateDelay time.Duration

	// JoinBackoffMin and JoinBackoffMax bound the wait between join attempts: it starts at the minimum
	// and doubles, with jitter, up to the maximum. Defaults 100ms and 10s.
	JoinBackoffMin time.Duration
	JoinBackoffMax time.Duration
}

// DefaultTimings returns the timings a zero Timings field falls back to.
func DefaultTimings() Timings {
	ml := memberlist.DefaultLANConfig()
	sf := serf.DefaultConfig()
	return Timings{
		GossipInterval:      ml.GossipInterval,
		ProbeInterval:       ml.ProbeInterval,
		ProbeTimeout:        ml.ProbeTimeout,
		SuspicionMult:       ml.SuspicionMult,
		PushPullInterval:    ml.PushPullInterval,
		TCPTimeout:          ml.TCPTimeout,
		DeadNodeReclaimTime: 10 * time.Second,
		ReconnectInterval:   sf.ReconnectInterval,
		ReconnectTimeout:    sf.ReconnectTimeout,
		TombstoneTimeout:    sf.TombstoneTimeout,
		ReapInterval:        sf.ReapInterval,
		BroadcastTimeout:    sf.BroadcastTimeout,
		LeavePropagateDelay: sf.LeavePropagateDelay,
		JoinBackoffMin:      100 * time.Millisecond,
		JoinBackoffMax:      10 * time.Second,
	}
}

// withDefaults returns t with every zero field set from DefaultTimings.
func (t Timings) withDefaults() Timings {
	d := DefaultTimings()
	fill := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&t.GossipInterval, d.GossipInterval)
	fill(&t.ProbeInterval, d.ProbeInterval)
	fill(&t.ProbeTimeout, d.ProbeTimeout)
	fill(&t.PushPullInterval, d.PushPullInterval)
	fill(&t.TCPTimeout, d.TCPTimeout)
	fill(&t.DeadNodeReclaimTime, d.DeadNodeReclaimTime)
	fill(&t.ReconnectInterval, d.ReconnectInterval)
	fill(&t.ReconnectTimeout, d.ReconnectTimeout)
	fill(&t.TombstoneTimeout, d.TombstoneTimeout)
	fill(&t.ReapInterval, d.ReapInterval)
	fill(&t.BroadcastTimeout, d.BroadcastTimeout)
	fill(&t.LeavePropagateDelay, d.LeavePropagateDelay)
	fill(&t.JoinBackoffMin, d.JoinBackoffMin)
	fill(&t.JoinBackoffMax, d.JoinBackoffMax)
	if t.SuspicionMult == 0 {
		t.SuspicionMult = d.SuspicionMult
	}
	return t
}

func (t Timings) validate() error {
	durations := []struct {
		name string
		v    time.Duration
	}{
		{"GossipInterval", t.GossipInterval},
		{"ProbeInterval", t.ProbeInterval},
		{"ProbeTimeout", t.ProbeTimeout},
		{"PushPullInterval", t.PushPullInterval},
		{"TCPTimeout", t.TCPTimeout},
		{"DeadNodeReclaimTime", t.DeadNodeReclaimTime},
		{"ReconnectInterval", t.ReconnectInterval},
		{"ReconnectTimeout", t.ReconnectTimeout},
		{"TombstoneTimeout", t.TombstoneTimeout},
		{"ReapInterval", t.ReapInterval},
		{"BroadcastTimeout", t.BroadcastTimeout},
		{"LeavePropagateDelay", t.LeavePropagateDelay},
		{"JoinBackoffMin", t.JoinBackoffMin},
		{"JoinBackoffMax", t.JoinBackoffMax},
	}
	for _, d := range durations {
		if d.v <= 0 {
			return fmt.Errorf("%w: Timings.%s is %v, must be positive", ErrInvalidConfig, d.name, d.v)
		}
	}
	if t.SuspicionMult < 1 {
		return fmt.Errorf("%w: Timings.SuspicionMult is %d, must be at least 1", ErrInvalidConfig, t.SuspicionMult)
	}
	if t.JoinBackoffMax < t.JoinBackoffMin {
		return fmt.Errorf("%w: Timings.JoinBackoffMax %v is below JoinBackoffMin %v", ErrInvalidConfig, t.JoinBackoffMax, t.JoinBackoffMin)
	}
	return nil
}

// withDefaults returns a copy of c with defaults filled in, so New never writes to its caller's Config.
func (c Config) withDefaults() Config {
	c.Timings = c.Timings.withDefaults()
	if c.AdvertiseAddr == "" {
		c.AdvertiseAddr = c.BindAddr
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate checks a Config that has its defaults filled in.
func (c Config) validate() error {
	if c.NodeName == "" {
		return fmt.Errorf("%w: NodeName is empty", ErrInvalidConfig)
	}
	if _, err := parseIPPort(c.BindAddr); err != nil {
		return fmt.Errorf("%w: BindAddr: %v", ErrInvalidConfig, err)
	}
	if _, err := parseIPPort(c.AdvertiseAddr); err != nil {
		return fmt.Errorf("%w: AdvertiseAddr: %v", ErrInvalidConfig, err)
	}
	if err := validateRPCAddr(c.RPCAddr); err != nil {
		return fmt.Errorf("%w: RPCAddr: %v", ErrInvalidConfig, err)
	}
	for _, s := range c.SeedAddrs {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("%w: SeedAddrs: %v", ErrInvalidConfig, err)
		}
	}
	switch len(c.EncryptKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("%w: EncryptKey is %d bytes, must be 16, 24 or 32", ErrInvalidConfig, len(c.EncryptKey))
	}
	if _, err := encodeTags(c.Tags, c.RPCAddr); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return c.Timings.validate()
}

func parseIPPort(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, fmt.Errorf("%q is not ip:port", s)
	}
	return ap, nil
}

// serfConfig translates c, validated and with defaults, into Serf's and memberlist's configs.
func (c Config) serfConfig(tags map[string]string, events chan<- serf.Event) *serf.Config {
	bind, _ := parseIPPort(c.BindAddr)
	adv, _ := parseIPPort(c.AdvertiseAddr)
	t := c.Timings
	logger := serflog.New(c.Logger)

	ml := memberlist.DefaultLANConfig()
	ml.BindAddr = bind.Addr().String()
	ml.BindPort = int(bind.Port())
	ml.AdvertiseAddr = adv.Addr().String()
	ml.AdvertisePort = int(adv.Port())
	if adv.Addr().IsUnspecified() {
		// Bound to every interface with nothing else to advertise (a container, a pod): memberlist
		// then advertises the host's private IP address, where 0.0.0.0 would be unreachable.
		ml.AdvertiseAddr = ""
	}
	ml.GossipInterval = t.GossipInterval
	ml.ProbeInterval = t.ProbeInterval
	ml.ProbeTimeout = t.ProbeTimeout
	ml.SuspicionMult = t.SuspicionMult
	ml.PushPullInterval = t.PushPullInterval
	ml.TCPTimeout = t.TCPTimeout
	ml.DeadNodeReclaimTime = t.DeadNodeReclaimTime
	ml.SecretKey = c.EncryptKey
	ml.Logger = logger

	sc := serf.DefaultConfig()
	sc.NodeName = c.NodeName
	sc.Tags = tags
	sc.EventCh = events
	sc.MemberlistConfig = ml
	sc.Logger = logger
	sc.LogOutput = nil
	sc.ReapInterval = t.ReapInterval
	sc.ReconnectInterval = t.ReconnectInterval
	sc.ReconnectTimeout = t.ReconnectTimeout
	sc.TombstoneTimeout = t.TombstoneTimeout
	sc.BroadcastTimeout = t.BroadcastTimeout
	sc.LeavePropagateDelay = t.LeavePropagateDelay
	// Serf's conflict resolution asks the cluster which address owns a name and shuts down the loser.
	// A node restarted on a new address before its old self is declared dead would lose that vote and
	// stop for good. Names are unique by configuration here, so a conflict is always a restart: keep
	// the new node running; it takes the name over once the old address is dead (DeadNodeReclaimTime).
	sc.EnableNameConflictResolution = false
	return sc
}

package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/dislog/dislog/discovery/internal/fifo"
	"github.com/hashicorp/serf/serf"
)

// Handler is told about the other members of the cluster. Calls come from one goroutine, one at a
// time, in the order Serf reported the changes; a slow handler delays later calls but loses none. The
// local node is never reported.
//
// A returned error is logged and the call is not retried: a caller that must not miss a change also
// reconciles against Members on a timer. A handler must not call Shutdown or Close, which wait for the
// running call to return.
type Handler interface {
	// Join reports that member id is alive and serves RPC at rpcAddr. It is called when the member
	// joins, when it comes back after a failure (possibly at new addresses), and when its tags change,
	// so the same id and address can be reported again: Join must be idempotent. A member whose
	// RPCAddrTag is missing or malformed is logged and not reported.
	Join(id, rpcAddr string) error

	// Leave reports that member id left gracefully, failed, or was reaped after either. It too can be
	// called more than once for the same id.
	Leave(id string) error
}

// Membership is this node's place in a Serf cluster. Its methods are safe for concurrent use.
type Membership struct {
	serf    *serf.Serf
	handler Handler
	logger  *slog.Logger
	name    string
	rpcAddr string
	addr    string
	timings Timings
	events  *fifo.Queue[memberEvent]

	mu     sync.Mutex // guards closed, and keeps SetTags and Shutdown apart
	closed bool

	cancelJoin context.CancelFunc
	stop       chan struct{} // closed by Shutdown: ends the event goroutines
	wg         sync.WaitGroup
	shutdown   sync.Once
	shutErr    error
}

// New starts a Serf node as cfg describes and, if cfg.SeedAddrs names other nodes, joins the cluster
// through them in the background, retrying until one answers. handler may be nil, in which case only
// Members tells who is in the cluster.
func New(cfg Config, handler Handler) (*Membership, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tags, err := encodeTags(cfg.Tags, cfg.RPCAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	logger := cfg.Logger.With("node", cfg.NodeName)
	cfg.Logger = logger

	// Serf writes to this channel with its member lock held; the drain goroutine empties it into an
	// unbounded queue at once, so the buffer only absorbs scheduling delays.
	serfEvents := make(chan serf.Event, 256)
	s, err := serf.Create(cfg.serfConfig(tags, serfEvents))
	if err != nil {
		return nil, fmt.Errorf("discovery: start serf on %s: %w", cfg.BindAddr, err)
	}
	local := s.Memberlist().LocalNode()
	m := &Membership{
		serf:    s,
		handler: handler,
		logger:  logger,
		name:    cfg.NodeName,
		rpcAddr: cfg.RPCAddr,
		timings: cfg.Timings,
		events:  fifo.New[memberEvent](),
		stop:    make(chan struct{}),
	}
	if ip, ok := netip.AddrFromSlice(local.Addr); ok {
		m.addr = netip.AddrPortFrom(ip.Unmap(), local.Port).String()
	}

	m.wg.Go(func() { m.drain(serfEvents) })
	if handler != nil {
		m.wg.Go(m.dispatch)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancelJoin = cancel
	if seeds := m.otherSeeds(cfg); len(seeds) > 0 {
		m.wg.Go(func() { m.joinLoop(ctx, seeds) })
	}
	logger.Info("discovery: serf started", "addr", m.addr, "rpc_addr", cfg.RPCAddr, "seeds", cfg.SeedAddrs)
	return m, nil
}

// otherSeeds drops this node's own address from the seed list: a node that "joins" itself has reached
// nobody, and would stop retrying.
func (m *Membership) otherSeeds(cfg Config) []string {
	var seeds []string
	for _, s := range cfg.SeedAddrs {
		if s != m.addr && s != cfg.AdvertiseAddr && s != cfg.BindAddr {
			seeds = append(seeds, s)
		}
	}
	return seeds
}

// errReachedOnlySelf is why a join whose seeds all named this node is retried.
var errReachedOnlySelf = errors.New("the seeds reached answered only from this node")

// joinLoop tries the seeds until one answers, waiting between rounds with exponential backoff and
// jitter, so that nodes started in any order, or all at once, find each other without a thundering herd.
func (m *Membership) joinLoop(ctx context.Context, seeds []string) {
	wait := m.timings.JoinBackoffMin
	for attempt := 1; ; attempt++ {
		n, err := m.serf.Join(seeds, true)
		// A seed given by host name, or by another spelling of this node's address, can be this
		// node: a join that reached only itself has reached nobody, so it counts only once Serf
		// knows another node. Every server of a cluster can then be given the same seed list.
		if n > 0 && m.serf.NumNodes() > 1 {
			m.logger.Info("discovery: joined cluster", "contacted", n, "attempt", attempt)
			return
		}
		if n > 0 && err == nil {
			err = errReachedOnlySelf
		}
		if ctx.Err() != nil {
			return
		}
		// Between wait/2 and wait: enough spread that restarted nodes do not retry in lockstep.
		delay := wait/2 + rand.N(wait/2+1)
		m.logger.Info("discovery: join failed, retrying", "seeds", seeds, "attempt", attempt, "retry_in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, m.timings.JoinBackoffMax)
	}
}

// Addr returns the gossip address other nodes reach this one on, "ip:port", with the port the kernel
// chose when Config.BindAddr had port 0. Give it to other nodes as a seed.
func (m *Membership) Addr() string { return m.addr }

// Members returns every member this node knows of, itself included, alive or not, sorted by ID. A
// member appears once, with its latest addresses, however often it restarted.
func (m *Membership) Members() []Member {
	sm := m.serf.Members()
	out := make([]Member, 0, len(sm))
	for _, s := range sm {
		out = append(out, memberFromSerf(s))
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// SetTags replaces this node's tags (RPCAddrTag stays as configured) and gossips them to the cluster.
// It waits up to Timings.BroadcastTimeout for the change to be sent. Other nodes see it in Members and
// with a new Handler.Join.
func (m *Membership) SetTags(tags map[string]string) error {
	encoded, err := encodeTags(tags, m.rpcAddr)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if err := m.serf.SetTags(encoded); err != nil {
		return fmt.Errorf("discovery: set tags: %w", err)
	}
	return nil
}

// Leave announces that this node is leaving and waits, up to Timings.BroadcastTimeout plus
// Timings.LeavePropagateDelay, for the cluster to hear it, so that peers report a leave and not a
// failure. The node stops joining; it keeps answering until Shutdown. Calling it again is a no-op.
func (m *Membership) Leave() error {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return ErrClosed
	}
	m.cancelJoin()
	if err := m.serf.Leave(); err != nil {
		return fmt.Errorf("discovery: leave: %w", err)
	}
	return nil
}

// Shutdown stops the node at once, without leaving: to the cluster it looks like a crash, and peers
// report a failure once they detect it. Events not yet handed to the Handler are dropped; Shutdown waits
// for a running Handler call to return. Calling it again returns the first call's result.
func (m *Membership) Shutdown() error {
	m.shutdown.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.cancelJoin()
		if err := m.serf.Shutdown(); err != nil {
			m.shutErr = fmt.Errorf("discovery: shutdown: %w", err)
		}
		close(m.stop)
		m.wg.Wait()
	})
	return m.shutErr
}

// Close leaves the cluster gracefully and shuts the node down: the way a node should stop.
func (m *Membership) Close() error {
	var leaveErr error
	if err := m.Leave(); err != nil && !errors.Is(err, ErrClosed) {
		leaveErr = err
	}
	return errors.Join(leaveErr, m.Shutdown())
}

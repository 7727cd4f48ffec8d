package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/resolver"
)

// Scheme is the target scheme of a cluster: "dislog:///host1:port,host2:port".
const Scheme = "dislog"

// Timing of the resolver.
const (
	// DefaultRefresh is how often the resolver asks for the servers when nothing goes wrong.
	DefaultRefresh = 5 * time.Second
	// askTimeout bounds one round of GetServers calls, so a server that hangs costs at most that.
	askTimeout = 2 * time.Second
	// answerGrace is how long a round waits for the servers that have not answered yet once one
	// has: a frozen server never answers, and its silence must not hold up the news that another
	// server leads (or that an election is on, whose winner the next round, 100 ms later, asks
	// for), while a server that answers late may know of a newer term.
	answerGrace = 50 * time.Millisecond
	// minResolveGap spaces the resolutions that ResolveNow asks for: a burst of failed calls
	// triggers one, not hundreds.
	minResolveGap = 50 * time.Millisecond
	// minRetry is the wait after a resolution whose servers named no leader (an election, which
	// calls wait for), and the first wait after one that reached no server, which doubles up to
	// the refresh interval.
	minRetry = 100 * time.Millisecond
)

// ConnectParams bound gRPC's reconnect backoff, which by default grows to 120 s: a server that
// comes back after an outage of any length is connected to again within about 0.6 s (the
// MaxDelay and its jitter), and a refused connection attempt to a server that is down costs
// nothing. MinConnectTimeout bounds a handshake with a server that accepts connections but does
// not answer (a frozen process), which by default waits 20 s.
func ConnectParams() grpc.ConnectParams {
	return grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
		MinConnectTimeout: 5 * time.Second,
	}
}

// Leader is the leader a connection's resolver last learned, for a call that waits on a server:
// when the leader changes, the call can go to the new one rather than wait on a server that may
// be frozen. It is safe for concurrent use.
type Leader struct {
	mu      sync.Mutex
	addr    string
	changed chan struct{}
	resolve func()
	// epoch counts the server lists published.
	epoch uint64
}

// NewLeader returns a Leader to give NewResolverBuilder.
func NewLeader() *Leader { return &Leader{changed: make(chan struct{})} }

// Get returns the leader's address ("" if the cluster has none, or none is known yet) and a
// channel closed when that changes.
func (l *Leader) Get() (addr string, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr, l.changed
}

// Epoch counts the changes of the cluster's server list (a server came, went or leads now)
// that the resolver published: what a client learned of the cluster before the last change may
// be out of date.
func (l *Leader) Epoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

// ResolveNow asks the resolver to ask the cluster for its servers soon: a call that waits longer
// than the cluster usually answers may be waiting on a server that no longer leads.
func (l *Leader) ResolveNow() {
	l.mu.Lock()
	resolve := l.resolve
	l.mu.Unlock()
	if resolve != nil {
		resolve()
	}
}

func (l *Leader) set(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.epoch++
	if addr != l.addr {
		l.addr = addr
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

func (l *Leader) setResolver(resolve func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.resolve = resolve
}

// ServerInfo is a server's role, attached to its endpoint (Endpoint.Attributes) for the
// balancer.
type ServerInfo struct {
	ID       string
	IsLeader bool
	IsVoter  bool
}

type serverInfoKey struct{}

// InfoOf returns the role the resolver attached to an endpoint's attributes.
func InfoOf(attrs *attributes.Attributes) (ServerInfo, bool) {
	info, ok := attrs.Value(serverInfoKey{}).(ServerInfo)
	return info, ok
}

// server is one entry of GetServers, as the resolver publishes it.
type server struct {
	addr string
	info ServerInfo
}

// NewResolverBuilder returns the builder of "dislog:///" resolvers that ask for the servers every
// refresh (DefaultRefresh if refresh <= 0) and keep leader, if not nil, up to date.
func NewResolverBuilder(refresh time.Duration, leader *Leader) resolver.Builder {
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	if leader == nil {
		leader = NewLeader()
	}
	return &resolverBuilder{refresh: refresh, leader: leader}
}

type resolverBuilder struct {
	refresh time.Duration
	leader  *Leader
}

func (*resolverBuilder) Scheme() string { return Scheme }

// OverrideAuthority makes the connection's default authority the first seed, a valid host:port,
// rather than the comma-separated list. Each address also carries its own ServerName, which TLS
// checks the server's certificate against.
func (*resolverBuilder) OverrideAuthority(t resolver.Target) string {
	seeds, err := ParseSeeds(t.Endpoint())
	if err != nil {
		return t.Endpoint()
	}
	return seeds[0]
}

// ParseSeeds splits "host1:port,host2:port" into its addresses.
func ParseSeeds(endpoint string) ([]string, error) {
	var seeds []string
	for s := range strings.SplitSeq(endpoint, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("dislog resolver: seed %q: want host:port: %w", s, err)
		}
		if !slices.Contains(seeds, s) {
			seeds = append(seeds, s)
		}
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("dislog resolver: target %q names no server: want %s:///host1:port,host2:port", endpoint, Scheme)
	}
	return seeds, nil
}

func (b *resolverBuilder) Build(t resolver.Target, cc resolver.ClientConn, opts resolver.BuildOptions) (resolver.Resolver, error) {
	seeds, err := ParseSeeds(t.Endpoint())
	if err != nil {
		return nil, err
	}
	if opts.DialCreds == nil {
		return nil, errors.New("dislog resolver: the connection has no transport credentials")
	}
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(opts.DialCreds), grpc.WithConnectParams(ConnectParams())}
	if opts.Dialer != nil {
		dialOpts = append(dialOpts, grpc.WithContextDialer(opts.Dialer))
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &clusterResolver{
		cc:       cc,
		seeds:    seeds,
		refresh:  b.refresh,
		dialOpts: dialOpts,
		leader:   b.leader,
		probes:   map[string]*grpc.ClientConn{},
		now:      make(chan struct{}, 1),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	b.leader.setResolver(func() { r.ResolveNow(resolver.ResolveNowOptions{}) })
	go r.run()
	return r, nil
}

// clusterResolver asks the cluster for its servers. Everything but now, ctx and cancel belongs
// to the run goroutine.
type clusterResolver struct {
	cc       resolver.ClientConn
	seeds    []string
	refresh  time.Duration
	dialOpts []grpc.DialOption

	now    chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	leader *Leader

	// probes are the connections GetServers goes on, by address. They are separate from the
	// ones the balancer keeps, which the resolver cannot reach.
	probes map[string]*grpc.ClientConn
	// known is the cluster's last answer; nil before the first. published is whether gRPC took
	// it.
	known     []server
	published bool
}

// ResolveNow asks for a resolution soon. It never blocks, and many calls make one resolution.
func (r *clusterResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

func (r *clusterResolver) Close() {
	r.cancel()
	<-r.done
}

func (r *clusterResolver) run() {
	defer close(r.done)
	defer r.closeProbes()
	retry := minRetry
	for {
		wait := r.refresh
		switch r.resolve() {
		case leaderKnown:
			retry = minRetry
		case noLeader:
			wait, retry = minRetry, minRetry
		case noServer:
			wait, retry = retry, min(2*retry, r.refresh)
		}
		last := time.Now()
		t := time.NewTimer(wait)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-r.now:
			t.Stop()
			if gap := minResolveGap - time.Since(last); gap > 0 {
				t = time.NewTimer(gap)
				select {
				case <-r.ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
	}
}

// resolution is what a resolve found.
type resolution int

const (
	leaderKnown resolution = iota
	noLeader               // servers answered, naming no leader: an election
	noServer               // no server answered
)

// answer is one server's reply to GetServers.
type answer struct {
	addr    string
	servers []server
	term    uint64
	err     error
}

func (a *answer) namesLeader() bool {
	return slices.ContainsFunc(a.servers, func(s server) bool { return s.info.IsLeader })
}

// newer reports whether a is to be believed over b: the higher term, and within a term the answer
// that names a leader.
func (a *answer) newer(b *answer) bool {
	if a.term != b.term {
		return a.term > b.term
	}
	return a.namesLeader() && !b.namesLeader()
}

// resolve asks every server it knows of at once, publishes the answer of the highest term, and
// reports whether it named a leader. Asking all at once, rather than in turn, is what lets a
// client learn of a new leader while the old one is frozen: its silence costs answerGrace, not
// askTimeout, and the others' answers outvote the stale one it gives once it thaws. When none
// answers it reports the error to gRPC and keeps the list it published last.
func (r *clusterResolver) resolve() resolution {
	addrs := r.candidates()
	for addr := range r.probes {
		if !slices.Contains(addrs, addr) {
			r.closeProbe(addr)
		}
	}
	ctx, cancel := context.WithTimeout(r.ctx, askTimeout)
	defer cancel()
	answers := make(chan answer, len(addrs))
	for _, addr := range addrs {
		conn, err := r.probe(addr)
		if err != nil {
			answers <- answer{addr: addr, err: err}
			continue
		}
		go func() {
			servers, term, err := ask(ctx, conn, addr)
			answers <- answer{addr: addr, servers: servers, term: term, err: err}
		}()
	}
	var (
		best  *answer
		errs  []error
		grace <-chan time.Time
	)
wait:
	for range addrs {
		select {
		case a := <-answers:
			if a.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", a.addr, a.err))
				// A dead or hung server's connection would only retry in the background: drop it.
				r.closeProbe(a.addr)
				continue
			}
			if best == nil || a.newer(best) {
				best = &a
			}
			if grace == nil {
				grace = time.After(answerGrace)
			}
		case <-grace:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	if best == nil {
		if r.ctx.Err() == nil {
			r.cc.ReportError(fmt.Errorf("dislog resolver: no server answered GetServers: %w", errors.Join(errs...)))
		}
		return noServer
	}
	r.publish(best.servers)
	if best.namesLeader() {
		return leaderKnown
	}
	return noLeader
}

// candidates lists whom to ask: the servers known, then the seeds.
func (r *clusterResolver) candidates() []string {
	var addrs []string
	add := func(a string) {
		if a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	for _, s := range r.known {
		add(s.addr)
	}
	for _, s := range r.seeds {
		add(s)
	}
	return addrs
}

// probe returns the connection to ask addr on, making it if there is none.
func (r *clusterResolver) probe(addr string) (*grpc.ClientConn, error) {
	if conn, ok := r.probes[addr]; ok {
		return conn, nil
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, r.dialOpts...)
	if err != nil {
		return nil, err
	}
	r.probes[addr] = conn
	return conn, nil
}

// ask calls GetServers on addr, over conn.
func ask(ctx context.Context, conn *grpc.ClientConn, addr string) ([]server, uint64, error) {
	resp, err := dislogv1.NewLogServiceClient(conn).GetServers(ctx, &dislogv1.GetServersRequest{})
	if err != nil {
		return nil, 0, err
	}
	var servers []server
	for _, s := range resp.GetServers() {
		a := s.GetRpcAddr()
		if a == "" {
			continue
		}
		servers = append(servers, server{
			addr: reachable(a, addr),
			info: ServerInfo{ID: s.GetId(), IsLeader: s.GetIsLeader(), IsVoter: s.GetIsVoter()},
		})
	}
	if len(servers) == 0 {
		return nil, 0, errors.New("GetServers listed no server with an address")
	}
	slices.SortFunc(servers, func(a, b server) int { return strings.Compare(a.addr, b.addr) })
	return servers, resp.GetTerm(), nil
}

// reachable turns an advertised address on all interfaces (":7070", "0.0.0.0:7070") into one on
// the host the answer came from, which is where that server is reachable.
func reachable(advertised, askedAddr string) string {
	host, port, err := net.SplitHostPort(advertised)
	if err != nil {
		return advertised
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return advertised
	}
	askedHost, _, err := net.SplitHostPort(askedAddr)
	if err != nil {
		return advertised
	}
	return net.JoinHostPort(askedHost, port)
}

// publish hands the servers to gRPC if they changed.
func (r *clusterResolver) publish(servers []server) {
	if r.published && slices.Equal(servers, r.known) {
		return
	}
	r.known = servers
	state := resolver.State{}
	for _, s := range servers {
		attrs := attributes.New(serverInfoKey{}, s.info)
		// ServerName makes TLS check each server's certificate against its own address; the
		// target's authority is the whole list of seeds.
		addr := resolver.Address{Addr: s.addr, ServerName: s.addr}
		state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{addr}, Attributes: attrs})
	}
	// An error means the balancer refused the list: publish it again after the next resolution.
	r.published = r.cc.UpdateState(state) == nil
	// After UpdateState, which returns once the balancer's picker routes by the new list: a call
	// told of the new leader goes there when it retries.
	leader := ""
	for _, s := range servers {
		if s.info.IsLeader {
			leader = s.addr
		}
	}
	r.leader.set(leader)
}

func (r *clusterResolver) closeProbe(addr string) {
	if conn, ok := r.probes[addr]; ok {
		_ = conn.Close()
		delete(r.probes, addr)
	}
}

func (r *clusterResolver) closeProbes() {
	for addr := range r.probes {
		r.closeProbe(addr)
	}
}

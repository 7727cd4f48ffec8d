package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"
)

// Scheme is the target scheme of a cluster: "dislog:///host1:port,host2:port".
const Scheme = "dislog"

// Timing of the resolver.
const (
	// DefaultRefresh is how often the resolver asks for the servers when nothing goes wrong.
	DefaultRefresh = 5 * time.Second
	// askTimeout bounds one GetServers call, so a server that hangs costs that long before the
	// next one is asked.
	askTimeout = 2 * time.Second
	// minResolveGap spaces the resolutions that ResolveNow asks for: a burst of failed calls
	// triggers one, not hundreds.
	minResolveGap = 50 * time.Millisecond
	// minRetry is the wait after a resolution whose servers named no leader (an election, which
	// calls wait for), and the first wait after one that reached no server, which doubles up to
	// the refresh interval.
	minRetry = 100 * time.Millisecond
)

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
// refresh (DefaultRefresh if refresh <= 0).
func NewResolverBuilder(refresh time.Duration) resolver.Builder {
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	return &resolverBuilder{refresh: refresh}
}

type resolverBuilder struct{ refresh time.Duration }

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
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(opts.DialCreds)}
	if opts.Dialer != nil {
		dialOpts = append(dialOpts, grpc.WithContextDialer(opts.Dialer))
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &clusterResolver{
		cc:       cc,
		seeds:    seeds,
		refresh:  b.refresh,
		dialOpts: dialOpts,
		now:      make(chan struct{}, 1),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
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

	// probe is the connection GetServers goes on, to probeAddr. It is a separate connection
	// from the ones the balancer keeps, which the resolver cannot reach.
	probe     *grpc.ClientConn
	probeAddr string
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
	defer r.closeProbe()
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

// resolve asks the servers in turn until one answers, publishes its answer, and reports whether
// the answer named a leader. When none answers it reports the error to gRPC and keeps the list
// it published last.
func (r *clusterResolver) resolve() resolution {
	var errs []error
	for _, addr := range r.candidates() {
		servers, err := r.ask(addr)
		if err == nil {
			r.publish(servers)
			if slices.ContainsFunc(servers, func(s server) bool { return s.info.IsLeader }) {
				return leaderKnown
			}
			return noLeader
		}
		if r.ctx.Err() != nil {
			return noServer
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	r.cc.ReportError(fmt.Errorf("dislog resolver: no server answered GetServers: %w", errors.Join(errs...)))
	return noServer
}

// candidates lists whom to ask, in order: the server that answered last, the leader, the other
// servers known, then the seeds.
func (r *clusterResolver) candidates() []string {
	var addrs []string
	add := func(a string) {
		if a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	add(r.probeAddr)
	for _, s := range r.known {
		if s.info.IsLeader {
			add(s.addr)
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

// ask calls GetServers on addr.
func (r *clusterResolver) ask(addr string) ([]server, error) {
	if r.probeAddr != addr {
		r.closeProbe()
		conn, err := grpc.NewClient("passthrough:///"+addr, r.dialOpts...)
		if err != nil {
			return nil, err
		}
		r.probe, r.probeAddr = conn, addr
	}
	ctx, cancel := context.WithTimeout(r.ctx, askTimeout)
	defer cancel()
	resp, err := dislogv1.NewLogServiceClient(r.probe).GetServers(ctx, &dislogv1.GetServersRequest{})
	if err != nil {
		// A dead or hung server's connection would only retry in the background: drop it.
		r.closeProbe()
		return nil, err
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
		r.closeProbe()
		return nil, errors.New("GetServers listed no server with an address")
	}
	slices.SortFunc(servers, func(a, b server) int { return strings.Compare(a.addr, b.addr) })
	return servers, nil
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
}

func (r *clusterResolver) closeProbe() {
	if r.probe != nil {
		_ = r.probe.Close()
		r.probe, r.probeAddr = nil, ""
	}
}

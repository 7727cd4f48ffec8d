package cluster

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// BalancerName is the name the balancer is registered under.
const BalancerName = "dislog_cluster"

// ServiceConfig selects the balancer for a connection (grpc.WithDefaultServiceConfig).
const ServiceConfig = `{"loadBalancingConfig":[{"` + BalancerName + `":{}}]}`

// gRPC looks balancers up by name in a process-wide registry, and balancer.Register may only be
// called while the program initializes: a registration from Dial could race with another
// connection reading the registry. The name is Dislog's own, so it changes nothing for other
// connections; the resolver, which would, is given per connection instead.
func init() { balancer.Register(balancerBuilder{}) }

type balancerBuilder struct{}

func (balancerBuilder) Name() string { return BalancerName }

// Build returns gRPC's endpointsharding balancer, which keeps a pick_first child, one connection,
// per server, under a picker that routes by the servers' roles. endpointsharding knows a server
// by its address alone, so a server whose role changes keeps its connection and the picker sees
// the new role.
func (balancerBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	return endpointsharding.NewBalancer(&routingConn{ClientConn: cc}, opts, balancer.Get(pickfirst.Name).Build, endpointsharding.Options{})
}

// routingConn is the ClientConn endpointsharding reports to: it replaces endpointsharding's
// round-robin picker with one that routes by role.
type routingConn struct {
	balancer.ClientConn

	mu sync.Mutex
	// settled holds the servers whose first connection attempt has ended, ready or failed.
	settled map[string]bool
}

func (c *routingConn) UpdateState(s balancer.State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled == nil {
		c.settled = map[string]bool{}
	}
	p := &picker{fallback: s.Picker, resolveNow: func() { c.ResolveNow(resolver.ResolveNowOptions{}) }}
	// A random start, so that clients created together do not all begin on the same server.
	p.next.Store(rand.Uint32())
	for _, child := range endpointsharding.ChildStatesFromPicker(s.Picker) {
		info, _ := InfoOf(child.Endpoint.Attributes)
		addr := child.Endpoint.Addresses[0].Addr
		state := child.State.ConnectivityState
		if state == connectivity.Ready || state == connectivity.TransientFailure {
			c.settled[addr] = true
		}
		follower := !info.IsLeader && info.IsVoter
		p.servers = append(p.servers, pickable{
			id: info.ID, addr: addr, state: state, picker: child.State.Picker, settled: c.settled[addr],
		})
		if info.IsLeader {
			p.leader = &child
			p.leaderInfo = info
		}
		if state != connectivity.Ready {
			p.followerConnecting = p.followerConnecting || follower && !c.settled[addr]
			continue
		}
		p.ready = append(p.ready, child.State.Picker)
		if follower {
			p.followers = append(p.followers, child.State.Picker)
		}
	}
	c.ClientConn.UpdateState(balancer.State{ConnectivityState: s.ConnectivityState, Picker: p})
}

// picker routes each call by its method. Each server's pick_first picker does the picking for
// that server: it returns the server's connection when it is ready, and makes the call wait
// while it connects or fail while it is down.
type picker struct {
	leader     *endpointsharding.ChildState // nil when no server leads
	leaderInfo ServerInfo
	// followers are the ready voters that do not lead; ready are all the ready servers.
	followers, ready []balancer.Picker
	// followerConnecting is set when a follower's first connection attempt has not ended yet.
	followerConnecting bool
	// fallback is endpointsharding's picker, for when no server is ready: it makes a call wait
	// for a server that is connecting, or fail with why none is reachable.
	fallback balancer.Picker
	// servers are every published server, for the calls that carry a Route.
	servers []pickable

	next       atomic.Uint32
	resolveNow func()
}

// pickable is one published server as a picker sees it.
type pickable struct {
	id, addr string
	state    connectivity.State
	picker   balancer.Picker
	// settled is set once its first connection attempt has ended.
	settled bool
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	route, routed := routeOf(info.Ctx)
	switch info.FullMethodName {
	case dislogv1.LogService_Produce_FullMethodName, dislogv1.LogService_ProduceStream_FullMethodName:
		if routed && (route.Leader != "" || route.LeaderAddr != "") {
			if s := p.find(route.Leader, route.LeaderAddr); s != nil {
				return p.pickPartitionLeader(s, info)
			}
			// A server the resolver has not listed yet: it will, soon.
			p.resolveNow()
		}
		return p.pickLeader(info)
	case dislogv1.LogService_Consume_FullMethodName, dislogv1.LogService_ConsumeStream_FullMethodName:
		if routed && len(route.Replicas) > 0 {
			if res, err, ok := p.pickReplica(route, info); ok {
				return res, err
			}
		}
		if len(p.followers) > 0 {
			return p.roundRobin(p.followers, info)
		}
		if p.followerConnecting {
			// Just after Dial the leader may be ready first: wait for the followers rather than
			// pin a subscription, which stays on its server, to the leader.
			return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
		}
		if p.leader != nil && p.leader.State.ConnectivityState == connectivity.Ready {
			return p.watch(p.leader.State.Picker.Pick(info))
		}
	}
	if routed && route.Avoid != "" {
		var others []balancer.Picker
		for _, s := range p.servers {
			if s.state == connectivity.Ready && s.id != route.Avoid {
				others = append(others, s.picker)
			}
		}
		if len(others) > 0 {
			return p.roundRobin(others, info)
		}
	}
	if len(p.ready) > 0 {
		return p.roundRobin(p.ready, info)
	}
	return p.watch(p.fallback.Pick(info))
}

// find returns the server of id or addr, nil if none is published.
func (p *picker) find(id, addr string) *pickable {
	for i := range p.servers {
		if s := &p.servers[i]; id != "" && s.id == id || id == "" && addr != "" && s.addr == addr {
			return s
		}
	}
	return nil
}

// pickPartitionLeader picks the leader of a call's partition, as pickLeader picks the cluster's.
func (p *picker) pickPartitionLeader(s *pickable, info balancer.PickInfo) (balancer.PickResult, error) {
	res, err := s.picker.Pick(info)
	if err != nil && s.state == connectivity.TransientFailure {
		p.resolveNow()
		return res, status.Errorf(codes.Unavailable, "dislog: the partition's leader %s (%s) is unreachable: %v",
			s.id, s.addr, status.Convert(err).Message())
	}
	return p.watch(res, err)
}

// pickReplica picks a replica of a call's partition: a ready follower round-robin, else the
// leader if ready; it waits while a follower makes its first connection attempt (a subscription
// stays on its server), and for a replica that is connecting. ok is false when no replica is
// published.
func (p *picker) pickReplica(route Route, info balancer.PickInfo) (res balancer.PickResult, err error, ok bool) {
	var followers []balancer.Picker
	var leader, connecting *pickable
	followerConnecting := false
	for i := range p.servers {
		s := &p.servers[i]
		if !slices.Contains(route.Replicas, s.id) {
			continue
		}
		ok = true
		isLeader := s.id == route.Leader || route.Leader == "" && s.addr == route.LeaderAddr && s.addr != ""
		switch {
		case s.state == connectivity.Ready && isLeader:
			leader = s
		case s.state == connectivity.Ready:
			followers = append(followers, s.picker)
		case s.state != connectivity.TransientFailure:
			connecting = s
			followerConnecting = followerConnecting || !isLeader && !s.settled
		}
	}
	switch {
	case !ok:
		return res, nil, false
	case len(followers) > 0:
		res, err = p.roundRobin(followers, info)
	case followerConnecting:
		err = balancer.ErrNoSubConnAvailable
	case leader != nil:
		res, err = p.watch(leader.picker.Pick(info))
	case connecting != nil:
		res, err = p.watch(connecting.picker.Pick(info))
	default:
		// Every replica is down: ask who holds the partition now, and fail the call, which a
		// subscription retries.
		p.resolveNow()
		err = status.Errorf(codes.Unavailable, "dislog: no replica of the partition (%s) is reachable", strings.Join(route.Replicas, ", "))
	}
	return res, err, true
}

func (p *picker) pickLeader(info balancer.PickInfo) (balancer.PickResult, error) {
	if p.leader == nil {
		// An election: the call waits (up to its deadline) for the resolver to learn the new
		// leader, and goes there at once, rather than fail and find it a retry's backoff later.
		p.resolveNow()
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	res, err := p.leader.State.Picker.Pick(info)
	if err != nil && p.leader.State.ConnectivityState == connectivity.TransientFailure {
		// The leader may be dead, and another elected: ask the cluster.
		p.resolveNow()
		return res, status.Errorf(codes.Unavailable, "dislog: the leader %s (%s) is unreachable: %v",
			p.leaderInfo.ID, p.leader.Endpoint.Addresses[0].Addr, status.Convert(err).Message())
	}
	return p.watch(res, err)
}

func (p *picker) roundRobin(pickers []balancer.Picker, info balancer.PickInfo) (balancer.PickResult, error) {
	n := p.next.Add(1)
	return p.watch(pickers[n%uint32(len(pickers))].Pick(info))
}

// watch makes the resolver ask the cluster again when a call's error says that its server is
// gone or does not lead.
func (p *picker) watch(res balancer.PickResult, err error) (balancer.PickResult, error) {
	if err != nil {
		return res, err
	}
	done := res.Done
	res.Done = func(info balancer.DoneInfo) {
		if done != nil {
			done(info)
		}
		if status.Code(info.Err) == codes.Unavailable || dislogv1.IsNotLeader(info.Err) {
			p.resolveNow()
		}
	}
	return res, nil
}

package cluster

import "context"

// Route tells the picker where a call about one partition goes: a topic's partitions are Raft
// groups of their own, each with its leader and replicas among the cluster's servers. A call
// without a Route is routed by the servers' cluster roles, as before partitions.
type Route struct {
	// Leader is the ID of the server that leads the partition and LeaderAddr its client address
	// (either may be empty): a produce goes there. When no published server matches, the
	// produce goes to the cluster's leader, whose answer (not the leader) makes the caller learn
	// the partition's leader again.
	Leader, LeaderAddr string
	// Replicas are the IDs of the partition's in-sync replicas: a consume goes round-robin to
	// those that are ready and do not lead, to the leader when none is. With none published, a
	// consume is routed as without a Route.
	Replicas []string
	// Avoid is the ID of a server that a call other than a produce or consume should not go to
	// while another is ready: one that did not answer (a frozen leader), when asking who leads.
	Avoid string
}

type routeKey struct{}

// WithRoute returns ctx carrying r, for the picker of a call made with it.
func WithRoute(ctx context.Context, r Route) context.Context {
	return context.WithValue(ctx, routeKey{}, r)
}

// routeOf returns the Route a call's context carries.
func routeOf(ctx context.Context) (Route, bool) {
	if ctx == nil {
		return Route{}, false
	}
	r, ok := ctx.Value(routeKey{}).(Route)
	return r, ok
}

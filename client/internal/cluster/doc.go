// Package cluster routes a client's calls across a Dislog cluster. It has two halves that gRPC
// joins on one connection:
//
//   - A resolver for targets "dislog:///host1:port,host2:port". It asks one of the servers it
//     knows (the seeds at first, then the servers the cluster listed) for GetServers, publishes
//     every server as an address with its role (ServerInfo) attached, and asks again on a timer
//     and whenever gRPC or the balancer reports trouble (ResolveNow). When the server it asked
//     dies it asks the others; when none answers it keeps the last list.
//   - A balancer that keeps a connection to every published server and a picker that sends
//     Produce and ProduceStream to the leader, spreads Consume and ConsumeStream round-robin over
//     the voting followers (the leader when none is ready, once each has tried to connect), and
//     every other call over all ready servers. A call about one partition of a topic carries a
//     Route in its context (WithRoute): a produce goes to the partition's leader, a consume to
//     one of its in-sync followers (its leader if none is ready), any other call away from a
//     server to avoid; with no published server matching, the call is routed by role as above.
//     A call that ends Unavailable, or refused because
//     the server is not the leader, makes the resolver ask again at once, so a new leader is found
//     without waiting for the timer.
//
// NewResolverBuilder goes in a connection's dial options (grpc.WithResolvers), so the "dislog"
// scheme means nothing to other connections of the process; ServiceConfig selects the balancer.
package cluster

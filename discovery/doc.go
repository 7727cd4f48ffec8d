// Package discovery tells a Dislog server who else is in its cluster, and at which addresses, using
// Serf gossip (hashicorp/serf over memberlist): there is no central registry.
//
// Each server starts a Membership with its ID, the address it gossips on, the address of its RPC server
// (gossiped as a tag) and the gossip addresses of a few seed servers:
//
//	m, err := discovery.New(discovery.Config{
//		NodeName:   "server-1",
//		BindAddr:   "10.0.0.1:7946",
//		RPCAddr:    "10.0.0.1:8400",
//		SeedAddrs:  []string{"10.0.0.2:7946", "10.0.0.3:7946"},
//		EncryptKey: key, // 32 bytes shared by every server
//	}, handler)
//	defer m.Close()
//
// The node joins through any seed that answers and keeps retrying, with backoff, until one does, so
// servers can start in any order. From then on the Handler hears, in order and on one goroutine, when
// another member joins (Join with its RPC address) and when it leaves, fails or is reaped (Leave). The
// local node is never reported. Members returns the current view, for a caller that reconciles against
// it on a timer, as the Raft leader does.
//
// Failure detection is memberlist's SWIM: each node probes a random peer every ProbeInterval; a peer
// that misses a probe, direct and indirect, becomes suspect and is declared failed after a suspicion
// timeout unless it refutes. Timings holds these knobs; the defaults suit a LAN.
//
// A node that restarts with the same name at a new address replaces its old entry once the old one is
// declared failed (Timings.DeadNodeReclaimTime): members see a Leave, then a Join with the new address,
// and Members lists the node once.
//
// Close leaves gracefully, so peers report a leave at once instead of detecting a failure; Shutdown
// stops without leaving, as a crash would.
package discovery

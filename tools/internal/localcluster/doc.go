// Package localcluster starts a Dislog cluster of its own on loopback for a tool that needs one, such
// as dislog-bench: a certificate authority with a server certificate per node and a client
// certificate, an ACL policy that lets that client do everything, and the nodes, all in a temporary
// directory that Close removes.
//
// A single node runs inside the calling process (StartInProcess); a replicated cluster runs the
// dislog binary once per node (StartProcesses), which needs a dislog built with the replication
// flags of issue 7 (see CheckReplicationFlags).
//
//	cl, err := localcluster.StartInProcess(ctx)
//	if err != nil { ... }
//	defer cl.Close()
//	c, err := cl.Dial(cl.Addrs[0])
package localcluster

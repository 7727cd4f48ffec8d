// Package localcluster starts a Dislog cluster of its own on loopback for a tool or test that needs
// one: dislog-bench and dislog-chaos, the process tests of the dislog command and the end-to-end
// tests in the tools module all use it, so there is one harness of dislog processes. It makes a
// certificate authority (package authz/devca) with a server certificate per node and a
// client certificate, an ACL policy that lets that client do everything, and the nodes, all in a
// temporary directory that Close removes.
//
// A single node runs inside the calling process (StartInProcess); a replicated cluster runs the
// dislog binary once per node (StartProcesses), which needs a dislog built with the replication
// flags of issue 7 (see CheckReplicationFlags). The nodes of such a cluster may each have a loopback
// IP of their own and advertise another address than the one they listen on (Options.IPs,
// Options.Advertise: a fault-injecting proxy in front of each), and they can be crashed and brought
// back (Kill, Restart) or frozen (Pause, Resume).
//
//	cl, err := localcluster.StartInProcess()
//	if err != nil { ... }
//	defer cl.Close()
//	c, err := cl.Dial(cl.Addrs[0])
package localcluster

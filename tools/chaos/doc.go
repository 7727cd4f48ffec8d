// Package chaos is Dislog's Jepsen-style fault harness, the engine of dislog-chaos. Run starts a
// cluster of dislog processes, each on a loopback IP of its own behind a fault-injecting proxy
// (tools/internal/faultproxy), runs clients that produce unique values to the partitions of its
// topics and read them back while a nemesis kills, pauses, partitions, gracefully stops and
// replaces nodes on a seeded schedule, then heals everything, waits for the nodes to agree, reads
// every partition from each of its replicas and checks the history, partition by partition:
//
//   - no acknowledged write lost: each acknowledged produce's value is at its offset;
//   - no duplicate: a value is at most once in a partition;
//   - no phantom: every value in a partition was produced to it by a client;
//   - consistent offsets: every replica holds the same value at each offset;
//   - consumer offsets monotonic (tools/README.md says exactly what that means);
//   - linearizable: the produces and the read-your-writes reads, with porcupine.
//
// An error from Run means the harness could not run (no verdict); the checks' verdicts are in the
// report:
//
//	rep, err := chaos.Run(ctx, chaos.Config{Bin: bin, Nodes: 3, Duration: time.Minute, Seed: 1, Faults: chaos.AllFaults})
//	if err != nil { ... }
//	if !rep.Valid() { ... } // a check found a violation
package chaos

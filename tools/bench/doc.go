// Package bench is Dislog's load generator, the engine of the dislog-bench command: clients
// produce or read records of a topic in one of the Workloads (one record in flight, a window of
// records through the batching client.Producer, batches, a replay from offset 0, or producers and
// following consumers at once), for a count of records or a duration, optionally at a limited
// rate, and Run reports throughput and latency percentiles from HDR histograms, with a timeline of
// one sample a second that WritePlot draws.
//
//	dial := func() (*client.Client, error) { return client.Dial(addr, client.WithTLSFiles(ca, cert, key)) }
//	rep, err := bench.Run(ctx, dial, bench.Config{Workload: bench.Async, Count: 100_000})
//	if err != nil { ... }
//	rep.WriteText(os.Stdout)        // or encoding/json for machines
//	bench.WritePlot(rep, "run.png") // throughput and p99 latency over time
package bench

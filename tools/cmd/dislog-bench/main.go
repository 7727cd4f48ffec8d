// Command dislog-bench is Dislog's load generator. It runs one workload against running servers,
// or against a loopback cluster of its own, and reports throughput and latency percentiles:
//
//	dislog-bench sync   --cluster 1 --count 10000            # one record in flight
//	dislog-bench async  --cluster 1 --count 1000000 --window 4096
//	dislog-bench batch  --cluster 1 --count 1000000 --batch 256
//	dislog-bench replay --cluster 1 --count 1000000
//	dislog-bench mixed  --addr 10.0.0.1:7070 --tls-ca-file ca.pem --tls-cert-file me.pem --tls-key-file me-key.pem --duration 1m --rate 50000
//
// With no --cluster it dials --addr (default the local dev node, 127.0.0.1:7070, with the client
// certificate in ./dislog-data/pki/dev, as dislogctl does). --json prints the report for machines
// and --plot FILE.png draws throughput and p99 latency over time. The engine is package
// github.com/dislog/dislog/tools/bench.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{
		stdout:           os.Stdout,
		stderr:           os.Stderr,
		stderrIsTerminal: term.IsTerminal(int(os.Stderr.Fd())),
		lookupEnv:        os.LookupEnv,
	})
	stop()
	os.Exit(code)
}

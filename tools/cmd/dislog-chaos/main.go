// Command dislog-chaos is Dislog's Jepsen-style fault harness. It starts a cluster of dislog
// processes on loopback, each on its own IP behind a fault-injecting proxy, runs clients that
// produce unique values and read them back while a nemesis kills, pauses and partitions nodes on a
// seeded schedule, then heals everything and checks that no acknowledged write was lost, nothing
// was written twice, every node holds the same records, consumer offsets never went back, and the
// history is linearizable:
//
//	dislog-chaos --nodes 3 --duration 2m --seed 7 --faults kill,pause,partition
//	dislog-chaos --nodes 5 --duration 30m --clients 10 --topics 16 --rate 150 --json > run.json
//
// The exit status is 0 when every check passes, 1 when one finds a violation, and 2 when the run
// could not be made or a check reached no verdict. The engine is package
// github.com/dislog/dislog/tools/chaos.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

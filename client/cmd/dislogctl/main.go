// Command dislogctl is the command-line client of Dislog: it produces and consumes records, follows
// a topic's tail, and manages topics and consumer offsets.
//
// With no connection flags it talks to the development node `dislog` starts in the current
// directory: it dials 127.0.0.1:7070 with the client certificate the node made in
// ./dislog-data/pki/dev. --addr, --data-dir, --tls-ca-file, --tls-cert-file and --tls-key-file (or DISLOG_ADDR,
// DISLOG_DATA_DIR, DISLOG_CA, DISLOG_CERT and DISLOG_KEY) point it elsewhere; --addr takes one
// server, host:port, or a cluster, dislog:///host1:port,host2:port.
//
//	dislogctl topics create orders
//	dislogctl produce orders paid shipped
//	seq 1000000 | dislogctl produce orders
//	dislogctl consume orders --offset 0 -o json
//	dislogctl tail -f orders
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{
		stdin:            os.Stdin,
		stdout:           os.Stdout,
		stderr:           os.Stderr,
		stderrIsTerminal: isTerminal(os.Stderr),
		lookupEnv:        os.LookupEnv,
	})
	stop()
	os.Exit(code)
}

// isTerminal reports whether f is a character device, as a terminal is.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

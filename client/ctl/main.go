// Package ctl is dislogctl, the command-line client of Dislog: it produces and consumes records,
// follows a topic's tail, and manages topics and consumer offsets. The dislogctl command runs it,
// and so does the dislog server binary when it is called as dislogctl (the container image keeps one
// binary for both).
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
package ctl

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Main runs dislogctl with args (os.Args[1:]) on the process's standard streams and environment,
// stopping at SIGINT or SIGTERM, and returns the exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, env{
		stdin:            os.Stdin,
		stdout:           os.Stdout,
		stderr:           os.Stderr,
		stderrIsTerminal: isTerminal(os.Stderr),
		lookupEnv:        os.LookupEnv,
	})
}

// isTerminal reports whether f is a character device, as a terminal is.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

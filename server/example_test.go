package server_test

import (
	"context"
	"log"
	"log/slog"
	"os"
	"os/signal"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/server"
)

// A server with certificates and a policy made by dislog-certs, serving until interrupted.
func Example() {
	srv, err := server.New(
		server.WithDataDir("/var/lib/dislog"),
		server.WithListenAddr("10.0.0.1:7070"),
		server.WithNodeID("node1"),
		server.WithTLS(authz.TLSOptions{CAFile: "pki/node1/ca.pem", CertFile: "pki/node1/node1.pem", KeyFile: "pki/node1/node1-key.pem"}),
		server.WithPolicyFile("pki/policy.csv"),
		server.WithLogger(slog.New(slog.NewJSONHandler(os.Stderr, nil))),
	)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := srv.Serve(ctx); err != nil {
		log.Fatal(err)
	}
}

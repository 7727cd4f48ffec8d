// Package e2e holds the end-to-end tests and benchmarks of the Go client and dislogctl against a real
// Dislog server on loopback with mutual TLS, and of the client against a 3-node cluster of dislog
// processes (started with server/localcluster, the one process harness) whose leader is killed
// (SIGKILL) while a producer writes through a dislog:/// target. They live in the tools module
// because the server module depends on the client module: the client's own tests cannot start a
// server.
//
//	go test -race ./tools/e2e                            # in the workspace
//	make test-tools                                      # tools alone, as its users build it
//	go test -run '^$' -bench . ./tools/e2e
package e2e

// Package e2e holds the end-to-end tests and benchmarks of the Go client and dislogctl against a real
// Dislog server on loopback with mutual TLS, and of the client against a 3-node cluster of dislog
// processes whose leader is killed (SIGKILL) while a producer writes through a dislog:/// target. They live in the tools module because the server module
// depends on the client module: the client's own tests cannot start a server.
//
//	cd tools && GOWORK=off go test -race ./e2e
//	cd tools && GOWORK=off go test -run '^$' -bench . ./e2e
package e2e

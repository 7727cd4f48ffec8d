// Package dislogv1 is the Go code generated from dislog.proto, the dislog.v1 gRPC API: the messages
// and the LogService client and server stubs. Applications use package client, which wraps it; the
// server implements LogServiceServer. Regenerate it with `make proto` in the client module.
package dislogv1

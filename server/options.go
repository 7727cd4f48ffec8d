package server

import (
	"log/slog"
	"time"

	"github.com/dislog/dislog/authz"
)

// Option configures a Server.
type Option func(*options)

type options struct {
	dataDir              string
	listenAddr           string
	advertiseAddr        string
	adminAddr            string
	nodeID               string
	tls                  authz.TLSOptions
	policyFile           string
	policyReloadInterval time.Duration
	maxRecordBytes       int
	maxMessageBytes      int
	segmentBytes         int
	retentionInterval    time.Duration
	shutdownTimeout      time.Duration
	logger               *slog.Logger
}

// Defaults of the options.
const (
	DefaultListenAddr      = "127.0.0.1:7070"
	DefaultAdminAddr       = "127.0.0.1:7071"
	DefaultMaxRecordBytes  = 1 << 20
	DefaultMaxMessageBytes = 16 << 20
	DefaultSegmentBytes    = 64 << 20
	DefaultShutdownTimeout = 10 * time.Second
)

func defaultOptions() options {
	return options{
		listenAddr:        DefaultListenAddr,
		adminAddr:         DefaultAdminAddr,
		maxRecordBytes:    DefaultMaxRecordBytes,
		maxMessageBytes:   DefaultMaxMessageBytes,
		segmentBytes:      DefaultSegmentBytes,
		retentionInterval: time.Minute,
		shutdownTimeout:   DefaultShutdownTimeout,
	}
}

// WithDataDir is where the server keeps its topics (<dir>/topics) and consumer offsets
// (<dir>/offsets). Required.
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithListenAddr is the address the gRPC API listens on. Default DefaultListenAddr; port 0 picks a
// free port (see Server.Addr).
func WithListenAddr(addr string) Option { return func(o *options) { o.listenAddr = addr } }

// WithAdvertiseAddr is the address GetServers tells clients to dial. Default the listening address.
func WithAdvertiseAddr(addr string) Option { return func(o *options) { o.advertiseAddr = addr } }

// WithAdminAddr is the address of the HTTP admin server (/metrics, /debug/pprof/, /healthz).
// Default DefaultAdminAddr; the empty string turns it off. It is plain HTTP: keep it on loopback or
// a private network.
func WithAdminAddr(addr string) Option { return func(o *options) { o.adminAddr = addr } }

// WithNodeID names the server in GetServers. Default the host name.
func WithNodeID(id string) Option { return func(o *options) { o.nodeID = id } }

// WithTLS names the server's certificate, key and the CA bundle that client certificates must chain
// to (see authz.ServerTLSConfig). Required.
func WithTLS(files authz.TLSOptions) Option { return func(o *options) { o.tls = files } }

// WithPolicyFile is the ACL policy (see the authz package). Required: a server without one would
// deny everything. The file is watched and reloaded when it changes.
func WithPolicyFile(path string) Option { return func(o *options) { o.policyFile = path } }

// WithPolicyReloadInterval is how often the policy file is checked for changes. Default 1s.
func WithPolicyReloadInterval(d time.Duration) Option {
	return func(o *options) { o.policyReloadInterval = d }
}

// WithMaxRecordBytes is the largest record accepted, key and headers included. Default 1 MiB.
func WithMaxRecordBytes(n int) Option { return func(o *options) { o.maxRecordBytes = n } }

// WithMaxMessageBytes is the largest gRPC message the server receives or sends: it bounds a produce
// batch. Default 16 MiB; it must exceed the largest record.
func WithMaxMessageBytes(n int) Option { return func(o *options) { o.maxMessageBytes = n } }

// WithSegmentBytes is the size at which a topic's log starts a new segment file. Retention deletes
// whole segments. Default 64 MiB.
func WithSegmentBytes(n int) Option { return func(o *options) { o.segmentBytes = n } }

// WithRetentionInterval is how often retention runs on each topic. Default 1 minute.
func WithRetentionInterval(d time.Duration) Option {
	return func(o *options) { o.retentionInterval = d }
}

// WithShutdownTimeout bounds how long a shutdown waits for calls in flight before it cuts them.
// Default 10s.
func WithShutdownTimeout(d time.Duration) Option { return func(o *options) { o.shutdownTimeout = d } }

// WithLogger receives the server's structured logs. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

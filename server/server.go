// Package server is a Dislog server: the dislog.v1 LogService over topics stored in storelog and
// replicated with Raft (hashicorp/raft on raftlog), behind mutual TLS and an ACL, with gRPC health
// and reflection, and an HTTP admin port with Prometheus metrics and pprof.
//
//	srv, err := server.New(
//		server.WithDataDir("dislog-data"),
//		server.WithTLS(authz.TLSOptions{CAFile: "ca.pem", CertFile: "node.pem", KeyFile: "node-key.pem"}),
//		server.WithPolicyFile("policy.csv"),
//		server.WithSerfAddr("10.0.0.1:7946"), server.WithJoin("10.0.0.2:7946"), // to form a cluster
//	)
//	if err != nil { ... }
//	err = srv.Serve(ctx) // until ctx is canceled, then a graceful shutdown
//
// Every write (produce, topic changes, offset commits) is a command in the Raft log: a follower
// forwards it to the leader over the server-only dislog.peer.v1 service, the leader appends it, and
// it is acknowledged once a majority has fsynced it and the leader's FSM (internal/fsm) applied it
// to the topic's log. Reads are served from the local logs, which hold only committed records.
// Raft, gRPC and the peer service share one port (internal/mux); servers find each other with Serf
// (package discovery), and the leader adds and removes them from the Raft configuration.
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/dislog/dislog/authz"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/internal/acl"
	"github.com/dislog/dislog/server/internal/codec"
	"github.com/dislog/dislog/server/internal/mux"
	peerv1 "github.com/dislog/dislog/server/internal/peerapi/v1"
	"github.com/dislog/dislog/server/internal/refusal"
	"github.com/dislog/dislog/server/internal/rpc"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

// Server is one Dislog server. New opens its data and listens; Serve serves until its context ends.
type Server struct {
	opts    options
	log     *slog.Logger
	cluster *cluster
	mux     *mux.Mux
	acl     *authz.Authorizer
	// refusals counts and logs refused handshakes and denied calls.
	refusals *refusal.Recorder
	// shutdownStep names the step a shutdown is at.
	shutdownStep atomic.Pointer[string]

	grpc     *grpc.Server
	health   *health.Server
	lis      net.Listener
	admin    *http.Server
	adminLis net.Listener
	metrics  *prometheus.Registry

	stopping context.Context
	stop     context.CancelFunc
}

// New opens the data directory, loads the TLS files and the ACL policy, and listens on the API and
// admin addresses. Call Serve to serve, or Close to release it all without serving.
func New(opts ...Option) (_ *Server, err error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.nodeID == "" {
		if o.nodeID, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("server: node id: %w", err)
		}
	}
	o.raft = o.raft.withDefaults()
	if !o.bootstrap && len(o.join) == 0 && o.bootstrapExpect == 0 {
		o.bootstrap = true
	}
	s := &Server{opts: o, log: o.logger}
	s.stopping, s.stop = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			s.release()
		}
	}()

	tlsConf, err := authz.ServerTLSConfig(authz.TLSOptions{
		CAFile: o.tls.CAFile, CertFile: o.tls.CertFile, KeyFile: o.tls.KeyFile,
		OnReload: func(err error) { s.logReload("certificate", err) },
	})
	if err != nil {
		return nil, fmt.Errorf("server: TLS: %w", err)
	}
	// gRPC clients insist on ALPN h2; every handshake clones this configuration.
	tlsConf.NextProtos = []string{"h2"}
	if s.acl, err = authz.New(authz.Options{
		PolicyFile: o.policyFile, ReloadInterval: o.policyReloadInterval,
		OnReload: func(err error) { s.logReload("ACL policy", err) },
	}); err != nil {
		return nil, fmt.Errorf("server: ACL: %w", err)
	}
	if err := checkLayout(o.dataDir); err != nil {
		return nil, err
	}
	if s.lis, err = net.Listen("tcp", o.listenAddr); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if o.adminAddr != "" {
		if s.adminLis, err = net.Listen("tcp", o.adminAddr); err != nil {
			return nil, fmt.Errorf("server: admin: %w", err)
		}
	}
	advertise := o.advertiseAddr
	if advertise == "" {
		advertise = s.lis.Addr().String()
	}
	raftTLS, err := authz.ServerTLSConfig(authz.TLSOptions{CAFile: o.tls.CAFile, CertFile: o.tls.CertFile, KeyFile: o.tls.KeyFile})
	if err != nil {
		return nil, fmt.Errorf("server: TLS: %w", err)
	}
	peerTLS, err := authz.PeerTLSConfig(authz.TLSOptions{CAFile: o.tls.CAFile, CertFile: o.tls.CertFile, KeyFile: o.tls.KeyFile})
	if err != nil {
		return nil, fmt.Errorf("server: peer TLS: %w", err)
	}
	var source net.Addr // nil: the operating system chooses
	if o.peerSourceIP != "" {
		ip := net.ParseIP(o.peerSourceIP)
		if ip == nil {
			return nil, fmt.Errorf("server: peer source IP %q is not an IP address", o.peerSourceIP)
		}
		source = &net.TCPAddr{IP: ip}
	}
	s.refusals = refusal.New(s.log)
	s.mux = mux.New(s.lis, raftTLS, peerTLS, source, s.log, func(remote, subject string, err error) {
		reason, sub := refusal.Classify(err)
		if errors.Is(err, mux.ErrNotServer) {
			reason = refusal.ReasonNotServer
		}
		s.refusals.Handshake("Raft", remote, cmp.Or(subject, sub), reason, err)
	})
	if s.cluster, err = openCluster(&s.opts, s.log, s.mux, advertise, peerTLS, source); err != nil {
		return nil, err
	}

	interceptors := acl.New(s.acl, s.refusals.Denied)
	service := rpc.New(rpc.Config{
		Cluster: s.cluster, MaxRecordBytes: o.maxRecordBytes,
		Stopping: s.stopping, Visible: interceptors.Visible, Logger: s.log,
	})
	grpcMetrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	s.grpc = grpc.NewServer(
		grpc.Creds(s.refusals.Credentials(credentials.NewTLS(tlsConf))),
		grpc.MaxRecvMsgSize(o.maxMessageBytes),
		grpc.MaxSendMsgSize(o.maxMessageBytes),
		// Windows and buffers sized for streams of megabytes a second: gRPC's defaults (64 KiB windows,
		// 32 KiB buffers) stall a producer's pipeline on flow control and cost a syscall per 32 KiB.
		grpc.InitialWindowSize(streamWindowBytes),
		grpc.InitialConnWindowSize(connWindowBytes),
		grpc.WriteBufferSize(ioBufferBytes),
		grpc.ReadBufferSize(ioBufferBytes),
		// Clients ping a connection with calls in flight every 10 s to notice a server that stopped
		// answering (a frozen process); gRPC's default policy would answer such pings after 5 min
		// with GOAWAY "too many pings". Pings on an idle connection are allowed too, as cheap as
		// they are.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(grpcMetrics.UnaryServerInterceptor(), interceptors.Unary),
		grpc.ChainStreamInterceptor(grpcMetrics.StreamServerInterceptor(), interceptors.Stream),
	)
	dislogv1.RegisterLogServiceServer(s.grpc, service)
	peerv1.RegisterPeerServer(s.grpc, &peerService{c: s.cluster, svc: service})
	s.health = health.NewServer()
	s.setHealth()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	grpcMetrics.InitializeMetrics(s.grpc)

	s.metrics = prometheus.NewRegistry()
	s.metrics.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		grpcMetrics,
		partitionCollector{s.cluster},
	)
	s.metrics.MustRegister(service.Collectors()...)
	s.metrics.MustRegister(s.refusals.Collectors()...)
	if err := exportRaftMetrics(s.metrics); err != nil {
		return nil, fmt.Errorf("server: Raft metrics: %w", err)
	}
	if s.adminLis != nil {
		s.admin = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	}
	return s, nil
}

func (o *options) validate() error {
	switch {
	case o.dataDir == "":
		return errors.New("server: a data directory is required (WithDataDir)")
	case o.tls.CertFile == "" || o.tls.KeyFile == "" || o.tls.CAFile == "":
		return errors.New("server: TLS certificate, key and CA files are required (WithTLS)")
	case o.policyFile == "":
		return errors.New("server: an ACL policy file is required (WithPolicyFile)")
	case o.maxRecordBytes <= 0:
		return fmt.Errorf("server: max record bytes %d must be positive", o.maxRecordBytes)
	case o.segmentBytes <= 0 || o.segmentBytes >= 1<<32:
		return fmt.Errorf("server: segment bytes %d must be between 1 and 4 GiB", o.segmentBytes)
	case o.maxRecordBytes+codec.MaxFraming+storelogFrameBytes > o.segmentBytes:
		return fmt.Errorf("server: max record bytes %d does not fit in a %d-byte segment", o.maxRecordBytes, o.segmentBytes)
	case o.maxMessageBytes <= o.maxRecordBytes+codec.MaxFraming:
		return fmt.Errorf("server: max message bytes %d must exceed max record bytes %d", o.maxMessageBytes, o.maxRecordBytes)
	case o.shutdownTimeout <= 0:
		return fmt.Errorf("server: shutdown timeout %v must be positive", o.shutdownTimeout)
	}
	return nil
}

const (
	streamWindowBytes = 4 << 20
	connWindowBytes   = 16 << 20
	ioBufferBytes     = 256 << 10
)

// storelogFrameBytes is the per-record framing a storelog segment holds beside each value.
const storelogFrameBytes = 24

func (s *Server) logReload(what string, err error) {
	if err != nil {
		s.log.Error("reload failed; the old one stays in force", slog.String("what", what), slog.Any("error", err))
		return
	}
	s.log.Info("reloaded", slog.String("what", what))
}

// setHealth reports SERVING when a leader is known, NOT_SERVING otherwise.
func (s *Server) setHealth() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if _, addr := s.cluster.leader(); addr != "" {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(dislogv1.LogService_ServiceDesc.ServiceName, st)
}

// watchLeader keeps health in step with leadership until the server stops.
func (s *Server) watchLeader() {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.cluster.raft.RegisterObserver(obs)
	defer s.cluster.raft.DeregisterObserver(obs)
	s.setHealth()
	for {
		select {
		case <-s.stopping.Done():
			return
		case <-ch:
			s.setHealth()
		}
	}
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// SerfAddr is the address Serf gossips on, or "" for a server without Serf.
func (s *Server) SerfAddr() string { return s.cluster.serfAddr() }

// AdminAddr is the address of the HTTP admin server, or "" if it is off.
func (s *Server) AdminAddr() string {
	if s.adminLis == nil {
		return ""
	}
	return s.adminLis.Addr().String()
}

// Serve serves until ctx is canceled or serving fails, then shuts down: health turns NOT_SERVING,
// streams end with UNAVAILABLE, calls in flight get the shutdown timeout to finish, and the topics'
// logs are closed cleanly. It returns nil after a shutdown ctx asked for.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() { errc <- s.mux.Serve() }()
	go func() { errc <- s.grpc.Serve(s.mux.GRPC()) }()
	if s.admin != nil {
		go func() { errc <- s.admin.Serve(s.adminLis) }()
	}
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		s.watchLeader()
	}()
	defer func() { <-watching }()
	s.log.Info("serving", slog.String("node", s.opts.nodeID), slog.String("addr", s.Addr()),
		slog.String("admin", s.AdminAddr()), slog.String("data", s.opts.dataDir))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		serveErr = fmt.Errorf("server: serve: %w", serveErr)
	}
	return errors.Join(serveErr, s.shutdown())
}

// ErrShutdownTimeout is returned by Serve when the shutdown did not finish within the shutdown
// timeout: Serve returned anyway, and what was still stopping (Raft, the stores) goes on in the
// background. A process that exits then loses nothing acknowledged: every write was synced.
var ErrShutdownTimeout = errors.New("server: the shutdown did not finish within its timeout")

// Shares of the shutdown timeout that each step may use, counted from the start of the shutdown:
// leaving the cluster (a leadership transfer, a Serf leave) ends by leaveShare, calls in flight are
// cut at callsShare, and the admin server is closed by adminShare; releasing Raft and the stores
// has the rest.
const (
	leaveShare = 0.3
	callsShare = 0.6
	adminShare = 0.7
)

// shutdown stops serving and releases everything, within the shutdown timeout whatever the other
// servers do (they may be stopping at the same moment, so that no quorum is left to commit a
// leadership transfer or a configuration change). A leader first hands its leadership to another
// server, and every server leaves Serf, so the leader removes it from the Raft configuration.
func (s *Server) shutdown() error {
	start := time.Now()
	limit := s.opts.shutdownTimeout
	by := func(share float64) time.Time { return start.Add(time.Duration(share * float64(limit))) }
	s.log.Info("shutting down", slog.Duration("limit", limit))
	done := make(chan error, 1)
	go func() { done <- s.shutdownSteps(by) }()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case err := <-done:
		s.log.Info("stopped", slog.Duration("took", time.Since(start).Round(time.Millisecond)))
		return err
	case <-t.C:
		step := *s.shutdownStep.Load()
		s.log.Error("the shutdown did not finish within its timeout; returning without waiting for the rest (nothing acknowledged is lost)",
			slog.Duration("timeout", limit), slog.String("step", step))
		return fmt.Errorf("%w (at %s)", ErrShutdownTimeout, step)
	}
}

// shutdownSteps stops the server step by step, each step by its deadline.
func (s *Server) shutdownSteps(by func(share float64) time.Time) error {
	step := s.shutdownAt
	step("leave the cluster")
	s.health.Shutdown()
	// Membership changes stop first: a server that became leader during the shutdown (every
	// server stopping at once) must not wait on a removal no quorum is left to commit.
	s.cluster.stopMembership()
	if !within(by(leaveShare), s.cluster.leave) {
		s.log.Warn("leaving the cluster took too long; stopping without waiting for it")
	}
	s.stop()
	step("finish calls in flight")
	if !within(by(callsShare), s.grpc.GracefulStop) {
		s.log.Warn("calls still in flight at the shutdown's deadline for them; cutting them")
		s.grpc.Stop()
	}
	var err error
	step("close the admin server")
	if s.admin != nil {
		ctx, cancel := context.WithDeadline(context.Background(), by(adminShare))
		err = s.admin.Shutdown(ctx)
		cancel()
		if err != nil {
			s.admin.Close()
		}
	}
	return errors.Join(err, s.release())
}

// shutdownAt records the step a shutdown is at.
func (s *Server) shutdownAt(step string) { s.shutdownStep.Store(&step) }

// within runs f and waits for it until deadline; it reports whether f ended by then. A late f goes
// on in the background.
func within(deadline time.Time, f func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// Close releases a server that was never served.
func (s *Server) Close() error {
	s.grpc.Stop()
	if s.admin != nil {
		s.admin.Close()
	}
	return s.release()
}

// release stops Raft and closes the replicas, the listeners and the ACL watcher.
func (s *Server) release() error {
	var errs []error
	s.stop()
	if s.cluster != nil {
		errs = append(errs, s.cluster.close(s.shutdownAt))
	}
	s.shutdownAt("close the listeners")
	if s.mux != nil {
		s.mux.Close()
	}
	for _, l := range []net.Listener{s.lis, s.adminLis} {
		if l != nil {
			l.Close()
		}
	}
	if s.acl != nil {
		s.acl.Close()
	}
	return errors.Join(errs...)
}

// IsLeader reports whether this server leads its Raft cluster.
func (s *Server) IsLeader() bool { return s.cluster.raft.State() == raft.Leader }

// Voters is how many voters the server's Raft configuration holds.
func (s *Server) Voters() int { return s.cluster.voters() }

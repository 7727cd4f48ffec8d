// Package fakelog is a fake Dislog server, or cluster of servers, for the client's tests: the
// dislog.v1 LogService over topics of one or more partitions held in memory, served with mutual
// TLS on loopback ports, with a cluster leader and partition leaders that tests move,
// deduplication of produce requests per partition as the real cluster does it, and seams that
// refuse a produce request, break a stream or lose an answer, so the client's routing and its
// handling of failures can be tested without the real server (which depends on the client
// module). It can also answer as a server from before partitions (BeforePartitions).
package fakelog

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// Cluster is a running fake cluster: servers on loopback ports that share one set of topics, as
// the servers of a real cluster share replicated logs, with one cluster (controller) leader among
// them and a leader per partition. A partition's leader alone takes its produces; the others refuse
// them with the real server's not-leader answer (dislogv1.NotLeaderError: FAILED_PRECONDITION with
// reason NOT_LEADER). A topic made with AddTopic has one partition, on every server, led by the
// cluster's leader wherever it moves (as every topic was before partitions); a topic made with
// CreateTopic or AddPartitionedTopic has its partitions' replicas and leaders spread over the
// servers, and SetPartitionLeader moves them. Like the real cluster, it deduplicates produce
// requests by producer id, topic, partition and sequence.
type Cluster struct {
	// Servers are the cluster's servers; Servers[i] has ID "fake-<i>".
	Servers []*Server
	// ClientTLS dials any of them with a trusted client certificate.
	ClientTLS *tls.Config

	mu     sync.Mutex
	leader int // -1: none
	// term counts the leader changes, as Raft's term does.
	term   uint64
	topics map[string]*topic
	// grew is closed and replaced whenever a topic grows.
	grew chan struct{}
	// producers holds, per producer id, topic and partition, the batch appended last.
	producers map[producerKey]appended
	appends   int
	// offsets holds the consumer groups' committed offsets.
	offsets map[offsetKey]uint64
	// beforePartitions makes the servers answer as servers from before partitions.
	beforePartitions bool

	pem pemFiles
}

type producerKey struct {
	id        uint64
	topic     string
	partition int
}

type offsetKey struct {
	group, topic string
	partition    int
}

type appended struct {
	sequence, base uint64
}

// Server is one running fake server; Start and New run a cluster of one.
type Server struct {
	dislogv1.UnimplementedLogServiceServer

	// ID names it in GetServers.
	ID string
	// Addr is the host:port it listens on.
	Addr string
	// ClientTLS dials it with a trusted client certificate.
	ClientTLS *tls.Config

	c     *Cluster
	index int

	// Read and written under c.mu; see the setters.
	refuse      func(req *dislogv1.ProduceRequest) error
	breakStream func(sent int) error
	afterAppend func(req *dislogv1.ProduceRequest) Fault
	produceReqs int
	calls       map[string]int
	voter       bool
	closed      bool
	// frozen, when not nil, holds every call until it is closed (Freeze); held counts the calls
	// and stream requests it holds.
	frozen chan struct{}
	held   int

	grpc    *grpc.Server
	served  chan struct{}
	stopped sync.Once
}

type pemFiles struct{ ca, cert, key []byte }

// Fault is what a server does with a produce request once it has appended it.
type Fault int

const (
	// Answer acknowledges the request.
	Answer Fault = iota
	// LoseAnswer never answers it, as if the answer were lost: a stream goes on with the next
	// request, a Produce call waits for the caller to give up.
	LoseAnswer
	// Fail ends the call or stream with UNAVAILABLE, as a leader that dies after the commit.
	Fail
)

// Start serves a fake on 127.0.0.1 until the test ends: a cluster of one server, its leader.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New serves a fake on 127.0.0.1 until Close; Start is New for a test.
func New() (*Server, error) {
	c, err := NewCluster(1)
	if err != nil {
		return nil, err
	}
	return c.Servers[0], nil
}

// StartCluster serves a cluster of n servers on 127.0.0.1 until the test ends; Servers[0] leads.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c, err := NewCluster(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// NewCluster serves a cluster of n servers on 127.0.0.1 until Close; Servers[0] leads.
func NewCluster(n int) (*Cluster, error) {
	c := &Cluster{topics: map[string]*topic{}, grew: make(chan struct{}), producers: map[producerKey]appended{}, offsets: map[offsetKey]uint64{}}
	serverTLS, err := c.makeTLS()
	if err != nil {
		return nil, fmt.Errorf("fakelog: TLS: %w", err)
	}
	for i := range n {
		s := &Server{ID: fmt.Sprintf("fake-%d", i), ClientTLS: c.ClientTLS, c: c, index: i, calls: map[string]int{}, voter: true, served: make(chan struct{})}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("fakelog: listen: %w", err)
		}
		s.Addr = lis.Addr().String()
		s.grpc = grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)),
			grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				s.count(info.FullMethod)
				if err := s.waitThawed(ctx); err != nil {
					return nil, err
				}
				return h(ctx, req)
			}),
			grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				s.count(info.FullMethod)
				if err := s.waitThawed(ss.Context()); err != nil {
					return err
				}
				return h(srv, ss)
			}))
		dislogv1.RegisterLogServiceServer(s.grpc, s)
		go func() {
			defer close(s.served)
			_ = s.grpc.Serve(lis)
		}()
		c.Servers = append(c.Servers, s)
	}
	return c, nil
}

// Close stops every server.
func (c *Cluster) Close() {
	for _, s := range c.Servers {
		s.Close()
	}
}

// Target is the cluster as a client's target: "dislog:///" and the addresses of the servers
// numbered in seeds, or of all of them if none is.
func (c *Cluster) Target(seeds ...int) string {
	if len(seeds) == 0 {
		for i := range c.Servers {
			seeds = append(seeds, i)
		}
	}
	addrs := make([]string, len(seeds))
	for i, n := range seeds {
		addrs[i] = c.Servers[n].Addr
	}
	return "dislog:///" + strings.Join(addrs, ",")
}

// SetLeader makes Servers[i] the leader; -1 leaves the cluster without one, as during an election.
// Each call starts a new term.
func (c *Cluster) SetLeader(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = i
	c.term++
}

// Leader returns the index of the leader, -1 if none.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// SetVoter sets whether Servers[i] is a voter, as GetServers tells.
func (c *Cluster) SetVoter(i int, voter bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Servers[i].voter = voter
}

// Appends counts the batches appended, over all servers; a duplicate is not appended.
func (c *Cluster) Appends() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.appends
}

// Close stops the server, cutting the calls in progress. The others still list it, as a real
// cluster lists a dead server until it is removed.
func (s *Server) Close() {
	s.stopped.Do(func() {
		s.c.mu.Lock()
		s.closed = true
		s.c.mu.Unlock()
		s.grpc.Stop()
		<-s.served
	})
}

// Freeze makes the server hold every call it receives, GetServers too, until thaw is called, as a
// process stopped with SIGSTOP whose connections stay open. A frozen server does not answer for the
// cluster: the others do (set a new leader with SetLeader).
func (s *Server) Freeze() (thaw func()) {
	ch := make(chan struct{})
	s.c.mu.Lock()
	s.frozen = ch
	s.c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.c.mu.Lock()
			s.frozen = nil
			s.c.mu.Unlock()
			close(ch)
		})
	}
}

// Held counts the calls and stream requests the frozen server holds.
func (s *Server) Held() int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.held
}

// waitThawed holds a call while the server is frozen.
func (s *Server) waitThawed(ctx context.Context) error {
	s.c.mu.Lock()
	ch := s.frozen
	if ch != nil {
		s.held++
	}
	s.c.mu.Unlock()
	if ch == nil {
		return nil
	}
	defer func() {
		s.c.mu.Lock()
		s.held--
		s.c.mu.Unlock()
	}()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// Cluster returns the cluster the server is part of.
func (s *Server) Cluster() *Cluster { return s.c }

// Calls counts the calls of a method ("Produce", "ConsumeStream", ...) the server received.
func (s *Server) Calls(method string) int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.calls[method]
}

func (s *Server) count(fullMethod string) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.calls[fullMethod[strings.LastIndex(fullMethod, "/")+1:]]++
}

// WriteTLSFiles writes the CA, client certificate and key as PEM files ca.pem, <name>.pem and
// <name>-key.pem in dir, the layout of a dev node's client files. Every server of a cluster has
// the same CA.
func (s *Server) WriteTLSFiles(t testing.TB, dir, name string) (ca, cert, key string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	for path, b := range map[string][]byte{ca: s.c.pem.ca, cert: s.c.pem.cert, key: s.c.pem.key} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca, cert, key
}

// Refuse makes f decide, before each produce request is written, whether the server refuses it
// with the status f returns. A nil f accepts everything.
func (s *Server) Refuse(f func(req *dislogv1.ProduceRequest) error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.refuse = f
}

// BreakStreams makes f decide, before each ConsumeStream response and each ProduceStream answer,
// whether the stream ends with the error f returns; sent is how many records (ConsumeStream) or
// answers (ProduceStream) the stream sent so far. A nil f breaks nothing.
func (s *Server) BreakStreams(f func(sent int) error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.breakStream = f
}

// AfterAppend makes f decide what the server does with each produce request it has appended (not
// with a duplicate). f runs without the cluster's lock, so it may call SetLeader. A nil f answers
// every request.
func (s *Server) AfterAppend(f func(req *dislogv1.ProduceRequest) Fault) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.afterAppend = f
}

// ProduceRequests counts the produce requests received, over both calls.
func (s *Server) ProduceRequests() int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.produceReqs
}

// Records returns a copy of the records of a topic's partition 0.
func (s *Server) Records(name string) []*dislogv1.Record { return s.c.Records(name) }

// AddTopic creates an empty topic of one partition (see Cluster.AddTopic).
func (s *Server) AddTopic(name string) { s.c.AddTopic(name) }

func (c *Cluster) makeTLS() (*tls.Config, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fakelog CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (tls.Certificate, []byte, []byte, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return tls.Certificate{}, nil, nil, err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return tls.Certificate{}, nil, nil, err
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		return c, certPEM, keyPEM, err
	}
	serverCert, _, _, err := leaf(2, "fake", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	clientCert, certPEM, keyPEM, err := leaf(3, "dev", x509.ExtKeyUsageClientAuth, nil)
	if err != nil {
		return nil, err
	}
	c.pem = pemFiles{ca: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), cert: certPEM, key: keyPEM}
	c.ClientTLS = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{clientCert}}
	return &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{serverCert},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
	}, nil
}

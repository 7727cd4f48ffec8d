// Package fakelog is a fake Dislog server for the client's tests: the dislog.v1 LogService over
// topics held in memory, served with mutual TLS on a loopback port, with seams that refuse a produce
// request or break a stream, so the producer's and the subscription's handling of failures can be
// tested without the real server (which depends on the client module).
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
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Server is a running fake.
type Server struct {
	dislogv1.UnimplementedLogServiceServer

	// Addr is the host:port it listens on.
	Addr string
	// ClientTLS dials it with a trusted client certificate.
	ClientTLS *tls.Config

	mu     sync.Mutex
	topics map[string]*topic
	// grew is closed and replaced whenever a topic grows.
	grew chan struct{}

	// Hooks, read under mu; see the setters.
	refuse      func(req *dislogv1.ProduceRequest) error
	breakStream func(sent int) error
	produceReqs int

	pem    pemFiles
	grpc   *grpc.Server
	served chan struct{}
}

type topic struct {
	records []*dislogv1.Record
}

type pemFiles struct{ ca, cert, key []byte }

// Start serves a fake on 127.0.0.1 until the test ends.
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
	s := &Server{topics: map[string]*topic{}, grew: make(chan struct{}), served: make(chan struct{})}
	serverTLS, err := s.makeTLS()
	if err != nil {
		return nil, fmt.Errorf("fakelog: TLS: %w", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakelog: listen: %w", err)
	}
	s.Addr = lis.Addr().String()
	s.grpc = grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)))
	dislogv1.RegisterLogServiceServer(s.grpc, s)
	go func() {
		defer close(s.served)
		_ = s.grpc.Serve(lis)
	}()
	return s, nil
}

// Close stops the server, cutting the calls in progress.
func (s *Server) Close() {
	s.grpc.Stop()
	<-s.served
}

// WriteTLSFiles writes the CA, client certificate and key as PEM files ca.pem, <name>.pem and
// <name>-key.pem in dir, the layout of a dev node's client files.
func (s *Server) WriteTLSFiles(t testing.TB, dir, name string) (ca, cert, key string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	for path, b := range map[string][]byte{ca: s.pem.ca, cert: s.pem.cert, key: s.pem.key} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca, cert, key
}

// Refuse makes f decide, before each produce request is written, whether the server refuses it
// with the status f returns. A nil f accepts everything.
func (s *Server) Refuse(f func(req *dislogv1.ProduceRequest) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = f
}

// BreakStreams makes f decide, before each ConsumeStream response and each ProduceStream answer,
// whether the stream ends with the error f returns; sent is how many records (ConsumeStream) or
// answers (ProduceStream) the stream sent so far. A nil f breaks nothing.
func (s *Server) BreakStreams(f func(sent int) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.breakStream = f
}

// ProduceRequests counts the produce requests received, over both calls.
func (s *Server) ProduceRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.produceReqs
}

// Records returns a copy of a topic's records.
func (s *Server) Records(name string) []*dislogv1.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[name]
	if t == nil {
		return nil
	}
	return append([]*dislogv1.Record(nil), t.records...)
}

// AddTopic creates an empty topic.
func (s *Server) AddTopic(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.topics[name] == nil {
		s.topics[name] = &topic{}
	}
}

func (s *Server) shouldBreak(sent int) error {
	s.mu.Lock()
	f := s.breakStream
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(sent)
}

func (s *Server) append(req *dislogv1.ProduceRequest) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.produceReqs++
	if s.refuse != nil {
		if err := s.refuse(req); err != nil {
			return 0, err
		}
	}
	t := s.topics[req.GetTopic()]
	if t == nil {
		return 0, status.Errorf(codes.NotFound, "topic %q does not exist; create it with CreateTopic", req.GetTopic())
	}
	if len(req.GetRecords()) == 0 {
		return 0, status.Error(codes.InvalidArgument, "empty batch")
	}
	base := uint64(len(t.records))
	now := time.Now()
	for i, r := range req.GetRecords() {
		r := proto.Clone(r).(*dislogv1.Record)
		r.Offset = base + uint64(i)
		r.AppendTime = timestamppb.New(now)
		t.records = append(t.records, r)
	}
	close(s.grew)
	s.grew = make(chan struct{})
	return base, nil
}

// Produce appends a batch.
func (s *Server) Produce(_ context.Context, req *dislogv1.ProduceRequest) (*dislogv1.ProduceResponse, error) {
	base, err := s.append(req)
	if err != nil {
		return nil, err
	}
	return &dislogv1.ProduceResponse{BaseOffset: base}, nil
}

// Consume reads one record.
func (s *Server) Consume(_ context.Context, req *dislogv1.ConsumeRequest) (*dislogv1.ConsumeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[req.GetTopic()]
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "topic %q does not exist", req.GetTopic())
	}
	if req.GetOffset() >= uint64(len(t.records)) {
		return nil, status.Errorf(codes.OutOfRange, "offset %d is past the end", req.GetOffset())
	}
	return &dislogv1.ConsumeResponse{Record: t.records[req.GetOffset()]}, nil
}

// ProduceStream appends each request in order and answers it, ending at the first refusal.
func (s *Server) ProduceStream(stream dislogv1.LogService_ProduceStreamServer) error {
	for answered := 0; ; answered++ {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.shouldBreak(answered); err != nil {
			return err
		}
		base, err := s.append(req)
		if err != nil {
			return err
		}
		if err := stream.Send(&dislogv1.ProduceResponse{BaseOffset: base}); err != nil {
			return err
		}
	}
}

// ConsumeStream sends records from the start the request names, one or more per response, and
// with follow waits for more.
func (s *Server) ConsumeStream(req *dislogv1.ConsumeStreamRequest, stream dislogv1.LogService_ConsumeStreamServer) error {
	s.mu.Lock()
	t := s.topics[req.GetTopic()]
	var off uint64
	if t != nil {
		switch start := req.GetStart().(type) {
		case *dislogv1.ConsumeStreamRequest_Offset:
			off = start.Offset
		case *dislogv1.ConsumeStreamRequest_Time:
			at := start.Time.AsTime()
			off = uint64(sort.Search(len(t.records), func(i int) bool { return !t.records[i].AppendTime.AsTime().Before(at) }))
		case *dislogv1.ConsumeStreamRequest_Position:
			if start.Position == dislogv1.StartPosition_START_POSITION_LATEST {
				off = uint64(len(t.records))
			}
		}
	}
	s.mu.Unlock()
	if t == nil {
		return status.Errorf(codes.NotFound, "topic %q does not exist", req.GetTopic())
	}
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	sent := 0
	for {
		s.mu.Lock()
		if off > uint64(len(t.records)) {
			s.mu.Unlock()
			return status.Errorf(codes.OutOfRange, "offset %d is past the end", off)
		}
		recs, grew := t.records[off:], s.grew
		if len(recs) > 3 {
			recs = recs[:3]
		}
		s.mu.Unlock()
		if len(recs) == 0 {
			if !req.GetFollow() {
				return nil
			}
			select {
			case <-grew:
				continue
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		if err := s.shouldBreak(sent); err != nil {
			return err
		}
		if err := stream.Send(&dislogv1.ConsumeStreamResponse{Records: recs}); err != nil {
			return err
		}
		off += uint64(len(recs))
		sent += len(recs)
	}
}

// CreateTopic creates a topic.
func (s *Server) CreateTopic(_ context.Context, req *dislogv1.CreateTopicRequest) (*dislogv1.CreateTopicResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.topics[req.GetTopic()] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "topic %q already exists", req.GetTopic())
	}
	s.topics[req.GetTopic()] = &topic{}
	return &dislogv1.CreateTopicResponse{Topic: s.infoLocked(req.GetTopic())}, nil
}

// DescribeTopic describes a topic.
func (s *Server) DescribeTopic(_ context.Context, req *dislogv1.DescribeTopicRequest) (*dislogv1.DescribeTopicResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.topics[req.GetTopic()] == nil {
		return nil, status.Errorf(codes.NotFound, "topic %q does not exist", req.GetTopic())
	}
	return &dislogv1.DescribeTopicResponse{Topic: s.infoLocked(req.GetTopic())}, nil
}

func (s *Server) infoLocked(name string) *dislogv1.TopicInfo {
	n := uint64(len(s.topics[name].records))
	return &dislogv1.TopicInfo{Topic: name, Config: &dislogv1.TopicConfig{}, NextOffset: n, Segments: 1}
}

func (s *Server) makeTLS() (*tls.Config, error) {
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
	s.pem = pemFiles{ca: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), cert: certPEM, key: keyPEM}
	s.ClientTLS = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{clientCert}}
	return &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{serverCert},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
	}, nil
}

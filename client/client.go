package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"strings"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/client/internal/cluster"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ErrNoTLS is returned by Dial without WithTLSFiles or WithTLSConfig: Dislog speaks TLS only.
var ErrNoTLS = errors.New("client: no TLS configuration: pass WithTLSFiles or WithTLSConfig")

const (
	streamWindowBytes = 4 << 20
	connWindowBytes   = 16 << 20
	ioBufferBytes     = 256 << 10
)

// Option configures Dial.
type Option func(*options)

type options struct {
	tlsFiles       *tlsFiles
	tlsConfig      *tls.Config
	dialOptions    []grpc.DialOption
	refresh        time.Duration
	produceRetries int
}

type tlsFiles struct{ ca, cert, key string }

// WithTLSFiles dials with the client certificate and key in certFile and keyFile (PEM), trusting the
// CA certificates in caFile. The certificate's common name is the subject the server's ACL checks.
func WithTLSFiles(caFile, certFile, keyFile string) Option {
	return func(o *options) { o.tlsFiles = &tlsFiles{caFile, certFile, keyFile} }
}

// WithTLSConfig dials with conf, for certificates that are not in files. It replaces WithTLSFiles.
func WithTLSConfig(conf *tls.Config) Option {
	return func(o *options) { o.tlsConfig = conf }
}

// WithDialOptions adds gRPC dial options (interceptors, keepalive, a resolver).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// WithRefresh sets how often a client of a "dislog:///" target asks the cluster for its servers
// when nothing goes wrong (a failed call or connection makes it ask at once). Default 5 s.
func WithRefresh(interval time.Duration) Option {
	return func(o *options) { o.refresh = interval }
}

// WithProduceRetries sets how many times Produce and ProduceBatch send a batch again after a
// failure that leaves its outcome unknown (the connection or the leader failed) or a refusal by a
// server that is not the leader. 0 turns the retries off. Default DefaultMaxRetries; the call's
// context bounds them too.
func WithProduceRetries(n int) Option {
	return func(o *options) { o.produceRetries = max(n, 0) }
}

// Client is a connection to a Dislog server or cluster. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	api  dislogv1.LogServiceClient

	produceRetries int
	lanes          lanePool
	// leader follows the cluster's leader for a "dislog:///" target; nil for one server.
	leader *cluster.Leader
	// routes are the topics' partitions and their leaders, for routing calls by partition.
	routes *routeCache
}

// Dial returns a client of target. It does not wait for a connection: the first call does, and
// reports what went wrong.
//
// A target "dislog:///host1:port,host2:port" is a cluster: the client asks one of those servers
// for the others (GetServers), connects to all of them, sends produces to the leader and spreads
// consumes over the followers, and follows the cluster as servers come, go and lead (WithRefresh).
// Any other target ("host:port", or any gRPC target) is one server, which takes every call.
func Dial(target string, opts ...Option) (*Client, error) {
	o := options{produceRetries: DefaultMaxRetries}
	for _, opt := range opts {
		opt(&o)
	}
	conf := o.tlsConfig
	if conf == nil && o.tlsFiles != nil {
		var err error
		if conf, err = loadTLS(*o.tlsFiles); err != nil {
			return nil, err
		}
	}
	if conf == nil {
		return nil, ErrNoTLS
	}
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(conf)),
		// Windows and buffers sized for streams of megabytes a second (a replay, a pipelined
		// producer): gRPC's 64 KiB windows and 32 KiB buffers stall them. WithDialOptions may override.
		grpc.WithInitialWindowSize(streamWindowBytes),
		grpc.WithInitialConnWindowSize(connWindowBytes),
		grpc.WithWriteBufferSize(ioBufferBytes),
		grpc.WithReadBufferSize(ioBufferBytes),
		// A server that comes back is reconnected to within about 0.6 s, whatever the outage
		// lasted; gRPC's default backoff grows to 120 s.
		grpc.WithConnectParams(cluster.ConnectParams()),
		// A server that stops answering while its connection stays open (a frozen process, a
		// dropped route) is given up on after keepaliveTime+keepaliveTimeout of silence on a
		// connection with calls in flight, rather than never; the server permits pings this often.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
	}, o.dialOptions...)
	var leader *cluster.Leader
	if isClusterTarget(target) {
		if _, err := clusterSeeds(target); err != nil {
			return nil, fmt.Errorf("client: dial %s: %w", target, err)
		}
		leader = cluster.NewLeader()
		dialOpts = append(dialOpts,
			grpc.WithResolvers(cluster.NewResolverBuilder(o.refresh, leader)),
			grpc.WithDefaultServiceConfig(cluster.ServiceConfig))
	}
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", target, err)
	}
	c := &Client{conn: conn, api: dislogv1.NewLogServiceClient(conn), produceRetries: o.produceRetries, leader: leader}
	c.routes = newRouteCache(c, o.refresh)
	return c, nil
}

// Keepalive of the client's connections: gRPC's minimum ping interval, and a timeout that a
// server busy with fsyncs still answers within.
const (
	keepaliveTime    = 10 * time.Second
	keepaliveTimeout = 5 * time.Second
)

func isClusterTarget(target string) bool {
	return strings.HasPrefix(strings.ToLower(target), cluster.Scheme+":")
}

// clusterSeeds returns the addresses of a "dislog:///host1:port,host2:port" target.
func clusterSeeds(target string) ([]string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	endpoint := strings.TrimPrefix(u.Path, "/")
	if endpoint == "" {
		endpoint = u.Opaque
	}
	return cluster.ParseSeeds(endpoint)
}

// loadTLS builds a TLS 1.3 configuration from PEM files.
func loadTLS(f tlsFiles) (*tls.Config, error) {
	caPEM, err := os.ReadFile(f.ca)
	if err != nil {
		return nil, fmt.Errorf("client: read CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("client: %s holds no PEM certificate", f.ca)
	}
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("client: load certificate: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, Certificates: []tls.Certificate{cert}}, nil
}

// Close closes the connection. Calls in progress fail with codes.Canceled.
func (c *Client) Close() error { return c.conn.Close() }

// closed reports whether Close was called: a produce is not retried then.
func (c *Client) closed() bool { return c.conn.GetState() == connectivity.Shutdown }

// API returns the generated stub on the client's connection, for the streaming calls
// (ProduceStream, ConsumeStream) and anything Client does not wrap.
func (c *Client) API() dislogv1.LogServiceClient { return c.api }

// Produce appends one record to topic and returns its offset once it is durable. It retries as
// ProduceBatch does, and goes to the partition ProduceBatch chooses.
func (c *Client) Produce(ctx context.Context, topic string, rec Record) (uint64, error) {
	return c.ProduceBatch(ctx, topic, []Record{rec})
}

// ProduceBatch appends records to topic in one call and returns the offset of the first; record i
// gets the returned offset + i. Nothing of a batch the server refuses is written.
//
// The batch goes to one partition: for a topic of several, the partition of the first record's
// key (KeyPartition), or partition 0 if it has none, as the server would choose; ProduceTo names
// the partition, and Producer spreads records over partitions. Offsets are per partition.
//
// The batch carries a producer id and sequence number, and when the connection or the leader
// fails before the answer arrives, ProduceBatch sends it again, with backoff, up to
// WithProduceRetries times while ctx lasts: the cluster writes it once, however many times it
// arrives. If the retries run out, the error wraps ErrUnknownOutcome and the last failure's
// status.
//
// A call with a deadline waits for a server that is down to come back, up to the deadline,
// rather than spend its retries failing in the client; the client reconnects within about 0.6 s
// of the server serving again. On a cluster, a call that waits on a leader longer than
// the cluster usually answers makes the client ask every server who leads, and if another server
// leads now (the old leader is frozen, or cut off), the batch goes there at once: the wait on a
// frozen leader costs an election, as a dead one does.
func (c *Client) ProduceBatch(ctx context.Context, topic string, recs []Record) (uint64, error) {
	return c.produce(ctx, topic, -1, recs)
}

// ProduceTo appends records to a partition of topic in one call, as ProduceBatch does, and
// returns the offset of the first in that partition. A partition the topic does not have is
// refused with codes.InvalidArgument.
func (c *Client) ProduceTo(ctx context.Context, topic string, partition int, recs []Record) (uint64, error) {
	if err := checkPartition(partition); err != nil {
		return 0, err
	}
	return c.produce(ctx, topic, partition, recs)
}

// checkPartition refuses a partition no topic can have.
func checkPartition(partition int) error {
	if partition < 0 || partition >= maxPartitions {
		return status.Errorf(codes.InvalidArgument, "client: partition %d is out of range: want 0 to %d", partition, maxPartitions-1)
	}
	return nil
}

// maxPartitions bounds a topic's partition count, as the server does.
const maxPartitions = 1024

// produce sends a batch to partition, or, if partition is negative, to the one the server would
// choose, and retries it as ProduceBatch says.
func (c *Client) produce(ctx context.Context, topic string, partition int, recs []Record) (uint64, error) {
	req := &dislogv1.ProduceRequest{Topic: topic, Records: make([]*dislogv1.Record, len(recs))}
	for i := range recs {
		req.Records[i] = recs[i].proto()
	}
	// A topic the client cannot describe (a server from before partitions, an ACL that allows
	// produces only) is produced to as before partitions: the cluster leader chooses.
	routes, _ := c.routes.get(ctx, topic, "")
	if partition < 0 && routes.known() {
		partition = 0
		if n := routes.count(); n > 1 && len(recs) > 0 && len(recs[0].Key) > 0 {
			partition = KeyPartition(recs[0].Key, n)
		}
	}
	if partition >= 0 {
		req.Partition = proto.Uint32(uint32(partition))
	}
	l := c.lanes.get()
	l.stamp(req)
	backoff := minRetryBackoff
	for attempt := 0; ; attempt++ {
		resp, err := c.produceOnce(ctx, req, routes)
		if err == nil {
			c.lanes.put(l)
			return resp.GetBaseOffset(), nil
		}
		// From here on the lane is dropped, not put back: see lane.
		if !retryable(err) {
			return 0, err
		}
		if req.Partition != nil && !errors.Is(err, errLeaderMoved) {
			// The partition's leader refused it, or failed: ask who leads it now.
			c.routes.invalidate(topic)
		}
		if attempt >= c.produceRetries || ctx.Err() != nil || c.closed() {
			return 0, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
		}
		if req.Partition != nil {
			routes, _ = c.routes.get(ctx, topic, routes.leader(partition))
		}
		if errors.Is(err, errLeaderMoved) {
			// The new leader is known and connected: no reason to wait.
			continue
		}
		if !sleep(ctx, backoff) {
			return 0, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
		}
		backoff = min(2*backoff, maxRetryBackoff)
	}
}

// attemptTimeout bounds one produce attempt of a call without a deadline, as the server bounds
// its own wait for Raft: an attempt waits for an election to end, not for ever.
const attemptTimeout = 10 * time.Second

func (c *Client) produceOnce(ctx context.Context, req *dislogv1.ProduceRequest, routes *topicRoutes) (*dislogv1.ProduceResponse, error) {
	// A call with a deadline waits for a server that is down or reconnecting until it serves
	// (WaitForReady), as long as the caller allowed; the balancer still fails it at once when a
	// cluster's leader is unreachable, to find another. A call without one fails such an attempt
	// at once and retries, so that its retries, not a wait per attempt, bound it (about 10 s).
	var callOpts []grpc.CallOption
	if _, ok := ctx.Deadline(); ok {
		callOpts = append(callOpts, grpc.WaitForReady(true))
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
	}
	if c.leader == nil {
		return c.api.Produce(ctx, req, callOpts...)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// During a partition's election (no leader known), the call goes by the cluster's roles, as
	// before partitions, and its answer makes the client ask again.
	if route, ok := routes.route(int(req.GetPartition())); ok && req.Partition != nil && route.Leader != "" {
		ctx = cluster.WithRoute(ctx, route)
		go c.followPartitionLeader(ctx, req.GetTopic(), int(req.GetPartition()), route.Leader, cancel)
	} else {
		go followLeader(ctx, c.leader, cancel)
	}
	resp, err := c.api.Produce(ctx, req, callOpts...)
	if err != nil && errors.Is(context.Cause(ctx), errLeaderMoved) {
		return nil, errLeaderMoved
	}
	return resp, err
}

// Consume reads the record at offset in partition 0 of topic. On a cluster it reads from a
// follower, which waits for a record the cluster has committed but it has not replicated yet, so
// a record produced and acknowledged is always there to read.
func (c *Client) Consume(ctx context.Context, topic string, offset uint64) (Record, error) {
	return c.ConsumePartition(ctx, topic, 0, offset)
}

// ConsumePartition reads the record at offset in a partition of topic, from one of the
// partition's in-sync replicas, a follower when one is up, as Consume does.
func (c *Client) ConsumePartition(ctx context.Context, topic string, partition int, offset uint64) (Record, error) {
	if err := checkPartition(partition); err != nil {
		return Record{}, err
	}
	resp, err := c.api.Consume(c.readRoute(ctx, topic, partition),
		&dislogv1.ConsumeRequest{Topic: topic, Partition: uint32(partition), Offset: offset, ReadYourWrites: true})
	if err != nil {
		return Record{}, err
	}
	rec := RecordFromProto(resp.GetRecord())
	rec.Partition = partition
	return rec, nil
}

// readRoute returns ctx routed to a replica of the partition, on a cluster whose topic
// description the client has or can get; ctx itself otherwise.
func (c *Client) readRoute(ctx context.Context, topic string, partition int) context.Context {
	if c.leader == nil {
		return ctx
	}
	routes, _ := c.routes.get(ctx, topic, "")
	if route, ok := routes.route(partition); ok {
		return cluster.WithRoute(ctx, route)
	}
	return ctx
}

// CreateTopic creates an empty topic with the given retention, of conf.Partitions partitions
// (default 1), each on conf.ReplicationFactor servers (default: the cluster's, 3 on a cluster of
// three servers or more, else 1).
func (c *Client) CreateTopic(ctx context.Context, topic string, conf TopicConfig) (TopicInfo, error) {
	if conf.Partitions < 0 || uint64(conf.Partitions) > math.MaxUint32 || conf.ReplicationFactor < 0 || uint64(conf.ReplicationFactor) > math.MaxUint32 {
		return TopicInfo{}, status.Errorf(codes.InvalidArgument, "client: topic %q: %d partitions, replication factor %d: want 1 to %d partitions and a replication factor of 1, 3 or 5",
			topic, conf.Partitions, conf.ReplicationFactor, maxPartitions)
	}
	req := &dislogv1.CreateTopicRequest{Topic: topic, Config: &dislogv1.TopicConfig{RetentionBytes: conf.RetentionBytes}}
	if conf.Partitions > 0 {
		req.Partitions = proto.Uint32(uint32(conf.Partitions))
	}
	if conf.ReplicationFactor > 0 {
		req.ReplicationFactor = proto.Uint32(uint32(conf.ReplicationFactor))
	}
	if conf.RetentionAge > 0 {
		req.Config.RetentionAge = durationpb.New(conf.RetentionAge)
	}
	resp, err := c.api.CreateTopic(ctx, req)
	if err != nil {
		return TopicInfo{}, err
	}
	return topicInfoFromProto(resp.GetTopic()), nil
}

// DeleteTopic deletes a topic with its records and the offsets consumer groups committed on it.
func (c *Client) DeleteTopic(ctx context.Context, topic string) error {
	_, err := c.api.DeleteTopic(ctx, &dislogv1.DeleteTopicRequest{Topic: topic})
	return err
}

// DescribeTopic returns a topic's configuration, offsets and size, and its partitions with their
// leaders, replicas and offsets. The client routes its calls of the topic by the answer too.
func (c *Client) DescribeTopic(ctx context.Context, topic string) (TopicInfo, error) {
	resp, err := c.api.DescribeTopic(ctx, &dislogv1.DescribeTopicRequest{Topic: topic})
	if err != nil {
		return TopicInfo{}, err
	}
	c.routes.learn(resp.GetTopic(), c.routes.epoch())
	return topicInfoFromProto(resp.GetTopic()), nil
}

// ListTopics lists, sorted by name, the topics the caller may use.
func (c *Client) ListTopics(ctx context.Context) ([]TopicInfo, error) {
	resp, err := c.api.ListTopics(ctx, &dislogv1.ListTopicsRequest{})
	if err != nil {
		return nil, err
	}
	infos := make([]TopicInfo, len(resp.GetTopics()))
	for i, t := range resp.GetTopics() {
		infos[i] = topicInfoFromProto(t)
	}
	return infos, nil
}

// CommitOffset records that group will next read offset on partition 0 of topic.
func (c *Client) CommitOffset(ctx context.Context, group, topic string, offset uint64) error {
	return c.CommitPartitionOffset(ctx, group, topic, 0, offset)
}

// CommitPartitionOffset records that group will next read offset on a partition of topic: a
// group's offsets are per partition.
func (c *Client) CommitPartitionOffset(ctx context.Context, group, topic string, partition int, offset uint64) error {
	if err := checkPartition(partition); err != nil {
		return err
	}
	_, err := c.api.CommitOffset(ctx, &dislogv1.CommitOffsetRequest{Group: group, Topic: topic, Partition: uint32(partition), Offset: offset})
	return err
}

// FetchOffset returns the offset group committed on partition 0 of topic; ok is false if it
// committed none. The answer is the last commit the cluster acknowledged before the call,
// whichever server answers.
func (c *Client) FetchOffset(ctx context.Context, group, topic string) (offset uint64, ok bool, err error) {
	return c.FetchPartitionOffset(ctx, group, topic, 0)
}

// FetchPartitionOffset returns the offset group committed on a partition of topic, as
// FetchOffset does.
func (c *Client) FetchPartitionOffset(ctx context.Context, group, topic string, partition int) (offset uint64, ok bool, err error) {
	if err := checkPartition(partition); err != nil {
		return 0, false, err
	}
	resp, err := c.api.FetchOffset(ctx, &dislogv1.FetchOffsetRequest{Group: group, Topic: topic, Partition: uint32(partition)})
	if err != nil {
		return 0, false, err
	}
	return resp.GetOffset(), resp.GetCommitted(), nil
}

// Server is one server of the cluster.
type Server struct {
	ID      string
	RPCAddr string
	// IsLeader is set for the server that takes produces.
	IsLeader bool
	// IsVoter is set for a server that votes and counts toward commits; a server catching up
	// joins as a non-voter first.
	IsVoter bool
	// LastIndex is the last Raft log index the server has, as the answering server last heard.
	LastIndex uint64
}

// GetServers lists the servers of the cluster.
func (c *Client) GetServers(ctx context.Context) ([]Server, error) {
	resp, err := c.api.GetServers(ctx, &dislogv1.GetServersRequest{})
	if err != nil {
		return nil, err
	}
	servers := make([]Server, len(resp.GetServers()))
	for i, s := range resp.GetServers() {
		servers[i] = Server{ID: s.GetId(), RPCAddr: s.GetRpcAddr(), IsLeader: s.GetIsLeader(), IsVoter: s.GetIsVoter(), LastIndex: s.GetLastIndex()}
	}
	return servers, nil
}

package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/authz/authztest"
	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server"
	"github.com/dislog/dislog/server/servertest"
	"github.com/matryer/is"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestProduceAndConsumeOneRecordAndABatch(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	c := n.Client(t, "alice")
	_, err := c.CreateTopic(ctx, "orders", client.TopicConfig{})
	is.NoErr(err)

	before := time.Now()
	off, err := c.Produce(ctx, "orders", client.Record{Key: []byte("o-1"), Value: []byte("paid"),
		Headers: []client.Header{{Key: "trace", Value: []byte("t1")}, {Key: "trace", Value: []byte("t2")}}})
	is.NoErr(err)
	is.Equal(off, uint64(0))
	base, err := c.ProduceBatch(ctx, "orders", []client.Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: nil}})
	is.NoErr(err)
	is.Equal(base, uint64(1))

	rec, err := c.Consume(ctx, "orders", 0)
	is.NoErr(err)
	is.Equal(rec.Offset, uint64(0))
	is.Equal(string(rec.Key), "o-1")
	is.Equal(string(rec.Value), "paid")
	is.Equal(len(rec.Headers), 2)
	is.Equal(rec.Headers[1].Key, "trace")
	is.Equal(string(rec.Headers[1].Value), "t2")
	is.True(!rec.Time.Before(before.Add(-time.Second)) && !rec.Time.After(time.Now()))
	for i, want := range []string{"a", "b", ""} {
		rec, err := c.Consume(ctx, "orders", uint64(1+i))
		is.NoErr(err)
		is.Equal(string(rec.Value), want)
		is.Equal(len(rec.Key), 0)
	}

	info, err := c.DescribeTopic(ctx, "orders")
	is.NoErr(err)
	is.Equal(info.LowestOffset, uint64(0))
	is.Equal(info.NextOffset, uint64(4))
	is.Equal(info.Segments, int64(1))
	is.True(info.Bytes > 0)

	servers, err := c.GetServers(ctx)
	is.NoErr(err)
	is.Equal(len(servers), 1)
	is.Equal(servers[0].ID, "node1")
	is.Equal(servers[0].RPCAddr, n.Server.Addr())
	is.True(servers[0].IsLeader)
	is.True(servers[0].IsVoter)
	is.True(servers[0].LastIndex >= 4) // the configuration, the topic and two produces

}

func TestTopicsAreCreatedListedDescribedAndDeleted(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	c := n.Client(t, "alice")

	info, err := c.CreateTopic(ctx, "b.logs", client.TopicConfig{RetentionBytes: 1 << 30, RetentionAge: time.Hour})
	is.NoErr(err)
	is.Equal(info.Config, client.TopicConfig{RetentionBytes: 1 << 30, RetentionAge: time.Hour, Partitions: 1, ReplicationFactor: 1})
	_, err = c.CreateTopic(ctx, "a_events-1", client.TopicConfig{})
	is.NoErr(err)
	_, err = c.CreateTopic(ctx, "b.logs", client.TopicConfig{})
	is.Equal(status.Code(err), codes.AlreadyExists)

	list, err := c.ListTopics(ctx)
	is.NoErr(err)
	is.Equal(len(list), 2)
	is.Equal(list[0].Topic, "a_events-1")
	is.Equal(list[1].Topic, "b.logs")
	is.Equal(list[1].Config.RetentionAge, time.Hour)

	_, err = c.Produce(ctx, "b.logs", client.Record{Value: []byte("x")})
	is.NoErr(err)
	is.NoErr(c.CommitOffset(ctx, "g", "b.logs", 1))
	is.NoErr(c.DeleteTopic(ctx, "b.logs"))
	_, err = c.DescribeTopic(ctx, "b.logs")
	is.Equal(status.Code(err), codes.NotFound)
	is.Equal(status.Code(c.DeleteTopic(ctx, "b.logs")), codes.NotFound)

	// A topic made again under the same name starts empty, with no committed offsets.
	info, err = c.CreateTopic(ctx, "b.logs", client.TopicConfig{})
	is.NoErr(err)
	is.Equal(info.NextOffset, uint64(0))
	_, ok, err := c.FetchOffset(ctx, "g", "b.logs")
	is.NoErr(err)
	is.True(!ok)

	// Topics survive a restart, with their records and configuration.
	_, err = c.Produce(ctx, "b.logs", client.Record{Value: []byte("kept")})
	is.NoErr(err)
	is.NoErr(n.Stop())
	n2 := servertest.Start(t, "", server.WithDataDir(n.Dir))
	c2 := n2.Client(t, "alice")
	list, err = c2.ListTopics(ctx)
	is.NoErr(err)
	is.Equal(len(list), 2)
	rec, err := c2.Consume(ctx, "b.logs", 0)
	is.NoErr(err)
	is.Equal(string(rec.Value), "kept")
}

func TestConsumerOffsetsAreCommittedFetchedAndKeptAcrossRestarts(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	c := n.Client(t, "alice")
	_, err := c.CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)
	_, err = c.ProduceBatch(ctx, "t", []client.Record{{Value: []byte("1")}, {Value: []byte("2")}})
	is.NoErr(err)

	_, ok, err := c.FetchOffset(ctx, "readers", "t")
	is.NoErr(err)
	is.True(!ok)
	is.NoErr(c.CommitOffset(ctx, "readers", "t", 1))
	is.NoErr(c.CommitOffset(ctx, "readers", "t", 2))
	is.NoErr(c.CommitOffset(ctx, "others", "t", 0))
	err = c.CommitOffset(ctx, "readers", "t", 3)
	is.Equal(status.Code(err), codes.OutOfRange)
	is.True(strings.Contains(status.Convert(err).Message(), "next offset is 2"))
	is.Equal(status.Code(c.CommitOffset(ctx, "bad/group", "t", 0)), codes.InvalidArgument)
	is.Equal(status.Code(c.CommitOffset(ctx, "readers", "nope", 0)), codes.NotFound)

	is.NoErr(n.Stop())
	n2 := servertest.Start(t, "", server.WithDataDir(n.Dir))
	c2 := n2.Client(t, "alice")
	off, ok, err := c2.FetchOffset(ctx, "readers", "t")
	is.NoErr(err)
	is.True(ok)
	is.Equal(off, uint64(2))
	off, ok, err = c2.FetchOffset(ctx, "others", "t")
	is.NoErr(err)
	is.True(ok)
	is.Equal(off, uint64(0))
}

// produceStream sends reqs on one ProduceStream without waiting and returns the acks.
func produceStream(ctx context.Context, api dislogv1.LogServiceClient, reqs []*dislogv1.ProduceRequest) ([]uint64, error) {
	stream, err := api.ProduceStream(ctx)
	if err != nil {
		return nil, err
	}
	sendErr := make(chan error, 1)
	go func() {
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	var acks []uint64
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return acks, <-sendErr
		}
		if err != nil {
			return acks, err
		}
		acks = append(acks, resp.GetBaseOffset())
	}
}

func values(vs ...string) []*dislogv1.Record {
	recs := make([]*dislogv1.Record, len(vs))
	for i, v := range vs {
		recs[i] = &dislogv1.Record{Value: []byte(v)}
	}
	return recs
}

func TestProduceStreamAcksPipelinedRequestsInOrder(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	c := n.Client(t, "alice")
	for _, name := range []string{"x", "y"} {
		_, err := c.CreateTopic(ctx, name, client.TopicConfig{})
		is.NoErr(err)
	}
	var reqs []*dislogv1.ProduceRequest
	var want []uint64
	next := map[string]uint64{}
	for i := range 300 {
		topic := "x"
		if i%50 >= 40 {
			topic = "y"
		}
		size := 1 + i%3
		var vs []string
		for j := range size {
			vs = append(vs, fmt.Sprintf("%d-%d", i, j))
		}
		reqs = append(reqs, &dislogv1.ProduceRequest{Topic: topic, Records: values(vs...)})
		want = append(want, next[topic])
		next[topic] += uint64(size)
	}
	acks, err := produceStream(ctx, c.API(), reqs)
	is.NoErr(err)
	is.Equal(acks, want)
	for i, r := range reqs {
		for j := range r.Records {
			rec, err := c.Consume(ctx, r.Topic, want[i]+uint64(j))
			is.NoErr(err)
			is.Equal(string(rec.Value), fmt.Sprintf("%d-%d", i, j))
		}
	}
}

func TestProduceStreamEndsAtTheFirstBadRequestHavingWrittenTheOnesBefore(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	c := n.Client(t, "alice")
	_, err := c.CreateTopic(ctx, "x", client.TopicConfig{})
	is.NoErr(err)
	reqs := []*dislogv1.ProduceRequest{
		{Topic: "x", Records: values("a")},
		{Topic: "x", Records: values("b", "c")},
		{Topic: "x"}, // empty
		{Topic: "x", Records: values("never")},
	}
	acks, err := produceStream(ctx, c.API(), reqs)
	is.Equal(status.Code(err), codes.InvalidArgument)
	is.Equal(acks, []uint64{0, 1})
	info, err := c.DescribeTopic(ctx, "x")
	is.NoErr(err)
	is.Equal(info.NextOffset, uint64(3))
}

// recvRecords reads from a ConsumeStream until it has want records or it ends.
func recvRecords(stream dislogv1.LogService_ConsumeStreamClient, want int) ([]*dislogv1.Record, error) {
	var recs []*dislogv1.Record
	for len(recs) < want {
		resp, err := stream.Recv()
		if err != nil {
			return recs, err
		}
		if len(resp.Records) == 0 {
			return recs, errors.New("empty response")
		}
		recs = append(recs, resp.Records...)
	}
	return recs, nil
}

func TestConsumeStreamReadsFromAnOffsetATimeOrAPositionAndFollows(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	c := n.Client(t, "alice")
	_, err := c.CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)
	_, err = c.ProduceBatch(ctx, "t", []client.Record{{Value: []byte("0")}, {Value: []byte("1")}})
	is.NoErr(err)
	middle := time.Now()
	for !time.Now().After(middle) {
		// the next record must be appended strictly after middle
	}
	_, err = c.Produce(ctx, "t", client.Record{Value: []byte("2")})
	is.NoErr(err)

	for _, tc := range []struct {
		name      string
		req       *dislogv1.ConsumeStreamRequest
		wantFirst uint64
	}{
		{"from an offset", &dislogv1.ConsumeStreamRequest{Topic: "t", Start: &dislogv1.ConsumeStreamRequest_Offset{Offset: 1}}, 1},
		{"from a time", &dislogv1.ConsumeStreamRequest{Topic: "t", Start: &dislogv1.ConsumeStreamRequest_Time{Time: timestamppb.New(middle)}}, 2},
		{"from the earliest record by default", &dislogv1.ConsumeStreamRequest{Topic: "t"}, 0},
		{"from the earliest record by name", &dislogv1.ConsumeStreamRequest{Topic: "t", Start: &dislogv1.ConsumeStreamRequest_Position{Position: dislogv1.StartPosition_START_POSITION_EARLIEST}}, 0},
		{"from the latest, seeing nothing old", &dislogv1.ConsumeStreamRequest{Topic: "t", Start: &dislogv1.ConsumeStreamRequest_Position{Position: dislogv1.StartPosition_START_POSITION_LATEST}}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			stream, err := c.API().ConsumeStream(ctx, tc.req)
			is.NoErr(err)
			recs, err := recvRecords(stream, int(3-tc.wantFirst))
			is.NoErr(err)
			for i, r := range recs {
				is.Equal(r.Offset, tc.wantFirst+uint64(i))
				is.Equal(string(r.Value), fmt.Sprint(tc.wantFirst+uint64(i)))
			}
			_, err = stream.Recv()
			is.Equal(err, io.EOF) // without follow, the stream ends at the end of the topic
		})
	}

	t.Run("with follow, new records arrive", func(t *testing.T) {
		is := is.New(t)
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.API().ConsumeStream(sctx, &dislogv1.ConsumeStreamRequest{Topic: "t", Start: &dislogv1.ConsumeStreamRequest_Offset{Offset: 2}, Follow: true})
		is.NoErr(err)
		recs, err := recvRecords(stream, 1)
		is.NoErr(err)
		is.Equal(recs[0].Offset, uint64(2))
		for i := range 3 {
			off, err := c.Produce(ctx, "t", client.Record{Value: []byte(fmt.Sprint(3 + i))})
			is.NoErr(err)
			recs, err := recvRecords(stream, 1)
			is.NoErr(err)
			is.Equal(recs[0].Offset, off)
		}
		cancel()
		_, err = stream.Recv()
		is.Equal(status.Code(err), codes.Canceled)
	})

	t.Run("a followed topic that is deleted ends the stream with NotFound", func(t *testing.T) {
		is := is.New(t)
		stream, err := c.API().ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{Topic: "t", Start: &dislogv1.ConsumeStreamRequest_Position{Position: dislogv1.StartPosition_START_POSITION_LATEST}, Follow: true})
		is.NoErr(err)
		// The stream is open once the server has its headers; the delete then finds it waiting.
		_, err = stream.Header()
		is.NoErr(err)
		is.NoErr(c.DeleteTopic(ctx, "t"))
		_, err = stream.Recv()
		is.Equal(status.Code(err), codes.NotFound)
	})
}

func TestBadInputGetsTheRightCodeAndTheServerStaysUp(t *testing.T) {
	ctx := ctxT(t)
	n := servertest.Start(t, "", server.WithMaxRecordBytes(1000))
	c := n.Client(t, "alice")
	_, err := c.CreateTopic(ctx, "t", client.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Produce(ctx, "t", client.Record{Value: []byte("only")}); err != nil {
		t.Fatal(err)
	}
	api := c.API()
	big := make([]byte, 1001)
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
		says string
	}{
		{"an unknown topic is NotFound", func() error {
			_, err := c.Produce(ctx, "nope", client.Record{Value: []byte("x")})
			return err
		}, codes.NotFound, `topic "nope" does not exist`},
		{"an invalid topic name is InvalidArgument", func() error {
			_, err := c.Produce(ctx, "a/b", client.Record{Value: []byte("x")})
			return err
		}, codes.InvalidArgument, "invalid topic name"},
		{"an empty topic name is InvalidArgument", func() error {
			_, err := c.CreateTopic(ctx, "", client.TopicConfig{})
			return err
		}, codes.InvalidArgument, "empty"},
		{"an empty batch is InvalidArgument", func() error {
			_, err := c.ProduceBatch(ctx, "t", nil)
			return err
		}, codes.InvalidArgument, "empty batch"},
		{"an oversized record is ResourceExhausted", func() error {
			_, err := c.ProduceBatch(ctx, "t", []client.Record{{Value: []byte("ok")}, {Value: big}})
			return err
		}, codes.ResourceExhausted, "record 1 of the batch"},
		{"a message over the message limit is ResourceExhausted", func() error {
			_, err := c.ProduceBatch(ctx, "t", []client.Record{{Value: make([]byte, server.DefaultMaxMessageBytes)}})
			return err
		}, codes.ResourceExhausted, ""},
		{"an offset past the end is OutOfRange", func() error {
			_, err := c.Consume(ctx, "t", 1)
			return err
		}, codes.OutOfRange, "next offset is 1"},
		{"a stream from past the end is OutOfRange", func() error {
			s, err := api.ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{Topic: "t", Start: &dislogv1.ConsumeStreamRequest_Offset{Offset: 5}})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.OutOfRange, "past the end"},
		{"a stream from an invalid time is InvalidArgument", func() error {
			s, err := api.ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{Topic: "t", Start: &dislogv1.ConsumeStreamRequest_Time{Time: &timestamppb.Timestamp{Nanos: -1}}})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.InvalidArgument, "invalid start time"},
		{"a negative retention is InvalidArgument", func() error {
			_, err := c.CreateTopic(ctx, "neg", client.TopicConfig{RetentionBytes: -1})
			return err
		}, codes.InvalidArgument, "negative"},
		{"a request that does not parse is refused by gRPC as Internal", func() error {
			conn, err := grpc.NewClient(n.Server.Addr(), grpc.WithTransportCredentials(mustTLS(t, n.ClientFiles(t, "alice"))))
			if err != nil {
				return err
			}
			defer conn.Close()
			// Field 1 (topic), 1 byte long, not UTF-8.
			return conn.Invoke(ctx, dislogv1.LogService_Produce_FullMethodName, rawBytes{0x0a, 0x01, 0xff}, &dislogv1.ProduceResponse{},
				grpc.ForceCodecV2(rawCodec{}))
		}, codes.Internal, "unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			err := tc.call()
			is.Equal(status.Code(err), tc.want)
			is.True(strings.Contains(status.Convert(err).Message(), tc.says))
		})
	}
	is := is.New(t)
	info, err := c.DescribeTopic(ctx, "t")
	is.NoErr(err)
	is.Equal(info.NextOffset, uint64(1)) // nothing written by any bad request
	rec, err := c.Consume(ctx, "t", 0)
	is.NoErr(err)
	is.Equal(string(rec.Value), "only")
}

// rawBytes is a request sent as is, through rawCodec.
type rawBytes []byte

// rawCodec sends rawBytes unchanged and reads protobuf responses.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(rawBytes))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

func (rawCodec) Name() string { return "proto" }

func mustTLS(t testing.TB, f authz.TLSOptions) credentials.TransportCredentials {
	t.Helper()
	conf, err := authz.ClientTLSConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	return credentials.NewTLS(conf)
}

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

func TestCertificatesAreRequiredAndChecked(t *testing.T) {
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	good := n.ClientFiles(t, "alice")
	caPEM, err := os.ReadFile(good.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	foreign := authztest.NewCA(t, "foreign CA").WriteFiles(t, t.TempDir(), "alice", authztest.Cert{CommonName: "alice", Role: authz.RoleClient})
	foreignCert, err := tls.LoadX509KeyPair(foreign.CertFile, foreign.KeyFile)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		creds credentials.TransportCredentials
	}{
		{"no client certificate", credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots})},
		{"a client certificate from another CA", credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, Certificates: []tls.Certificate{foreignCert}})},
		{"plaintext", insecure.NewCredentials()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			conn, err := grpc.NewClient(n.Server.Addr(), grpc.WithTransportCredentials(tc.creds))
			is.NoErr(err)
			defer conn.Close()
			_, err = dislogv1.NewLogServiceClient(conn).ListTopics(ctx, &dislogv1.ListTopicsRequest{})
			is.Equal(status.Code(err), codes.Unavailable) // the handshake fails: no call is made
		})
	}

	is := is.New(t)
	c := n.Client(t, "alice")
	_, err = c.ListTopics(ctx)
	is.NoErr(err) // and the server still serves good clients
}

func TestTheACLDeniesWithPermissionDeniedAndWritesNothing(t *testing.T) {
	ctx := ctxT(t)
	n := servertest.Start(t, "p, alice, *, *\np, bob, orders, consume\np, bob, audit.*, produce\n")
	alice, bob := n.Client(t, "alice"), n.Client(t, "bob")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, topic := range []string{"orders", "audit.log", "secrets"} {
		_, err := alice.CreateTopic(ctx, topic, client.TopicConfig{})
		must(err)
	}
	_, err := alice.Produce(ctx, "orders", client.Record{Value: []byte("o")})
	must(err)

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"produce without the produce action", func() error {
			_, err := bob.Produce(ctx, "orders", client.Record{Value: []byte("x")})
			return err
		}},
		{"a produce stream without the produce action", func() error {
			_, err := produceStream(ctx, bob.API(), []*dislogv1.ProduceRequest{{Topic: "orders", Records: values("x")}})
			return err
		}},
		{"a produce stream that switches to a denied topic", func() error {
			acks, err := produceStream(ctx, bob.API(), []*dislogv1.ProduceRequest{
				{Topic: "audit.log", Records: values("allowed")}, {Topic: "orders", Records: values("x")}})
			if len(acks) != 1 {
				return fmt.Errorf("acks %v, want the allowed request's", acks)
			}
			return err
		}},
		{"consume without the consume action", func() error {
			_, err := bob.Consume(ctx, "secrets", 0)
			return err
		}},
		{"a consume stream without the consume action", func() error {
			s, err := bob.API().ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{Topic: "secrets"})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
		{"create a topic without the admin action", func() error {
			_, err := bob.CreateTopic(ctx, "orders2", client.TopicConfig{})
			return err
		}},
		{"delete a topic without the admin action", func() error { return bob.DeleteTopic(ctx, "orders") }},
		{"describe a topic with no action on it", func() error {
			_, err := bob.DescribeTopic(ctx, "secrets")
			return err
		}},
		{"commit an offset without the consume action", func() error { return bob.CommitOffset(ctx, "g", "secrets", 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			err := tc.call()
			is.Equal(status.Code(err), codes.PermissionDenied)
			is.True(strings.Contains(status.Convert(err).Message(), `"bob"`))
		})
	}

	is := is.New(t)
	for topic, want := range map[string]uint64{"orders": 1, "audit.log": 1, "secrets": 0} {
		info, err := alice.DescribeTopic(ctx, topic)
		is.NoErr(err)
		is.Equal(info.NextOffset, want) // only the one allowed produce wrote
	}
	_, err = bob.Consume(ctx, "orders", 0)
	is.NoErr(err)
	list, err := bob.ListTopics(ctx)
	is.NoErr(err)
	is.Equal(len(list), 2) // orders and audit.log, not secrets
}

func TestHealthMetricsAndPprofAreServed(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	c := n.Client(t, "alice")
	_, err := c.CreateTopic(ctx, "m", client.TopicConfig{})
	is.NoErr(err)
	_, err = c.Produce(ctx, "m", client.Record{Value: []byte("x")})
	is.NoErr(err)

	f := n.ClientFiles(t, "alice")
	conn, err := grpc.NewClient(n.Server.Addr(), grpc.WithTransportCredentials(mustTLS(t, f)))
	is.NoErr(err)
	defer conn.Close()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "dislog.v1.LogService"})
	is.NoErr(err)
	is.Equal(h.GetStatus(), healthpb.HealthCheckResponse_SERVING)

	metrics := httpGet(t, "http://"+n.Server.AdminAddr()+"/metrics")
	for _, want := range []string{
		`dislog_partition_next_offset{partition="0",topic="m"} 1`,
		`dislog_partition_leader{partition="0",topic="m"} 1`,
		`dislog_partition_sequence_violations_total{partition="0",topic="m"} 0`,
		`dislog_produced_records_total{topic="m"} 1`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Produce",grpc_service="dislog.v1.LogService",grpc_type="unary"} 1`,
		`go_goroutines`,
	} {
		is.True(strings.Contains(metrics, want)) // each metric is exported
	}
	is.True(strings.Contains(httpGet(t, "http://"+n.Server.AdminAddr()+"/healthz"), "ok"))
	is.True(strings.Contains(httpGet(t, "http://"+n.Server.AdminAddr()+"/debug/pprof/"), "goroutine"))
}

func TestShutdownEndsStreamsWithUnavailableAndKeepsTheData(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	c := n.Client(t, "alice")
	_, err := c.CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)
	_, err = c.Produce(ctx, "t", client.Record{Value: []byte("x")})
	is.NoErr(err)
	stream, err := c.API().ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{Topic: "t", Follow: true})
	is.NoErr(err)
	_, err = recvRecords(stream, 1)
	is.NoErr(err)

	is.NoErr(n.Stop()) // returns only once the follower has been let go
	_, err = stream.Recv()
	is.Equal(status.Code(err), codes.Unavailable)

	n2 := servertest.Start(t, "", server.WithDataDir(n.Dir))
	rec, err := n2.Client(t, "alice").Consume(ctx, "t", 0)
	is.NoErr(err)
	is.Equal(string(rec.Value), "x")
}

func TestNewRefusesIncompleteConfiguration(t *testing.T) {
	dir := t.TempDir()
	files := authz.TLSOptions{CAFile: filepath.Join(dir, "ca.pem"), CertFile: "c", KeyFile: "k"}
	for _, tc := range []struct {
		name string
		opts []server.Option
		says string
	}{
		{"no data directory", []server.Option{server.WithTLS(files), server.WithPolicyFile("p")}, "data directory"},
		{"no TLS files", []server.Option{server.WithDataDir(dir), server.WithPolicyFile("p")}, "TLS"},
		{"no policy", []server.Option{server.WithDataDir(dir), server.WithTLS(files)}, "policy"},
		{"a record larger than a segment", []server.Option{server.WithDataDir(dir), server.WithTLS(files), server.WithPolicyFile("p"),
			server.WithSegmentBytes(1000), server.WithMaxRecordBytes(1000)}, "does not fit"},
		{"missing certificate files", []server.Option{server.WithDataDir(dir), server.WithTLS(files), server.WithPolicyFile("p")}, "TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			_, err := server.New(tc.opts...)
			is.True(err != nil)
			is.True(strings.Contains(err.Error(), tc.says))
		})
	}
}

// The record limit is on what the producer chose to send, key, headers and value: a value of
// exactly the limit is written, one byte more is refused.
func TestAValueOfExactlyTheRecordLimitIsWritten(t *testing.T) {
	ctx := ctxT(t)
	n := servertest.Start(t, "", server.WithMaxRecordBytes(server.DefaultMaxRecordBytes))
	c := n.Client(t, "alice", client.WithProduceRetries(0))
	if _, err := c.CreateTopic(ctx, "t", client.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	value := make([]byte, server.DefaultMaxRecordBytes)
	if _, err := c.Produce(ctx, "t", client.Record{Value: value}); err != nil {
		t.Fatalf("a value of exactly the %d-byte limit: %v; want it written", len(value), err)
	}
	rec, err := c.Consume(ctx, "t", 0)
	if err != nil || len(rec.Value) != len(value) {
		t.Fatalf("read back: %d bytes, error %v; want %d bytes", len(rec.Value), err, len(value))
	}
	if _, err := c.Produce(ctx, "t", client.Record{Key: []byte("k"), Value: value}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a key and a value of the limit: %v; want ResourceExhausted", err)
	}
}

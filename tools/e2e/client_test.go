package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/authz/authztest"
	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/server"
	"github.com/dislog/dislog/server/servertest"
	"github.com/matryer/is"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func value(i int) []byte { return fmt.Appendf(nil, "record %d", i) }

// startWithTopic starts a node, dials it as alice and creates topic.
func startWithTopic(t *testing.T, topic string, opts ...server.Option) (*servertest.Node, *client.Client) {
	t.Helper()
	n := servertest.Start(t, "", opts...)
	c := n.Client(t, "alice")
	if _, err := c.CreateTopic(ctxT(t), topic, client.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	return n, c
}

// readAll reads a topic from offset 0 to its end.
func readAll(t *testing.T, c *client.Client, topic string) []client.Record {
	t.Helper()
	var recs []client.Record
	for rec, err := range c.Subscribe(ctxT(t), topic, client.AtOffset(0), client.StopAtEnd()) {
		if err != nil {
			t.Fatalf("after %d records: %v", len(recs), err)
		}
		recs = append(recs, rec)
	}
	return recs
}

func TestProducerOffsetsAreDistinctContiguousAndInOrder(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	_, c := startWithTopic(t, "orders")
	p, err := client.NewProducer(c, "orders", client.ProducerOptions{MaxBatchRecords: 100, MaxInFlight: 4})
	is.NoErr(err)
	const n = 20_000
	results := make([]client.Result, n)
	for i := range n {
		results[i] = p.Send(ctx, client.Record{Key: []byte("k"), Value: value(i)})
	}
	is.NoErr(p.Close())
	for i, r := range results {
		off, err := r.Wait(ctx)
		is.NoErr(err)
		is.Equal(off, uint64(i))
	}
	recs := readAll(t, c, "orders")
	is.Equal(len(recs), n)
	for i, rec := range recs {
		is.Equal(rec.Offset, uint64(i))
		is.Equal(rec.Value, value(i))
	}
}

func TestProducerFailsTheRefusedBatchAndWritesTheOthers(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	_, c := startWithTopic(t, "orders", server.WithMaxRecordBytes(512))
	// Batches of 10, up to 8 in flight: the server refuses the batch with the oversized record after
	// it read the ones behind it, and the producer must send those again.
	p, err := client.NewProducer(c, "orders", client.ProducerOptions{Linger: time.Hour, MaxBatchRecords: 10})
	is.NoErr(err)
	const n, bad = 200, 45
	results := make([]client.Result, n)
	for i := range n {
		v := value(i)
		if i == bad {
			v = bytes.Repeat([]byte("x"), 1024)
		}
		results[i] = p.Send(ctx, client.Record{Value: v})
	}
	is.NoErr(p.Close())
	var want [][]byte
	for i, r := range results {
		off, err := r.Wait(ctx)
		if i/10 == bad/10 {
			is.Equal(status.Code(err), codes.ResourceExhausted)
			continue
		}
		is.NoErr(err)
		is.Equal(off, uint64(len(want)))
		want = append(want, value(i))
	}
	recs := readAll(t, c, "orders")
	is.Equal(len(recs), len(want))
	for i, rec := range recs {
		is.Equal(rec.Value, want[i])
	}
}

func TestProducerToAnUnknownTopicFailsEveryRecord(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	_, c := startWithTopic(t, "orders")
	p, err := client.NewProducer(c, "nope", client.ProducerOptions{MaxBatchRecords: 4})
	is.NoErr(err)
	var results []client.Result
	for i := range 20 {
		results = append(results, p.Send(ctx, client.Record{Value: value(i)}))
	}
	is.NoErr(p.Close())
	for _, r := range results {
		_, err := r.Wait(ctx)
		is.Equal(status.Code(err), codes.NotFound)
	}
}

func TestSubscribeFromOffsetAndFromTime(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	_, c := startWithTopic(t, "orders")
	_, err := c.ProduceBatch(ctx, "orders", []client.Record{{Value: value(0)}, {Value: value(1)}, {Value: value(2)}})
	is.NoErr(err)
	last, err := c.Consume(ctx, "orders", 2)
	is.NoErr(err)
	for !time.Now().After(last.Time) {
		runtime.Gosched()
	}
	_, err = c.ProduceBatch(ctx, "orders", []client.Record{{Value: value(3)}, {Value: value(4)}})
	is.NoErr(err)

	var got []uint64
	for rec, err := range c.Subscribe(ctx, "orders", client.AtOffset(1), client.StopAtEnd()) {
		is.NoErr(err)
		got = append(got, rec.Offset)
	}
	is.Equal(got, []uint64{1, 2, 3, 4})

	got = nil
	for rec, err := range c.Subscribe(ctx, "orders", client.AtTime(last.Time.Add(time.Nanosecond)), client.StopAtEnd()) {
		is.NoErr(err)
		is.Equal(rec.Value, value(int(rec.Offset)))
		got = append(got, rec.Offset)
	}
	is.Equal(got, []uint64{3, 4})
}

func TestSubscribeFollowsTheTail(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	_, c := startWithTopic(t, "orders")
	_, err := c.Produce(ctx, "orders", client.Record{Value: value(0)})
	is.NoErr(err)
	produced := make(chan error, 1)
	for rec, err := range c.Subscribe(ctx, "orders", client.Earliest()) {
		is.NoErr(err)
		is.Equal(rec.Value, value(int(rec.Offset)))
		if rec.Offset == 0 {
			// Caught up; this record is written after the subscription started.
			go func() {
				_, err := c.Produce(ctx, "orders", client.Record{Value: value(1)})
				produced <- err
			}()
			continue
		}
		is.Equal(rec.Offset, uint64(1))
		break
	}
	is.NoErr(<-produced)
}

// restartable is a node that can be stopped and started again on the same port, data and
// certificates.
type restartable struct {
	first *servertest.Node
	opts  []server.Option
}

func startRestartable(t *testing.T) *restartable {
	t.Helper()
	n := servertest.Start(t, "")
	dir := filepath.Join(t.TempDir(), "server")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := n.CA.WriteFiles(t, dir, "server", authztest.Cert{CommonName: "node1", Role: authz.RoleServer})
	return &restartable{first: n, opts: []server.Option{
		server.WithDataDir(n.Dir), server.WithListenAddr(n.Server.Addr()),
		server.WithTLS(files), server.WithPolicyFile(n.PolicyFile),
	}}
}

func (r *restartable) restart(t *testing.T) {
	t.Helper()
	if err := r.first.Stop(); err != nil {
		t.Fatal(err)
	}
	servertest.Start(t, "", r.opts...)
}

func TestSubscribeResumesAcrossAServerRestart(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	r := startRestartable(t)
	c := r.first.Client(t, "alice")
	_, err := c.CreateTopic(ctx, "orders", client.TopicConfig{})
	is.NoErr(err)
	recs := make([]client.Record, 100)
	for i := range recs {
		recs[i] = client.Record{Value: value(i)}
	}
	_, err = c.ProduceBatch(ctx, "orders", recs)
	is.NoErr(err)

	reconnected := make(chan struct{}, 1)
	seq := c.Subscribe(ctx, "orders", client.AtOffset(0),
		client.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
		client.OnReconnect(func(error, time.Duration) {
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}))
	next := uint64(0)
	for rec, err := range seq {
		is.NoErr(err)
		is.Equal(rec.Offset, next) // nothing skipped, nothing twice
		is.Equal(rec.Value, value(int(next)))
		next++
		switch next {
		case 50:
			// Mid-way through the records: the server goes away and comes back.
			r.restart(t)
		case 100:
			// Caught up and following: records written now must arrive too. The client's
			// connection may still be waiting to reconnect; a call fails fast until it has.
			produceWhenReady(t, c, "orders", client.Record{Value: value(100)}, client.Record{Value: value(101)})
		}
		if next == 102 {
			break
		}
	}
	select {
	case <-reconnected:
	default:
		t.Error("the subscription did not report a reconnection")
	}
	is.Equal(next, uint64(102))
}

// produceWhenReady produces recs, retrying while the client's connection is unavailable.
func produceWhenReady(t *testing.T, c *client.Client, topic string, recs ...client.Record) {
	t.Helper()
	ctx := ctxT(t)
	for {
		_, err := c.ProduceBatch(ctx, topic, recs)
		if err == nil {
			return
		}
		if status.Code(err) != codes.Unavailable {
			t.Fatal(err)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("the server never became available: %v", err)
		}
	}
}

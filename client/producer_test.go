package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/client/internal/fakelog"
	"github.com/matryer/is"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// dialFake starts a fake server with topic "t" and dials it.
func dialFake(t *testing.T) (*fakelog.Server, *client.Client) {
	t.Helper()
	srv := fakelog.Start(t)
	srv.AddTopic("t")
	c, err := client.Dial(srv.Addr, client.WithTLSConfig(srv.ClientTLS))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

func newProducer(t *testing.T, c *client.Client, topic string, opts client.ProducerOptions) *client.Producer {
	t.Helper()
	p, err := client.NewProducer(c, topic, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func value(i int) []byte { return fmt.Appendf(nil, "record %d", i) }

func TestProducerWritesEveryRecordInOrderInBatches(t *testing.T) {
	is := is.New(t)
	srv, c := dialFake(t)
	var maxRecords, maxBytes int
	var mu sync.Mutex
	srv.Refuse(func(req *dislogv1.ProduceRequest) error {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range req.Records {
			n += len(r.Value)
		}
		maxRecords, maxBytes = max(maxRecords, len(req.Records)), max(maxBytes, n)
		return nil
	})
	p := newProducer(t, c, "t", client.ProducerOptions{MaxBatchRecords: 50, MaxBatchBytes: 400, MaxInFlight: 4})
	const n = 3000
	results := make([]client.Result, n)
	for i := range n {
		results[i] = p.Send(context.Background(), client.Record{Value: value(i), Key: []byte("k"), Headers: []client.Header{{Key: "h", Value: []byte("v")}}})
	}
	is.NoErr(p.Flush(context.Background()))
	for i, r := range results {
		off, err := r.Wait(context.Background())
		is.NoErr(err)
		is.Equal(off, uint64(i)) // offsets contiguous, in the order sent
	}
	recs := srv.Records("t")
	is.Equal(len(recs), n)
	for i, r := range recs {
		is.Equal(r.Value, value(i))
		is.Equal(string(r.Key), "k")
		is.Equal(r.Headers[0].Key, "h")
	}
	reqs := srv.ProduceRequests()
	is.True(reqs < n/10) // records were batched
	mu.Lock()
	defer mu.Unlock()
	is.True(maxRecords <= 50)
	is.True(maxBytes <= 400)
}

func TestProducerKeepsEachGoroutinesOrder(t *testing.T) {
	is := is.New(t)
	srv, c := dialFake(t)
	p := newProducer(t, c, "t", client.ProducerOptions{MaxBatchRecords: 7, MaxInFlight: 3})
	const writers, each = 4, 500
	var wg sync.WaitGroup
	offsets := make([][]uint64, writers)
	for w := range writers {
		wg.Go(func() {
			results := make([]client.Result, each)
			for i := range each {
				results[i] = p.Send(context.Background(), client.Record{Value: fmt.Appendf(nil, "%d/%d", w, i)})
			}
			for _, r := range results {
				off, err := r.Wait(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				offsets[w] = append(offsets[w], off)
			}
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for w := range writers {
		for i, off := range offsets[w] {
			is.True(!seen[off])
			seen[off] = true
			if i > 0 {
				is.True(off > offsets[w][i-1])
			}
		}
	}
	is.Equal(len(srv.Records("t")), writers*each)
}

func TestProducerSendsAfterLingerWithoutFlush(t *testing.T) {
	is := is.New(t)
	_, c := dialFake(t)
	p := newProducer(t, c, "t", client.ProducerOptions{Linger: 5 * time.Millisecond})
	r := p.Send(context.Background(), client.Record{Value: []byte("one")})
	select {
	case <-r.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a lone record was not sent after its linger")
	}
	off, err := r.Wait(context.Background())
	is.NoErr(err)
	is.Equal(off, uint64(0))
}

func TestProducerFlushSendsBeforeLinger(t *testing.T) {
	is := is.New(t)
	srv, c := dialFake(t)
	p := newProducer(t, c, "t", client.ProducerOptions{Linger: time.Hour})
	r := p.Send(context.Background(), client.Record{Value: []byte("one")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	is.NoErr(p.Flush(ctx))
	off, err := r.Wait(ctx)
	is.NoErr(err)
	is.Equal(off, uint64(0))
	is.Equal(len(srv.Records("t")), 1)
}

func TestProducerCloseDrainsAndRefusesLaterSends(t *testing.T) {
	is := is.New(t)
	srv, c := dialFake(t)
	p, err := client.NewProducer(c, "t", client.ProducerOptions{Linger: time.Hour, MaxBatchRecords: 10, MaxInFlight: 1})
	is.NoErr(err)
	var results []client.Result
	for i := range 95 {
		results = append(results, p.Send(context.Background(), client.Record{Value: value(i)}))
	}
	is.NoErr(p.Close())
	for i, r := range results {
		select {
		case <-r.Done():
		default:
			t.Fatalf("record %d has no result after Close", i)
		}
		off, err := r.Wait(context.Background())
		is.NoErr(err)
		is.Equal(off, uint64(i))
	}
	is.Equal(len(srv.Records("t")), 95)
	_, err = p.Send(context.Background(), client.Record{Value: []byte("late")}).Wait(context.Background())
	is.True(errors.Is(err, client.ErrProducerClosed))
	is.NoErr(p.Close()) // closing twice is harmless
}

func TestProducerFailsOnlyTheRefusedBatch(t *testing.T) {
	is := is.New(t)
	srv, c := dialFake(t)
	srv.Refuse(func(req *dislogv1.ProduceRequest) error {
		for _, r := range req.Records {
			if bytes.Equal(r.Value, []byte("too big")) {
				return status.Error(codes.ResourceExhausted, "record over the limit")
			}
		}
		return nil
	})
	// Batches of 5 with up to 4 in flight: the batches behind the refused one were sent before the
	// refusal came back, and must be sent again, not lost or failed.
	p := newProducer(t, c, "t", client.ProducerOptions{Linger: time.Hour, MaxBatchRecords: 5, MaxInFlight: 4})
	const n, bad = 60, 22
	results := make([]client.Result, n)
	for i := range n {
		v := value(i)
		if i == bad {
			v = []byte("too big")
		}
		results[i] = p.Send(context.Background(), client.Record{Value: v})
	}
	is.NoErr(p.Flush(context.Background()))
	var written [][]byte
	next := uint64(0)
	for i, r := range results {
		off, err := r.Wait(context.Background())
		if i/5 == bad/5 {
			is.Equal(status.Code(err), codes.ResourceExhausted) // every record of the refused batch fails
			continue
		}
		is.NoErr(err)
		is.Equal(off, next) // the others are written, in order, without gaps
		next++
		written = append(written, value(i))
	}
	recs := srv.Records("t")
	is.Equal(len(recs), len(written))
	for i := range recs {
		is.Equal(recs[i].Value, written[i])
	}
}

func TestProducerUnknownTopicFailsEveryRecord(t *testing.T) {
	is := is.New(t)
	_, c := dialFake(t)
	p := newProducer(t, c, "nope", client.ProducerOptions{MaxBatchRecords: 3, MaxInFlight: 2})
	var results []client.Result
	for i := range 10 {
		results = append(results, p.Send(context.Background(), client.Record{Value: value(i)}))
	}
	is.NoErr(p.Flush(context.Background()))
	for _, r := range results {
		_, err := r.Wait(context.Background())
		is.Equal(status.Code(err), codes.NotFound)
	}
}

func TestProducerResendsTheBatchesOfABrokenStream(t *testing.T) {
	is := is.New(t)
	srv, c := dialFake(t)
	var once sync.Once
	srv.BreakStreams(func(sent int) error {
		var err error
		if sent == 2 {
			once.Do(func() { err = status.Error(codes.Unavailable, "connection lost") })
		}
		return err
	})
	p := newProducer(t, c, "t", client.ProducerOptions{Linger: time.Hour, MaxBatchRecords: 1, MaxInFlight: 2})
	var results []client.Result
	for i := range 6 {
		results = append(results, p.Send(context.Background(), client.Record{Value: value(i)}))
	}
	is.NoErr(p.Flush(context.Background()))
	for i, r := range results {
		off, err := r.Wait(context.Background())
		is.NoErr(err) // the batches in flight on the broken stream went again on a new one
		is.Equal(off, uint64(i))
	}
	recs := srv.Records("t")
	is.Equal(len(recs), 6)
	for i, r := range recs {
		is.Equal(r.Value, value(i))
	}
}

func TestProducerRetryOfBatchesWrittenButNotAcknowledgedWritesThemOnce(t *testing.T) {
	is := is.New(t)
	srv, c := dialFake(t)
	// The server writes batches 5 to 8 but its answers are lost, then the stream fails: the
	// producer cannot know they were written and sends them again, and the server must see the
	// same producer ids and sequences and answer them as duplicates.
	var appended atomic.Int32
	srv.AfterAppend(func(*dislogv1.ProduceRequest) fakelog.Fault {
		switch n := appended.Add(1); {
		case n >= 5 && n < 8:
			return fakelog.LoseAnswer
		case n == 8:
			return fakelog.Fail
		}
		return fakelog.Answer
	})
	p := newProducer(t, c, "t", client.ProducerOptions{Linger: -1, MaxBatchRecords: 3, MaxInFlight: 4})
	const n = 60
	results := make([]client.Result, n)
	for i := range n {
		results[i] = p.Send(context.Background(), client.Record{Value: value(i)})
	}
	is.NoErr(p.Flush(context.Background()))
	for i, r := range results {
		off, err := r.Wait(context.Background())
		is.NoErr(err)
		is.Equal(off, uint64(i))
	}
	recs := srv.Records("t")
	is.Equal(len(recs), n) // written once each
	for i, r := range recs {
		is.Equal(r.Value, value(i))
	}
	is.True(srv.ProduceRequests() > srv.Cluster().Appends()) // some requests were duplicates
}

func TestProducerGivesUpWithUnknownOutcomeAfterMaxRetries(t *testing.T) {
	is := is.New(t)
	srv, c := dialFake(t)
	srv.Refuse(func(req *dislogv1.ProduceRequest) error {
		if bytes.Equal(req.Records[0].Value, value(2)) {
			return status.Error(codes.Unavailable, "connection lost")
		}
		return nil
	})
	p := newProducer(t, c, "t", client.ProducerOptions{Linger: time.Hour, MaxBatchRecords: 1, MaxInFlight: 1, MaxRetries: 2})
	var results []client.Result
	for i := range 3 {
		results = append(results, p.Send(context.Background(), client.Record{Value: value(i)}))
	}
	is.NoErr(p.Flush(context.Background()))
	for i, r := range results {
		off, err := r.Wait(context.Background())
		if i < 2 {
			is.NoErr(err)
			is.Equal(off, uint64(i))
			continue
		}
		is.True(errors.Is(err, client.ErrUnknownOutcome))
		is.Equal(status.Code(err), codes.Unavailable)
	}
	is.Equal(srv.ProduceRequests(), 2+3) // the third was sent 1 + 2 times
	is.Equal(len(srv.Records("t")), 2)

	// Without retries, the first failure is final.
	srv.Refuse(nil)
	var once sync.Once
	srv.BreakStreams(func(int) error {
		var err error
		once.Do(func() { err = status.Error(codes.Unavailable, "connection lost") })
		return err
	})
	p = newProducer(t, c, "t", client.ProducerOptions{Linger: -1, MaxRetries: -1})
	_, err := p.Send(context.Background(), client.Record{Value: []byte("once")}).Wait(context.Background())
	is.True(errors.Is(err, client.ErrUnknownOutcome))
	off, err := p.Send(context.Background(), client.Record{Value: []byte("twice")}).Wait(context.Background())
	is.NoErr(err) // the producer opened a new stream
	is.Equal(off, uint64(2))
}

func TestProducerGivesUpAfterTheDeliveryTimeout(t *testing.T) {
	is := is.New(t)
	srv, c := dialFake(t)
	// The server writes the batch and never answers: only the delivery timeout ends the wait.
	srv.AfterAppend(func(*dislogv1.ProduceRequest) fakelog.Fault { return fakelog.LoseAnswer })
	p := newProducer(t, c, "t", client.ProducerOptions{Linger: -1, DeliveryTimeout: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.Send(ctx, client.Record{Value: []byte("lost answer")}).Wait(ctx)
	is.True(errors.Is(err, client.ErrUnknownOutcome))
	is.Equal(status.Code(err), codes.DeadlineExceeded)
	is.Equal(len(srv.Records("t")), 1)
}

func TestProducerSendWaitsForRoomUntilContextEnds(t *testing.T) {
	is := is.New(t)
	srv, c := dialFake(t)
	release := make(chan struct{})
	srv.Refuse(func(*dislogv1.ProduceRequest) error {
		<-release
		return nil
	})
	p := newProducer(t, c, "t", client.ProducerOptions{Linger: -1, MaxBatchRecords: 1, MaxInFlight: 1})
	first := p.Send(context.Background(), client.Record{Value: []byte("in flight")})
	second := p.Send(context.Background(), client.Record{Value: []byte("filling")})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.Send(ctx, client.Record{Value: []byte("no room")}).Wait(context.Background())
	is.True(errors.Is(err, context.DeadlineExceeded))
	close(release)
	for _, r := range []client.Result{first, second} {
		_, err := r.Wait(context.Background())
		is.NoErr(err)
	}
}

func TestNewProducerRejectsNegativeOptions(t *testing.T) {
	_, c := dialFake(t)
	for _, opts := range []client.ProducerOptions{{MaxBatchBytes: -1}, {MaxBatchRecords: -1}, {MaxInFlight: -1}, {DeliveryTimeout: -1}} {
		if _, err := client.NewProducer(c, "t", opts); err == nil {
			t.Errorf("NewProducer(%+v) = nil error", opts)
		}
	}
}

func TestProducerFailsAtOnceWhenTheClientIsClosed(t *testing.T) {
	is := is.New(t)
	srv, c := dialFake(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	srv.Refuse(func(*dislogv1.ProduceRequest) error {
		close(arrived)
		<-release
		return nil
	})
	defer close(release)
	p := newProducer(t, c, "t", client.ProducerOptions{Linger: -1})
	r := p.Send(context.Background(), client.Record{Value: []byte("in flight")})
	<-arrived
	is.NoErr(c.Close())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second) // well under the retries' backoff
	defer cancel()
	_, err := r.Wait(ctx)
	is.True(errors.Is(err, client.ErrUnknownOutcome))
	is.Equal(status.Code(err), codes.Canceled)
}

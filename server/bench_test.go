package server_test

import (
	"context"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/servertest"
)

// The benchmarks run a server and a client in one process over TLS on loopback, with 1 KiB records
// and an fsync per batch, the setting. See docs/BENCHMARKS.md for results.

const recordSize = 1024

func benchNode(b *testing.B) (*client.Client, context.Context) {
	b.Helper()
	n := servertest.Start(b, "")
	c := n.Client(b, "alice")
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "bench", client.TopicConfig{}); err != nil {
		b.Fatal(err)
	}
	return c, ctx
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkProduceLatency: one Produce of one record in flight at a time; p50 and p99 in µs.
func BenchmarkProduceLatency(b *testing.B) {
	c, ctx := benchNode(b)
	rec := client.Record{Value: make([]byte, recordSize)}
	lat := make([]time.Duration, 0, b.N)
	b.SetBytes(recordSize)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := c.Produce(ctx, "bench", rec); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), "p99-µs")
}

// BenchmarkProduceBatch: ProduceBatch calls of 256 records from 4 goroutines; one op is one record.
func BenchmarkProduceBatch(b *testing.B) {
	c, ctx := benchNode(b)
	const batchSize, inFlight = 256, 4
	batch := make([]client.Record, batchSize)
	for i := range batch {
		batch[i].Value = make([]byte, recordSize)
	}
	b.SetBytes(recordSize)
	b.ResetTimer()
	var mu sync.Mutex
	left := b.N
	var wg sync.WaitGroup
	for range inFlight {
		wg.Go(func() {
			for {
				mu.Lock()
				n := min(left, batchSize)
				left -= n
				mu.Unlock()
				if n == 0 {
					return
				}
				if _, err := c.ProduceBatch(ctx, "bench", batch[:n]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// produceAll writes n records over one pipelined ProduceStream, in requests of perRequest.
func produceAll(tb testing.TB, ctx context.Context, api dislogv1.LogServiceClient, n, perRequest int) {
	tb.Helper()
	stream, err := api.ProduceStream(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	recs := make([]*dislogv1.Record, perRequest)
	for i := range recs {
		recs[i] = &dislogv1.Record{Value: make([]byte, recordSize)}
	}
	requests := (n + perRequest - 1) / perRequest
	errc := make(chan error, 1)
	go func() {
		for sent := 0; sent < n; sent += perRequest {
			if err := stream.Send(&dislogv1.ProduceRequest{Topic: "bench", Records: recs[:min(perRequest, n-sent)]}); err != nil {
				errc <- err
				return
			}
		}
		errc <- stream.CloseSend()
	}()
	for range requests {
		if _, err := stream.Recv(); err != nil {
			tb.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkProduceStream: one ProduceStream with requests of 64 records sent without waiting; one
// op is one record.
func BenchmarkProduceStream(b *testing.B) {
	c, ctx := benchNode(b)
	b.SetBytes(recordSize)
	b.ResetTimer()
	produceAll(b, ctx, c.API(), b.N, 64)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkConsumeStreamReplay: a ConsumeStream from offset 0 over b.N records written before the
// timer starts; one op is one record.
func BenchmarkConsumeStreamReplay(b *testing.B) {
	c, ctx := benchNode(b)
	produceAll(b, ctx, c.API(), b.N, 256)
	b.SetBytes(recordSize)
	b.ResetTimer()
	stream, err := c.API().ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{Topic: "bench", Start: &dislogv1.ConsumeStreamRequest_Offset{Offset: 0}})
	if err != nil {
		b.Fatal(err)
	}
	got := 0
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		got += len(resp.Records)
	}
	if got != b.N {
		b.Fatalf("replayed %d records, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkFollowWakeUp: a caught-up ConsumeStream, and one Produce at a time; wake-µs is the time
// from the call's start to the record's arrival on the stream, fsync included.
func BenchmarkFollowWakeUp(b *testing.B) {
	c, ctx := benchNode(b)
	stream := followLatest(b, ctx, c, "bench")
	rec := client.Record{Value: make([]byte, recordSize)}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := c.Produce(ctx, "bench", rec); err != nil {
			b.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds()), "p50-wake-µs")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), "p99-wake-µs")
}

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/server/servertest"
)

// record1KiB is the value the benchmarks write: 1 KiB, as the speed goals say.
var record1KiB = make([]byte, 1024)

// BenchmarkProducer1KiB is the batching producer's throughput with default options: b.N records of
// 1 KiB through one Producer to a single node that fsyncs every append.
func BenchmarkProducer1KiB(b *testing.B) {
	n := servertest.Start(b, "")
	c := n.Client(b, "alice")
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "bench", client.TopicConfig{}); err != nil {
		b.Fatal(err)
	}
	p, err := client.NewProducer(c, "bench", client.ProducerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	b.SetBytes(int64(len(record1KiB)))
	b.ResetTimer()
	start := time.Now()
	var last client.Result
	for range b.N {
		last = p.Send(ctx, client.Record{Value: record1KiB})
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := last.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkSubscribeReplay1KiB is stream replay: a subscription from offset 0 reading a topic of
// 1 KiB records to its end, b.N records in all.
func BenchmarkSubscribeReplay1KiB(b *testing.B) {
	n := servertest.Start(b, "")
	c := n.Client(b, "alice")
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "bench", client.TopicConfig{}); err != nil {
		b.Fatal(err)
	}
	p, err := client.NewProducer(c, "bench", client.ProducerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		p.Send(ctx, client.Record{Value: record1KiB})
	}
	if err := p.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(record1KiB)))
	b.ResetTimer()
	start := time.Now()
	got := 0
	for rec, err := range c.Subscribe(ctx, "bench", client.AtOffset(0), client.StopAtEnd()) {
		if err != nil {
			b.Fatal(err)
		}
		if rec.Offset != uint64(got) {
			b.Fatalf("offset %d, want %d", rec.Offset, got)
		}
		got++
	}
	if got != b.N {
		b.Fatalf("replayed %d records, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

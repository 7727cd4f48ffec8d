package server_test

import (
	"fmt"
	"testing"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/server/servertest"
	"github.com/matryer/is"
)

// The client's batching producer and subscription against the real server.
func TestTheClientsProducerAndSubscriptionWorkEndToEnd(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	c := n.Client(t, "alice")
	_, err := c.CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)

	p, err := client.NewProducer(c, "t", client.ProducerOptions{MaxBatchRecords: 100})
	is.NoErr(err)
	const total = 2000
	results := make([]client.Result, total)
	for i := range results {
		results[i] = p.Send(ctx, client.Record{Value: fmt.Appendf(nil, "r%d", i)})
	}
	is.NoErr(p.Close())
	for i, r := range results {
		off, err := r.Wait(ctx)
		is.NoErr(err)
		is.Equal(off, uint64(i)) // one producer's records keep their order
	}

	i := 0
	for rec, err := range c.Subscribe(ctx, "t", client.AtOffset(0), client.StopAtEnd()) {
		is.NoErr(err)
		is.Equal(rec.Offset, uint64(i))
		is.Equal(string(rec.Value), fmt.Sprintf("r%d", i))
		i++
	}
	is.Equal(i, total)
}

package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/client/internal/fakelog"
	"github.com/matryer/is"
)

func TestClientDialsWithTLSFilesAndRoundTripsRecords(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	srv := fakelog.Start(t)
	srv.AddTopic("t")
	ca, cert, key := srv.WriteTLSFiles(t, t.TempDir(), "alice")
	c, err := client.Dial(srv.Addr, client.WithTLSFiles(ca, cert, key))
	is.NoErr(err)
	defer c.Close()

	off, err := c.Produce(ctx, "t", client.Record{Key: []byte("k"), Value: []byte("v"), Headers: []client.Header{{Key: "h", Value: []byte("1")}}})
	is.NoErr(err)
	is.Equal(off, uint64(0))
	base, err := c.ProduceBatch(ctx, "t", []client.Record{{Value: []byte("a")}, {Value: []byte("b")}})
	is.NoErr(err)
	is.Equal(base, uint64(1))

	rec, err := c.Consume(ctx, "t", 0)
	is.NoErr(err)
	is.Equal(rec.Offset, uint64(0))
	is.Equal(string(rec.Key), "k")
	is.Equal(string(rec.Value), "v")
	is.Equal(rec.Headers, []client.Header{{Key: "h", Value: []byte("1")}})
	is.True(!rec.Time.IsZero())

	info, err := c.CreateTopic(ctx, "u", client.TopicConfig{RetentionBytes: 10, RetentionAge: time.Minute})
	is.NoErr(err)
	is.Equal(info.Topic, "u")
	info, err = c.DescribeTopic(ctx, "t")
	is.NoErr(err)
	is.Equal(info.NextOffset, uint64(3))
}

func TestDialRefusesToDialWithoutTLS(t *testing.T) {
	is := is.New(t)
	_, err := client.Dial("127.0.0.1:1")
	is.True(errors.Is(err, client.ErrNoTLS))
	_, err = client.Dial("127.0.0.1:1", client.WithTLSFiles("missing-ca.pem", "c.pem", "k.pem"))
	is.True(err != nil && !errors.Is(err, client.ErrNoTLS))
}

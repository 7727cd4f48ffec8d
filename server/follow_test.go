package server_test

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/servertest"
	"github.com/matryer/is"
)

// followLatest opens a ConsumeStream that follows topic from its end, and returns once the server
// has started it.
func followLatest(t testing.TB, ctx context.Context, c *client.Client, topic string) dislogv1.LogService_ConsumeStreamClient {
	t.Helper()
	stream, err := c.API().ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{
		Topic: topic, Follow: true,
		Start: &dislogv1.ConsumeStreamRequest_Position{Position: dislogv1.StartPosition_START_POSITION_LATEST},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	return stream
}

func TestACaughtUpStreamDeliversANewRecordWithinFiveMilliseconds(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	c := n.Client(t, "alice")
	_, err := c.CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)
	stream := followLatest(t, ctx, c, "t")

	var wake []time.Duration
	for range 50 {
		off, err := c.Produce(ctx, "t", client.Record{Value: make([]byte, 1024)})
		is.NoErr(err)
		acked := time.Now()
		resp, err := stream.Recv()
		is.NoErr(err)
		wake = append(wake, max(time.Since(acked), 0))
		is.Equal(resp.Records[0].Offset, off)
	}
	slices.Sort(wake)
	t.Logf("wake-up after the produce's ack: p50 %v, max %v", wake[len(wake)/2], wake[len(wake)-1])
	is.True(wake[len(wake)/2] < 5*time.Millisecond) // median wake-up within 5 ms
}

func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestCaughtUpStreamsUseNoCPUWhileIdle(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	n := servertest.Start(t, "")
	c := n.Client(t, "alice")
	_, err := c.CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)
	var streams []dislogv1.LogService_ConsumeStreamClient
	for range 20 {
		streams = append(streams, followLatest(t, ctx, c, "t"))
	}

	// A measurement window, not a wait for a condition: the process's CPU time over 300 ms in which
	// nothing is produced. A stream that polled or spun would burn a core's worth.
	const window = 300 * time.Millisecond
	before := cpuTime(t)
	<-time.After(window)
	used := cpuTime(t) - before
	t.Logf("CPU time over %v idle with %d followers: %v", window, len(streams), used)
	is.True(used < 15*time.Millisecond) // idle followers must not spin

	// And they are all still following.
	off, err := c.Produce(ctx, "t", client.Record{Value: []byte("x")})
	is.NoErr(err)
	for _, s := range streams {
		resp, err := s.Recv()
		is.NoErr(err)
		is.Equal(resp.Records[0].Offset, off)
	}
}

package client_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/matryer/is"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// produce writes values [from, to) to topic "t" in one batch.
func produce(t *testing.T, c *client.Client, from, to int) {
	t.Helper()
	recs := make([]client.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, client.Record{Value: value(i)})
	}
	if _, err := c.ProduceBatch(context.Background(), "t", recs); err != nil {
		t.Error(err)
	}
}

// collect reads up to n records of seq, failing on an error.
func collect(t *testing.T, seq func(func(client.Record, error) bool), n int) []client.Record {
	t.Helper()
	var got []client.Record
	for rec, err := range seq {
		if err != nil {
			t.Fatalf("after %d records: %v", len(got), err)
		}
		got = append(got, rec)
		if len(got) == n {
			break
		}
	}
	return got
}

func checkOffsets(is *is.I, got []client.Record, first int) {
	for i, rec := range got {
		is.Equal(rec.Offset, uint64(first+i))
		is.Equal(rec.Value, value(first+i))
		is.True(!rec.Time.IsZero())
	}
}

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSubscribeFromOffsetStopsAtEnd(t *testing.T) {
	is := is.New(t)
	_, c := dialFake(t)
	produce(t, c, 0, 10)
	got := collect(t, c.Subscribe(timeout(t), "t", client.AtOffset(3), client.StopAtEnd()), -1)
	is.Equal(len(got), 7)
	checkOffsets(is, got, 3)
}

func TestSubscribeFollowsTheTail(t *testing.T) {
	is := is.New(t)
	_, c := dialFake(t)
	produce(t, c, 0, 5)
	var got []client.Record
	produced := make(chan struct{})
	for rec, err := range c.Subscribe(timeout(t), "t", client.Earliest()) {
		is.NoErr(err)
		got = append(got, rec)
		if len(got) == 5 {
			// Caught up: records written from now on must arrive too.
			go func() {
				defer close(produced)
				produce(t, c, 5, 8)
			}()
		}
		if len(got) == 8 {
			break
		}
	}
	<-produced
	checkOffsets(is, got, 0)
}

func TestSubscribeFromLatestSkipsOlderRecords(t *testing.T) {
	is := is.New(t)
	_, c := dialFake(t)
	produce(t, c, 0, 5)
	ctx, cancel := context.WithCancel(timeout(t))
	records := make(chan client.Record)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for rec, err := range c.Subscribe(ctx, "t", client.Latest()) {
			if err != nil {
				if ctx.Err() == nil {
					t.Error(err)
				}
				return
			}
			select {
			case records <- rec:
			case <-ctx.Done():
				return
			}
		}
	})
	// The subscription starts at some point while records are written: whatever it delivers first,
	// it is past the five older records, and from there nothing is missing.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	written, first := 5, -1
	for first < 0 {
		select {
		case rec := <-records:
			first = int(rec.Offset)
		case <-tick.C:
			produce(t, c, written, written+1)
			written++
		}
	}
	is.True(first >= 5)
	if written < 22 {
		produce(t, c, written, 22)
	}
	for want := first + 1; want < 22; want++ {
		is.Equal((<-records).Offset, uint64(want))
	}
}

func TestSubscribeFromTime(t *testing.T) {
	is := is.New(t)
	_, c := dialFake(t)
	produce(t, c, 0, 4)
	last, err := c.Consume(context.Background(), "t", 3)
	is.NoErr(err)
	// Wait until the clock has moved past the first batch, so the second is strictly later.
	for !time.Now().After(last.Time) {
		runtime.Gosched()
	}
	produce(t, c, 4, 6)
	got := collect(t, c.Subscribe(timeout(t), "t", client.AtTime(last.Time.Add(time.Nanosecond)), client.StopAtEnd()), -1)
	is.Equal(len(got), 2)
	checkOffsets(is, got, 4)
}

func TestSubscribeResumesAfterBrokenStreamsWithoutGapsOrDuplicates(t *testing.T) {
	is := is.New(t)
	srv, c := dialFake(t)
	produce(t, c, 0, 20)
	// Every stream breaks after a few records: the subscription has to resume many times.
	srv.BreakStreams(func(sent int) error {
		if sent >= 2 {
			return status.Error(codes.Unavailable, "connection reset")
		}
		return nil
	})
	var reconnects atomic.Int32
	seq := c.Subscribe(timeout(t), "t", client.AtOffset(0),
		client.WithBackoff(time.Millisecond, 5*time.Millisecond),
		client.OnReconnect(func(err error, _ time.Duration) {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("reconnect after %v", err)
			}
			reconnects.Add(1)
		}))
	got := collect(t, seq, 20)
	checkOffsets(is, got, 0)
	is.True(reconnects.Load() >= 5)
}

func TestSubscribeYieldsAPermanentErrorOnce(t *testing.T) {
	is := is.New(t)
	_, c := dialFake(t)
	var errs []error
	for _, err := range c.Subscribe(timeout(t), "nope", client.Earliest()) {
		errs = append(errs, err)
	}
	is.Equal(len(errs), 1)
	is.Equal(status.Code(errs[0]), codes.NotFound)
}

func TestSubscribeEndsWithTheContext(t *testing.T) {
	is := is.New(t)
	_, c := dialFake(t)
	produce(t, c, 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last error
	n := 0
	for _, err := range c.Subscribe(ctx, "t", client.Earliest()) {
		if err != nil {
			last = err
			continue
		}
		n++
		cancel() // caught up and following: ending ctx ends the sequence
	}
	is.Equal(n, 1)
	is.True(errors.Is(last, context.Canceled))
}

package bench

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestRecorderPercentiles(t *testing.T) {
	is := is.New(t)
	r := newRecorder("a test")
	start := time.Now()
	r.begin(start)
	// 1..1000 µs, once each, and one slow sample.
	for i := 1; i <= 1000; i++ {
		r.observe(time.Duration(i)*time.Microsecond, 1, 10)
	}
	r.observe(2*time.Second, 1, 10)
	r.finish(start.Add(2 * time.Second))
	s := r.stats()
	is.Equal(s.Records, int64(1001))
	is.Equal(s.Bytes, int64(10010))
	is.Equal(s.Latency.Samples, int64(1001))
	is.Equal(s.Latency.Of, "a test")
	near := func(got, want float64) bool { return got >= want*0.999 && got <= want*1.001 }
	is.True(near(s.Latency.P50, 501))   // p50
	is.True(near(s.Latency.P90, 901))   // p90
	is.True(near(s.Latency.P99, 991))   // p99
	is.True(near(s.Latency.P999, 1000)) // p99.9
	is.True(near(s.Latency.Max, 2e6))   // max
	is.True(near(s.RecordsPerSecond, 1001/2.0))
}

func TestRecorderClampsOutOfRangeLatencies(t *testing.T) {
	is := is.New(t)
	r := newRecorder("clamped")
	start := time.Now()
	r.begin(start)
	r.observe(0, 1, 1)
	r.observe(time.Hour, 1, 1)
	r.finish(start.Add(time.Second))
	s := r.stats()
	is.Equal(s.Latency.Samples, int64(2))
	is.True(s.Latency.P50 <= 0.001)       // 0 is recorded as 1 ns
	is.True(s.Latency.Max >= 600e6*0.999) // an hour is recorded as 10 minutes
}

func TestRecorderTimeline(t *testing.T) {
	t.Run("one sample a second, and the tail on its own when it is long enough", func(t *testing.T) {
		is := is.New(t)
		r := newRecorder("timeline")
		start := time.Now()
		r.begin(start)
		for sec := range 3 {
			for range 100 * (sec + 1) {
				r.observe(time.Duration(sec+1)*time.Millisecond, 1, 1)
			}
			r.sample(start.Add(time.Duration(sec+1) * time.Second))
		}
		r.observe(time.Millisecond, 1, 1)
		r.finish(start.Add(3600 * time.Millisecond))
		tl := r.stats().Timeline
		is.Equal(len(tl), 4)
		is.Equal(tl[0].Seconds, 1.0)
		is.Equal(tl[0].Records, int64(100))
		is.Equal(tl[0].RecordsPerSecond, 100.0)
		is.True(tl[0].P99Micros >= 1000 && tl[0].P99Micros <= 1001)
		is.Equal(tl[2].Records, int64(300))
		is.True(tl[2].P99Micros >= 2999 && tl[2].P99Micros <= 3003)
		is.Equal(tl[3].Records, int64(1))
		is.True(tl[3].RecordsPerSecond > 1.6 && tl[3].RecordsPerSecond < 1.7) // 1 record in 0.6 s
	})
	t.Run("a short tail is folded into the last sample", func(t *testing.T) {
		is := is.New(t)
		r := newRecorder("timeline")
		start := time.Now()
		r.begin(start)
		for range 100 {
			r.observe(time.Millisecond, 1, 1)
		}
		r.sample(start.Add(time.Second))
		for range 10 {
			r.observe(50*time.Millisecond, 1, 1)
		}
		r.finish(start.Add(1100 * time.Millisecond))
		r.sample(start.Add(2 * time.Second)) // after finish: ignored
		tl := r.stats().Timeline
		is.Equal(len(tl), 1)
		is.Equal(tl[0].Records, int64(110))
		is.True(tl[0].Seconds > 1.09 && tl[0].Seconds < 1.11)
		is.True(tl[0].RecordsPerSecond > 99 && tl[0].RecordsPerSecond < 101) // 110 records in 1.1 s
		is.True(tl[0].P99Micros >= 49_900)                                   // the tail's latencies count
	})
}

func TestRecorderKeepsAFewDistinctErrors(t *testing.T) {
	is := is.New(t)
	r := newRecorder("errors")
	r.begin(time.Now())
	for i := range 20 {
		r.fail(fmt.Errorf("error %d", i%7), 2)
		r.fail(errors.New("error 0"), 1)
	}
	r.finish(time.Now())
	s := r.stats()
	is.Equal(s.Failed, int64(60))
	is.Equal(s.ErrorSamples, []string{"error 0", "error 1", "error 2", "error 3", "error 4"})
	is.Equal(s.Latency.Max, 0.0) // no latency without a sample
	is.Equal(r.done(), int64(60))
}

package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The histograms' range and precision: 1 ns to 10 minutes (a larger value is recorded as 10
// minutes) with 3 significant digits, so a percentile is within 0.1% of the true value.
const (
	lowestLatency  = int64(time.Nanosecond)
	highestLatency = int64(10 * time.Minute)
	sigFigs        = 3
)

// minTailSample is the shortest last timeline sample kept on its own.
const minTailSample = sampleInterval / 2

// maxErrorSamples bounds the distinct error messages a report keeps.
const maxErrorSamples = 5

// recorder gathers the latencies and counts of one side of a run (produce or consume): a histogram
// of the whole run, and one of the current second for the timeline. It is safe for concurrent use.
type recorder struct {
	latencyOf  string
	start, end time.Time // end is zero until finish

	mu       sync.Mutex
	total    *hdrhistogram.Histogram
	interval *hdrhistogram.Histogram
	previous *hdrhistogram.Histogram // the last sample's interval
	records  int64                   // written or read
	bytes    int64
	failed   int64 // records that failed
	// intervalRecords and intervalStart are the current timeline sample's.
	intervalRecords int64
	intervalStart   time.Time
	timeline        []Sample
	errorSamples    []string

	acks *acks // set for a failover run
}

func newRecorder(latencyOf string) *recorder {
	return &recorder{
		latencyOf: latencyOf,
		total:     hdrhistogram.New(lowestLatency, highestLatency, sigFigs),
		interval:  hdrhistogram.New(lowestLatency, highestLatency, sigFigs),
		previous:  hdrhistogram.New(lowestLatency, highestLatency, sigFigs),
	}
}

// begin starts the measurement at start.
func (r *recorder) begin(start time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.start, r.intervalStart = start, start
}

// observe records one latency sample that covered records records of bytes bytes in all.
func (r *recorder) observe(latency time.Duration, records, bytes int) {
	if r.acks != nil {
		end := time.Now()
		r.acks.ack(end.Add(-latency), end)
	}
	v := min(max(int64(latency), lowestLatency), highestLatency)
	r.mu.Lock()
	defer r.mu.Unlock()
	// Neither can fail: v is within the range the histograms were made for.
	r.total.RecordValue(v)
	r.interval.RecordValue(v)
	r.records += int64(records)
	r.intervalRecords += int64(records)
	r.bytes += int64(bytes)
}

// fail records that records records failed with err.
func (r *recorder) fail(err error, records int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed += int64(records)
	if len(r.errorSamples) == maxErrorSamples {
		return
	}
	msg := err.Error()
	for _, s := range r.errorSamples {
		if s == msg {
			return
		}
	}
	r.errorSamples = append(r.errorSamples, msg)
}

// done is how many records have been handled, failed ones included.
func (r *recorder) done() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.records + r.failed
}

// written is how many records have been written or read.
func (r *recorder) written() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.records
}

// sample ends the current timeline sample at now and starts the next, unless the measurement is
// finished.
func (r *recorder) sample(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.end.IsZero() {
		r.sampleLocked(now)
	}
}

// finish ends the measurement at end, with its last timeline sample. Later calls do nothing.
func (r *recorder) finish(end time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.end.IsZero() {
		return
	}
	r.end = end
	d := end.Sub(r.intervalStart)
	if n := len(r.timeline); n > 0 && d < minTailSample {
		// A sample of a few milliseconds would plot as a spike or a dip: fold the tail into the
		// previous sample, whose histogram is kept for that.
		last := &r.timeline[n-1]
		r.previous.Merge(r.interval)
		d += time.Duration((last.Seconds - r.sampleStart(n-1)) * float64(time.Second))
		last.Seconds = end.Sub(r.start).Seconds()
		last.Records += r.intervalRecords
		last.RecordsPerSecond = float64(last.Records) / d.Seconds()
		last.P99Micros = micros(r.previous.ValueAtQuantile(99))
		return
	}
	r.sampleLocked(end)
}

// sampleStart is when the timeline's i-th sample began, in seconds since the start.
func (r *recorder) sampleStart(i int) float64 {
	if i == 0 {
		return 0
	}
	return r.timeline[i-1].Seconds
}

// sampleLocked ends the current timeline sample at now and starts the next.
func (r *recorder) sampleLocked(now time.Time) {
	d := now.Sub(r.intervalStart)
	if d <= 0 {
		return
	}
	r.timeline = append(r.timeline, Sample{
		Seconds:          now.Sub(r.start).Seconds(),
		Records:          r.intervalRecords,
		RecordsPerSecond: float64(r.intervalRecords) / d.Seconds(),
		P99Micros:        micros(r.interval.ValueAtQuantile(99)),
	})
	r.previous, r.interval = r.interval, r.previous
	r.interval.Reset()
	r.intervalRecords = 0
	r.intervalStart = now
}

// stats summarizes the measurement, which must be finished.
func (r *recorder) stats() *Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	elapsed := r.end.Sub(r.start)
	s := &Stats{
		ElapsedSeconds: elapsed.Seconds(),
		Records:        r.records,
		Bytes:          r.bytes,
		Failed:         r.failed,
		ErrorSamples:   r.errorSamples,
		Timeline:       r.timeline,
		Latency: Latency{
			Of:      r.latencyOf,
			Samples: r.total.TotalCount(),
			Mean:    r.total.Mean() / 1e3,
			P50:     micros(r.total.ValueAtQuantile(50)),
			P90:     micros(r.total.ValueAtQuantile(90)),
			P99:     micros(r.total.ValueAtQuantile(99)),
			P999:    micros(r.total.ValueAtQuantile(99.9)),
			Max:     micros(r.total.Max()),
		},
	}
	if r.total.TotalCount() == 0 {
		s.Latency.Max = 0
	}
	if secs := elapsed.Seconds(); secs > 0 {
		s.RecordsPerSecond = float64(r.records) / secs
		s.MiBPerSecond = float64(r.bytes) / secs / (1 << 20)
	}
	return s
}

func micros(ns int64) float64 { return float64(ns) / 1e3 }

package discovery_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dislog/dislog/discovery"
	"github.com/dislog/dislog/discovery/discoverytest"
)

// The benchmarks below time what the cluster's users wait for, measured at the handlers: the moment
// every member of a 5-node cluster has been told about a change. Each reports the mean, median and
// worst over its iterations as custom metrics; run them with a fixed count, e.g. -benchtime=30x. Setup
// and teardown are outside the timer, so ns/op is close to the mean.

var benchTimings = []struct {
	name    string
	timings discovery.Timings
}{
	{"timings=fast", discoverytest.Timings()},
	{"timings=default", discovery.DefaultTimings()},
}

// BenchmarkJoinConvergence5 starts a fifth node against a running 4-node cluster and measures the time
// until all four have called Handler.Join for it and it has called Join for all four.
func BenchmarkJoinConvergence5(b *testing.B) {
	for _, bt := range benchTimings {
		b.Run(bt.name, func(b *testing.B) {
			withTimings := func(c *discovery.Config) { c.Timings = bt.timings }
			var took []time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				nodes := cluster(b, 4, withTimings)
				b.StartTimer()

				began := time.Now()
				joiner := start(b, "joiner", []string{nodes[0].Addr()}, withTimings)
				last := time.Time{}
				for _, nd := range nodes {
					last = latest(last, waitEvent(b, nd, joiner.name, discoverytest.Join))
					last = latest(last, waitEvent(b, joiner, nd.name, discoverytest.Join))
				}
				took = append(took, last.Sub(began))

				b.StopTimer()
				for _, nd := range append(nodes, joiner) {
					_ = nd.Shutdown()
				}
				b.StartTimer()
			}
			report(b, took, "converge")
		})
	}
}

// BenchmarkFailureDetection5 stops one node of a 5-node cluster without a leave, as a crash would, and
// measures the time until the four others have called Handler.Leave for it.
func BenchmarkFailureDetection5(b *testing.B) {
	for _, bt := range benchTimings {
		b.Run(bt.name, func(b *testing.B) {
			withTimings := func(c *discovery.Config) { c.Timings = bt.timings }
			var took []time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				nodes := cluster(b, 5, withTimings)
				for _, nd := range nodes[1:] {
					waitEvent(b, nd, nodes[0].name, discoverytest.Join) // the join is not counted as news
				}
				b.StartTimer()

				victim := nodes[4]
				began := time.Now()
				_ = victim.Shutdown()
				last := time.Time{}
				for _, nd := range nodes[:4] {
					last = latest(last, waitEvent(b, nd, victim.name, discoverytest.Leave))
				}
				took = append(took, last.Sub(began))

				b.StopTimer()
				for _, nd := range nodes {
					_ = nd.Shutdown()
				}
				b.StartTimer()
			}
			report(b, took, "detect")
		})
	}
}

// waitEvent waits until nd's handler has been told k about id, and returns when it was told.
func waitEvent(b testing.TB, nd *node, id string, k discoverytest.Kind) time.Time {
	var at time.Time
	discoverytest.WaitFor(b, time.Minute, fmt.Sprintf("%s to hear %s %s", nd.name, k, id), func() bool {
		e, ok := nd.rec.Last(id)
		at = e.At
		return ok && e.Kind == k
	})
	return at
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// report adds the mean, median and worst of took as custom metrics named what-ms-mean, -p50 and -max.
func report(b *testing.B, took []time.Duration, what string) {
	if len(took) == 0 {
		return
	}
	var sum time.Duration
	for _, d := range took {
		sum += d
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(sum/time.Duration(len(took))), what+"-ms-mean")
	b.ReportMetric(ms(took[len(took)/2]), what+"-ms-p50")
	b.ReportMetric(ms(took[len(took)-1]), what+"-ms-max")
}

package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Report is the outcome of a run. Its JSON form is dislog-bench's --json output; latencies are in
// microseconds.
type Report struct {
	Workload Workload `json:"workload"`
	Topic    string   `json:"topic"`
	// Partitions and ReplicationFactor are the topic's when the run began (ReplicationFactor 0:
	// the server did not say); Keys is set when records had keys.
	Partitions        int  `json:"partitions"`
	ReplicationFactor int  `json:"replication_factor,omitempty"`
	Keys              bool `json:"keys,omitempty"`
	// Target says what the clients talked to, for people.
	Target     string  `json:"target,omitempty"`
	RecordSize int     `json:"record_size"`
	Clients    int     `json:"clients"`
	Consumers  int     `json:"consumers,omitempty"`
	Window     int     `json:"window,omitempty"`
	Batch      int     `json:"batch,omitempty"`
	Rate       float64 `json:"rate,omitempty"`
	Count      int64   `json:"count,omitempty"`
	// Duration is the one asked for, in seconds; ElapsedSeconds the measured one, from the start
	// until the last client or consumer was done.
	Duration       float64 `json:"duration_seconds,omitempty"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Produce is nil for Replay, Consume for every workload but Replay and Mixed.
	Produce *Stats `json:"produce,omitempty"`
	Consume *Stats `json:"consume,omitempty"`
	// Failover is set for a run that killed the leader.
	Failover *FailoverStats `json:"failover,omitempty"`
	// Servers and Cluster are what the server processes used during the measurement, for a run
	// with Config.Processes.
	Servers []ServerUsage `json:"servers,omitempty"`
	Cluster *ClusterUsage `json:"cluster,omitempty"`
	// Leaders is how the topic's partitions were spread at the end, for a run with
	// Config.Leaders.
	Leaders *Leaders `json:"leaders,omitempty"`
}

// acknowledged returns the records the run acknowledged and their bytes of record data: those
// produced, or, for a run that produced nothing, those read.
func (r *Report) acknowledged() (records, bytes int64) {
	for _, s := range []*Stats{r.Produce, r.Consume} {
		if s != nil {
			return s.Records, s.Bytes
		}
	}
	return 0, 0
}

// Stats are one side of a run: its records, throughput and latency.
type Stats struct {
	// ElapsedSeconds is how long this side ran: Mixed producers stop before their consumers.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Records        int64   `json:"records"`
	// Bytes is the record data of Records: keys and values.
	Bytes            int64   `json:"bytes"`
	Failed           int64   `json:"failed"`
	RecordsPerSecond float64 `json:"records_per_second"`
	MiBPerSecond     float64 `json:"mib_per_second"`
	Latency          Latency `json:"latency"`
	// ErrorSamples are the first distinct error messages, at most five.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Timeline has one sample a second, and one for the last part second.
	Timeline []Sample `json:"timeline"`
}

// Latency is a latency distribution, in microseconds, from an HDR histogram with 3 significant
// digits.
type Latency struct {
	// Of says what one sample measures.
	Of      string  `json:"of"`
	Samples int64   `json:"samples"`
	Mean    float64 `json:"mean_us"`
	P50     float64 `json:"p50_us"`
	P90     float64 `json:"p90_us"`
	P99     float64 `json:"p99_us"`
	P999    float64 `json:"p99_9_us"`
	Max     float64 `json:"max_us"`
}

// Sample is one point of a timeline.
type Sample struct {
	// Seconds is when the sample ended, since the measurement started.
	Seconds          float64 `json:"seconds"`
	Records          int64   `json:"records"`
	RecordsPerSecond float64 `json:"records_per_second"`
	P99Micros        float64 `json:"p99_us"`
}

// Failed is how many records failed, produced or consumed.
func (r *Report) Failed() int64 {
	var n int64
	for _, s := range []*Stats{r.Produce, r.Consume} {
		if s != nil {
			n += s.Failed
		}
	}
	return n
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", r.Workload, r.describe())
	if r.Target != "" {
		fmt.Fprintf(&b, "target: %s\n", r.Target)
	}
	for _, side := range []struct {
		name string
		s    *Stats
	}{{"produce", r.Produce}, {"consume", r.Consume}} {
		s := side.s
		if s == nil {
			continue
		}
		fmt.Fprintf(&b, "%-8s %d records in %s: %.0f records/s, %.2f MiB/s, %d failed\n",
			side.name, s.Records, seconds(s.ElapsedSeconds), s.RecordsPerSecond, s.MiBPerSecond, s.Failed)
		l := s.Latency
		fmt.Fprintf(&b, "%-8s latency of %s (%d samples): p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n",
			"", l.Of, l.Samples, us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max), us(l.Mean))
		for _, e := range s.ErrorSamples {
			fmt.Fprintf(&b, "%-8s error: %s\n", "", e)
		}
	}
	if f := r.Failover; f != nil {
		for _, k := range f.Kills {
			if k.Resumed {
				fmt.Fprintf(&b, "failover %s node %d (the leader) at %s: no produce acknowledged for %s; resumed %s after the %s\n",
					k.verb(), k.Node, seconds(k.AtSeconds), us(k.GapMillis*1e3), us(k.ResumedMillis*1e3), k.Signal)
			} else {
				fmt.Fprintf(&b, "failover %s node %d (the leader) at %s: produce had not resumed when the run ended\n", k.verb(), k.Node, seconds(k.AtSeconds))
			}
		}
		fmt.Fprintf(&b, "failover %s: longest gap %s, median %s\n", plural(len(f.Kills), "kill"), us(f.MaxGapMillis*1e3), us(f.GapP50Millis*1e3))
	}
	r.writeUsage(&b)
	if r.Leaders != nil {
		writeLeaders(&b, "leaders ", r.Leaders)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeLeaders writes a line of what each server leads and holds.
func writeLeaders(b *strings.Builder, prefix string, l *Leaders) {
	var parts []string
	for _, s := range l.Servers {
		parts = append(parts, fmt.Sprintf("%s leads %d, holds %d", s.Server, s.Leads, s.Replicas))
	}
	balance := "balanced"
	if !l.Balanced {
		balance = "NOT balanced"
	}
	fmt.Fprintf(b, "%s %s, R%d: %s; %d without a leader; %s (each server P/N ± 1 leaders, P·R/N ± 1 replicas)\n",
		prefix, plural(l.Partitions, "partition"), l.ReplicationFactor, strings.Join(parts, "; "), l.Leaderless, balance)
}

// writeUsage writes what the servers used, a line each, and the cluster's totals.
func (r *Report) writeUsage(b *strings.Builder) {
	for _, s := range r.Servers {
		if s.Restarted {
			fmt.Fprintf(b, "server   %s (pid %d): restarted during the run, not measured\n", s.Name, s.PID)
			continue
		}
		fmt.Fprintf(b, "server   %s (pid %d): CPU %.2fs (%.2f cores, %.2fx the mean), wrote %s (%.3f bytes per acknowledged byte, %.2fx the mean), RSS %s\n",
			s.Name, s.PID, s.CPUSeconds, s.Cores, s.CPUOfMean, mib(s.WriteBytes), s.WritePerRecordByte, s.WriteOfMean, mib(s.RSSBytes))
	}
	if c := r.Cluster; c != nil {
		fmt.Fprintf(b, "cluster  %s: CPU %.2fs, %.2f µs per record; wrote %s, %.3f bytes per acknowledged byte per server; busiest %.2fx the mean CPU, %.2fx the mean writes; the client %.2fs CPU\n",
			plural(c.Servers, "server"), c.CPUSeconds, c.CPUMicrosPerRecord, mib(c.WriteBytes), c.WritePerRecordByte, c.MaxCPUOfMean, c.MaxWriteOfMean, c.ClientCPUSeconds)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// describe says in a line what the run did.
func (r *Report) describe() string {
	parts := []string{plural(r.Clients, "client")}
	switch r.Workload {
	case Sync:
		parts = append(parts, "1 record in flight each")
	case Async:
		parts = append(parts, fmt.Sprintf("window %d records", r.Window))
	case Batch:
		parts = append(parts, fmt.Sprintf("%d records a call", r.Batch))
	case Mixed:
		parts = append(parts, fmt.Sprintf("window %d records", r.Window), plural(r.Consumers, "consumer"))
	}
	parts = append(parts, fmt.Sprintf("%d-byte records", r.RecordSize))
	if r.Keys {
		parts = append(parts, fmt.Sprintf("%d-byte keys", KeyBytes))
	}
	if r.Count > 0 {
		parts = append(parts, fmt.Sprintf("%d records", r.Count))
	} else {
		parts = append(parts, seconds(r.Duration))
	}
	if r.Rate > 0 {
		parts = append(parts, fmt.Sprintf("at most %g records/s", r.Rate))
	}
	topic := fmt.Sprintf(", topic %q", r.Topic)
	if r.Partitions > 1 || r.ReplicationFactor > 0 {
		topic += fmt.Sprintf(" (%s, R%d)", plural(r.Partitions, "partition"), r.ReplicationFactor)
	}
	return strings.Join(parts, ", ") + topic
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

// us formats microseconds in a unit that suits them, with about three significant digits.
func us(v float64) string {
	switch {
	case v >= 1e6:
		return digits3(v/1e6) + "s"
	case v >= 1e3:
		return digits3(v/1e3) + "ms"
	default:
		return digits3(v) + "µs"
	}
}

func digits3(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

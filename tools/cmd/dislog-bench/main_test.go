package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dislog/dislog/server/localcluster"
	"github.com/dislog/dislog/tools/bench"
	"github.com/matryer/is"
)

// runBench runs dislog-bench with args and the environment vars, and returns its exit code and output.
func runBench(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, env{
		stdout: &out,
		stderr: &errOut,
		lookupEnv: func(k string) (string, bool) {
			v, ok := vars[k]
			return v, ok
		},
	})
	return code, out.String(), errOut.String()
}

// runJSON runs dislog-bench with --json, expects success and returns the report.
func runJSON(t *testing.T, vars map[string]string, args ...string) *bench.Report {
	t.Helper()
	code, stdout, stderr := runBench(t, vars, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("dislog-bench %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("dislog-bench %s: %v\n%s", strings.Join(args, " "), err, stdout)
	}
	return &rep
}

// checkStats checks one side of a report: the records asked for, none failed, a throughput, and
// latency percentiles in order.
func checkStats(t *testing.T, side string, s *bench.Stats, records int64) {
	t.Helper()
	if s == nil {
		t.Fatalf("%s: no stats", side)
	}
	if s.Records != records || s.Failed != 0 || len(s.ErrorSamples) != 0 {
		t.Errorf("%s: %d records, %d failed (%q), want %d and none", side, s.Records, s.Failed, s.ErrorSamples, records)
	}
	if s.RecordsPerSecond <= 0 || s.MiBPerSecond <= 0 || s.ElapsedSeconds <= 0 {
		t.Errorf("%s: %g records/s, %g MiB/s in %gs, want more than 0", side, s.RecordsPerSecond, s.MiBPerSecond, s.ElapsedSeconds)
	}
	l := s.Latency
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("%s: latency p50 %g, p90 %g, p99 %g, p99.9 %g, max %g µs: want 0 < each ≤ the next", side, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	if l.Samples == 0 || l.Of == "" {
		t.Errorf("%s: latency of %q with %d samples", side, l.Of, l.Samples)
	}
	var timeline int64
	for _, smp := range s.Timeline {
		timeline += smp.Records
	}
	if len(s.Timeline) == 0 || timeline != s.Records {
		t.Errorf("%s: timeline of %d samples with %d records, want some with %d", side, len(s.Timeline), timeline, s.Records)
	}
}

func TestEveryWorkloadAgainstANodeInProcess(t *testing.T) {
	tests := []struct {
		name             string
		args             []string
		produce, consume int64
	}{
		{"sync produce writes the count", []string{"sync", "--count", "300"}, 300, 0},
		{"sync produce shares an uneven count among clients", []string{"sync", "--count", "301", "--clients", "3"}, 301, 0},
		{"windowed produce writes the count", []string{"async", "--count", "5000", "--window", "64"}, 5000, 0},
		{"windowed produce without linger writes the count", []string{"async", "--count", "3001", "--clients", "2", "--linger", "-1ms"}, 3001, 0},
		{"batched produce writes the count with a last short batch", []string{"batch", "--count", "1050", "--batch", "100"}, 1050, 0},
		{"replay reads the count from offset 0", []string{"replay", "--count", "2000", "--clients", "2"}, 0, 2000},
		{"mixed: every consumer reads every record produced", []string{"mixed", "--count", "2000", "--consumers", "2", "--window", "128"}, 2000, 4000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := runJSON(t, nil, append(tc.args, "--cluster", "1", "--record-size", "512")...)
			if rep.RecordSize != 512 || rep.Topic != bench.DefaultTopic || !strings.Contains(rep.Target, "127.0.0.1:") {
				t.Errorf("report of %d-byte records, topic %q, target %q", rep.RecordSize, rep.Topic, rep.Target)
			}
			if tc.produce > 0 {
				checkStats(t, "produce", rep.Produce, tc.produce)
				if rep.Produce.Bytes != 512*tc.produce {
					t.Errorf("produce: %d bytes, want %d", rep.Produce.Bytes, 512*tc.produce)
				}
			} else if rep.Produce != nil {
				t.Errorf("produce stats %+v, want none", rep.Produce)
			}
			if tc.consume > 0 {
				checkStats(t, "consume", rep.Consume, tc.consume)
			} else if rep.Consume != nil {
				t.Errorf("consume stats %+v, want none", rep.Consume)
			}
		})
	}
}

// Every workload on a topic of three partitions: records spread over them (sticky, in turn, or by
// key), replay and mixed read them all, and the report counts keys as record data, measures the
// node's process and, with --leaders, says who leads what.
func TestEveryWorkloadOnPartitions(t *testing.T) {
	tests := []struct {
		name             string
		args             []string
		produce, consume int64
		keyed            bool
	}{
		{"sync produce names the partitions in turn", []string{"sync", "--count", "300"}, 300, 0, false},
		{"sync produce with keys", []string{"sync", "--count", "300", "--keys"}, 300, 0, true},
		{"windowed produce to sticky partitions", []string{"async", "--count", "5000", "--window", "64", "--clients", "2"}, 5000, 0, false},
		{"windowed produce with keys", []string{"async", "--count", "5000", "--window", "64", "--keys"}, 5000, 0, true},
		{"batched produce with keys", []string{"batch", "--count", "1050", "--batch", "100", "--keys"}, 1050, 0, true},
		{"replay reads every partition", []string{"replay", "--count", "2000", "--clients", "2"}, 0, 2000, false},
		{"mixed: every consumer reads every record of every partition", []string{"mixed", "--count", "2000", "--consumers", "2", "--window", "128", "--keys"}, 2000, 4000, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			rep := runJSON(t, nil, append(tc.args, "--cluster", "1", "--record-size", "512", "--partitions", "3", "--leaders")...)
			is.Equal(rep.Partitions, 3)
			is.Equal(rep.Keys, tc.keyed)
			size := int64(512)
			if tc.keyed {
				size += bench.KeyBytes
			}
			if tc.produce > 0 {
				checkStats(t, "produce", rep.Produce, tc.produce)
				is.Equal(rep.Produce.Bytes, size*tc.produce) // keys count as record data
			}
			if tc.consume > 0 {
				checkStats(t, "consume", rep.Consume, tc.consume)
			}
			is.Equal(len(rep.Servers), 1) // the node, in this process
			is.True(rep.Servers[0].PID == os.Getpid() && rep.Servers[0].CPUSeconds > 0 && rep.Servers[0].RSSBytes > 0)
			is.True(rep.Cluster != nil && rep.Cluster.Servers == 1 && rep.Cluster.CPUMicrosPerRecord > 0)
			is.True(rep.Leaders != nil)
			is.Equal(rep.Leaders.Partitions, 3)
			is.Equal(len(rep.Leaders.Servers), 1)
			is.Equal(rep.Leaders.Servers[0].Leads, 3)
			is.True(rep.Leaders.Balanced)
		})
	}
}

// The records of a run without keys reach every partition: the producer's sticky partition
// moves on after each batch, and one-record calls name the partitions in turn.
func TestRecordsSpreadOverThePartitions(t *testing.T) {
	cl, err := localcluster.StartInProcess()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	files := cl.ClientTLS
	vars := map[string]string{"DISLOG_ADDR": cl.Addrs[0], "DISLOG_CA": files.CAFile, "DISLOG_CERT": files.CertFile, "DISLOG_KEY": files.KeyFile}
	for _, args := range [][]string{
		{"sync", "--count", "40", "--topic", "spread-sync"},
		{"async", "--count", "20000", "--window", "256", "--topic", "spread-async"},
		{"batch", "--count", "4000", "--batch", "100", "--topic", "spread-batch"},
	} {
		t.Run(args[0], func(t *testing.T) {
			is := is.New(t)
			rep := runJSON(t, vars, append(args, "--partitions", "4")...)
			checkStats(t, "produce", rep.Produce, rep.Count)
			c, err := cl.Dial(cl.Addrs[0])
			is.NoErr(err)
			defer c.Close()
			info, err := c.DescribeTopic(context.Background(), rep.Topic)
			is.NoErr(err)
			is.Equal(len(info.PartitionInfo), 4)
			total := uint64(0)
			for _, pi := range info.PartitionInfo {
				if pi.NextOffset == 0 {
					t.Errorf("partition %d got no record", pi.Partition)
				}
				total += pi.NextOffset
			}
			is.Equal(total, uint64(rep.Count))
		})
	}
}

func TestTextReportNamesTheWorkloadAndPercentiles(t *testing.T) {
	is := is.New(t)
	code, stdout, stderr := runBench(t, nil, "batch", "--cluster", "1", "--count", "500", "--batch", "50")
	is.Equal(code, 0) // exit code
	is.Equal(stderr, "")
	for _, want := range []string{"batch: 1 client, 50 records a call, 1024-byte records, 500 records", "produce  500 records in", "p50 ", "p90 ", "p99 ", "p99.9 ", "max ", "0 failed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestPlotIsAPNG(t *testing.T) {
	is := is.New(t)
	file := filepath.Join(t.TempDir(), "run.png")
	rep := runJSON(t, nil, "mixed", "--cluster", "1", "--count", "1000", "--plot", file)
	checkStats(t, "produce", rep.Produce, 1000)
	f, err := os.Open(file)
	is.NoErr(err)
	defer f.Close()
	img, format, err := image.Decode(f)
	is.NoErr(err) // the plot decodes
	is.Equal(format, "png")
	is.True(img.Bounds().Dx() >= 600 && img.Bounds().Dy() >= 400) // a readable size
}

func TestRateLimitHoldsTheRate(t *testing.T) {
	is := is.New(t)
	rep := runJSON(t, nil, "sync", "--cluster", "1", "--count", "200", "--rate", "1000", "--clients", "2")
	checkStats(t, "produce", rep.Produce, 200)
	// 200 records at 1000/s, of which a burst of 10 may go at once, take at least 190 ms; a little
	// less is allowed for the clock.
	is.True(rep.Produce.ElapsedSeconds >= 0.15)       // the limit slowed the run
	is.True(rep.Produce.RecordsPerSecond <= 1000*1.2) // the rate stayed within the limit
	is.True(rep.Rate == 1000 && rep.Clients == 2)     // the report says what was asked
	is.True(rep.Produce.ElapsedSeconds <= rep.ElapsedSeconds)
}

func TestDurationRunsForTheDuration(t *testing.T) {
	is := is.New(t)
	rep := runJSON(t, nil, "replay", "--cluster", "1", "--duration", "300ms", "--preload", "500")
	is.True(rep.Consume.Records > 0)       // the replay read
	is.Equal(rep.Consume.Failed, int64(0)) // and nothing failed
	is.True(rep.ElapsedSeconds >= 0.3)     // it ran the duration
	is.True(rep.Duration == 0.3 && rep.Count == 0)
	is.True(rep.Consume.Records >= 500) // the topic was filled to --preload and read at least once
}

func TestAgainstRunningServers(t *testing.T) {
	cl, err := localcluster.StartInProcess()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	files := cl.ClientTLS

	t.Run("with TLS flags", func(t *testing.T) {
		rep := runJSON(t, nil, "sync", "--addr", cl.Addrs[0], "--tls-ca-file", files.CAFile, "--tls-cert-file", files.CertFile, "--tls-key-file", files.KeyFile, "--count", "50", "--topic", "flags")
		checkStats(t, "produce", rep.Produce, 50)
		if rep.Target != cl.Addrs[0] || rep.Topic != "flags" {
			t.Errorf("target %q, topic %q", rep.Target, rep.Topic)
		}
	})
	t.Run("with a dev node's certificate found in its data directory, from the environment", func(t *testing.T) {
		dataDir := t.TempDir()
		dev := filepath.Join(dataDir, "pki", "dev")
		if err := os.MkdirAll(dev, 0o755); err != nil {
			t.Fatal(err)
		}
		for from, to := range map[string]string{files.CAFile: "ca.pem", files.CertFile: "dev.pem", files.KeyFile: "dev-key.pem"} {
			b, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dev, to), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		rep := runJSON(t, map[string]string{"DISLOG_ADDR": cl.Addrs[0], "DISLOG_DATA_DIR": dataDir}, "async", "--count", "100", "--topic", "dev")
		checkStats(t, "produce", rep.Produce, 100)
	})
	t.Run("into a topic that already has records", func(t *testing.T) {
		vars := map[string]string{"DISLOG_ADDR": cl.Addrs[0], "DISLOG_CA": files.CAFile, "DISLOG_CERT": files.CertFile, "DISLOG_KEY": files.KeyFile}
		runJSON(t, vars, "batch", "--count", "100", "--topic", "again")
		rep := runJSON(t, vars, "replay", "--count", "150", "--topic", "again")
		checkStats(t, "consume", rep.Consume, 150)
	})
}

func TestErrorsSayWhatToDo(t *testing.T) {
	noReplication := filepath.Join(t.TempDir(), "dislog")
	script := "#!/bin/sh\necho 'Usage: dislog [flags]'\necho '      --addr string   address'\necho '      --node-id string   name'\n"
	if err := os.WriteFile(noReplication, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		vars map[string]string
		args []string
		want []string
	}{
		{"too many partitions", nil, []string{"async", "--cluster", "1", "--count", "5", "--partitions", "2000"}, []string{"2000 partitions: want 1 to 1024"}},
		{"idle without server processes", nil, []string{"idle", "--cluster", "1"}, []string{"idle measures server processes"}},
		{"idle restarting servers it did not start", nil, []string{"idle", "--server-pid", "1", "--restart", "term"}, []string{"--restart needs --cluster 3 or 5"}},
		{"idle with an unknown restart", nil, []string{"idle", "--cluster", "3", "--restart", "nicely"}, []string{`--restart "nicely": want term or kill`}},
		{"a count and a duration", nil, []string{"sync", "--cluster", "1", "--count", "5", "--duration", "1s"}, []string{"give a count or a duration, not both or neither"}},
		{"a cluster of two", nil, []string{"sync", "--cluster", "2", "--count", "5"}, []string{"--cluster 2: want 1, 3 or 5"}},
		{"an address and a cluster", nil, []string{"sync", "--cluster", "1", "--addr", "127.0.0.1:1"}, []string{"give --addr or --cluster, not both"}},
		{"a record too small for a send time", nil, []string{"mixed", "--cluster", "1", "--count", "5", "--record-size", "4"}, []string{"record size 4: the mixed workload needs at least 8 bytes"}},
		{"an unknown workload", nil, []string{"fetch"}, []string{`unknown command "fetch"`}},
		{"no dev certificate", map[string]string{"DISLOG_DATA_DIR": t.TempDir()}, []string{"sync", "--count", "5"}, []string{"no dev client certificate", "--cluster 1"}},
		{"some of the TLS files", nil, []string{"sync", "--count", "5", "--tls-ca-file", "ca.pem"}, []string{"give all of --tls-ca-file, --tls-cert-file and --tls-key-file"}},
		{"a failover without a cluster of processes", nil, []string{"sync", "--cluster", "1", "--duration", "5s", "--kill-leader", "1"}, []string{"--kill-leader and --pause-leader need --cluster 3 or 5"}},
		{"a kill and a pause at once", nil, []string{"sync", "--cluster", "3", "--duration", "10s", "--kill-leader", "1", "--pause-leader", "1"}, []string{"give --kill-leader or --pause-leader, not both"}},
		{"a failover run too short for its kills", nil, []string{"sync", "--cluster", "3", "--duration", "5s", "--kill-leader", "3", "--kill-every", "2s"}, []string{"duration 5s is too short for 3 kills 2s apart: give at least 8s"}},
		{"a failover with a count", nil, []string{"sync", "--cluster", "3", "--count", "5", "--kill-leader", "1"}, []string{"a failover run needs a duration"}},
		{"a dislog without replication for a cluster of three", nil, []string{"sync", "--cluster", "3", "--dislog-bin", noReplication, "--count", "5"},
			[]string{"--cluster 3:", "cannot start a replicated cluster", "no --bootstrap, --join, --serf-addr flag", "use --cluster 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runBench(t, tc.vars, tc.args...)
			if code != 1 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing", code, stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestProgressBarOnRequest(t *testing.T) {
	is := is.New(t)
	code, _, stderr := runBench(t, nil, "sync", "--cluster", "1", "--count", "3000", "--rate", "6000", "--progress")
	is.Equal(code, 0)
	is.True(strings.Contains(stderr, fmt.Sprintf("/%d", 3000))) // the bar shows the count
}

func TestRefusedRecordsAreCountedAndFailTheRun(t *testing.T) {
	for _, workload := range []string{"sync", "async", "batch"} {
		t.Run(workload, func(t *testing.T) {
			is := is.New(t)
			// Records over the server's 1 MiB limit: every one is refused with ResourceExhausted.
			code, stdout, stderr := runBench(t, nil, workload, "--cluster", "1", "--count", "3", "--record-size", "1200000", "--json")
			is.Equal(code, 1) // a run with failed records fails
			is.True(strings.Contains(stderr, "records failed: 3"))
			var rep bench.Report
			is.NoErr(json.Unmarshal([]byte(stdout), &rep)) // the report is still printed
			is.Equal(rep.Produce.Records, int64(0))
			is.Equal(rep.Produce.Failed, int64(3))
			is.Equal(rep.Failed(), int64(3))
			is.Equal(len(rep.Produce.ErrorSamples), 1)
			if !strings.Contains(rep.Produce.ErrorSamples[0], "ResourceExhausted") {
				t.Errorf("error sample %q, want the server's ResourceExhausted", rep.Produce.ErrorSamples[0])
			}
		})
	}
}

// A failover run against three dislog processes kills (or freezes) the leader twice and reports,
// for each time, a gap that produce resumed after; no record fails, since the client retries. The
// run lasts until the second kill is over, however long its restart takes: a run that ended
// before produce resumed from the last kill used to fail this test now and then.
func TestAFailoverRunReportsTheGapOfEachKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dislog processes: skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := localcluster.BuildDislog(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, signal string
		flags        []string
	}{
		{"killed", bench.SignalKill, []string{"--kill-leader", "2"}},
		{"frozen", bench.SignalStop, []string{"--pause-leader", "2", "--pause-for", "2s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The nodes' output, for a failure to show (a node that overran its shutdown says where).
			clusterLog := filepath.Join(t.TempDir(), "cluster.log")
			t.Cleanup(func() {
				if t.Failed() {
					b, _ := os.ReadFile(clusterLog)
					t.Logf("--- the nodes' log:\n%s", b)
				}
			})
			args := append([]string{"sync", "--cluster", "3", "--dislog-bin", bin, "--cluster-log", clusterLog,
				"--clients", "2", "--duration", "4500ms", "--kill-every", "1500ms"}, tc.flags...)
			rep := runJSON(t, nil, args...)
			if rep.Failover == nil || len(rep.Failover.Kills) != 2 {
				t.Fatalf("report's failover %+v: want 2 kills", rep.Failover)
			}
			for i, k := range rep.Failover.Kills {
				// An election's length, not a run's; the gap holds the part after the signal.
				if !k.Resumed || k.Signal != tc.signal || k.GapMillis <= 0 || k.GapMillis >= 30_000 || k.ResumedMillis <= 0 || k.ResumedMillis > k.GapMillis {
					t.Errorf("kill %d: %+v: want %s, resumed, 0 < resumed_after_ms <= gap_ms < 30000", i+1, k, tc.signal)
				}
			}
			if rep.Failover.MaxGapMillis < rep.Failover.GapP50Millis {
				t.Errorf("max gap %.0f ms < median %.0f ms", rep.Failover.MaxGapMillis, rep.Failover.GapP50Millis)
			}
			if rep.Produce.Failed != 0 || rep.Produce.Records == 0 {
				t.Errorf("produce: %d records, %d failed (samples %q): want some, none failed", rep.Produce.Records, rep.Produce.Failed, rep.Produce.ErrorSamples)
			}
		})
	}
}

// Against three dislog processes: a run on partitions of three replicas measures every server
// (each writes the record data at least once), and the idle run times a topic's elections,
// measures the idle servers, restarts them all and times the elections again.
func TestPartitionsOnThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dislog processes: skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := localcluster.BuildDislog(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("async", func(t *testing.T) {
		is := is.New(t)
		rep := runJSON(t, nil, "async", "--cluster", "3", "--dislog-bin", bin, "--duration", "2s", "--window", "512",
			"--partitions", "6", "--replicas", "3", "--leaders")
		is.Equal(rep.Partitions, 6)
		is.Equal(rep.ReplicationFactor, 3)
		is.True(rep.Produce.Records > 0)
		is.Equal(len(rep.Servers), 3)
		for _, s := range rep.Servers {
			// Every server holds every partition and writes each record at least once (a
			// little may still be in flight when the run ends).
			if s.Restarted || s.CPUSeconds <= 0 || s.WritePerRecordByte < 0.9 || s.RSSBytes <= 0 || s.CPUOfMean <= 0 {
				t.Errorf("server %+v: want measured, with CPU, at least 0.9 bytes written per byte of record data, and memory", s)
			}
		}
		is.Equal(rep.Cluster.Servers, 3)
		is.True(rep.Cluster.CPUMicrosPerRecord > 0)
		is.Equal(rep.Leaders.Partitions, 6)
		is.Equal(rep.Leaders.Leaderless, 0)
		leads := 0
		for _, s := range rep.Leaders.Servers {
			is.Equal(s.Replicas, 6)
			leads += s.Leads
		}
		is.Equal(leads, 6)
	})
	t.Run("idle", func(t *testing.T) {
		is := is.New(t)
		code, stdout, stderr := runBench(t, nil, "idle", "--cluster", "3", "--dislog-bin", bin, "--duration", "1s",
			"--partitions", "8", "--replicas", "3", "--restart", "term", "--json")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		var rep bench.IdleReport
		is.NoErr(json.Unmarshal([]byte(stdout), &rep))
		is.Equal(rep.Partitions, 8)
		is.True(rep.CreateSeconds > 0 && rep.CreateSeconds >= rep.CreateCallSeconds)
		is.True(rep.IdleSeconds >= 1)
		is.Equal(len(rep.Servers), 3)
		for _, s := range rep.Servers {
			is.Equal(s.Replicas, 8)
			is.True(s.RSSBytes > 0 && s.RSSBeforeBytes > 0 && s.RSSPerPartitionBytes > 0)
		}
		is.Equal(rep.Leaders.Leaderless, 0)
		is.True(rep.LeadersIdle != nil && rep.LeadersIdle.Partitions == 8)
		is.True(rep.StopSeconds > 0 && rep.RestartSeconds > 0)
		is.True(rep.LeadersRestart != nil)
		is.Equal(rep.LeadersRestart.Leaderless, 0) // every partition has a leader again
	})
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/client/ctl"
	"github.com/dislog/dislog/server/localcluster"
	"github.com/dislog/dislog/tools/bench"
	"github.com/dislog/dislog/tools/internal/proc"
	"github.com/spf13/cobra"
)

// Defaults of the connection flags: those of dislogctl, which match what `dislog` does with no
// flags.
const (
	defaultAddr    = "127.0.0.1:7070"
	defaultDataDir = "dislog-data"
	// devClientDir is where, under the data directory, a dev node writes the client "dev" files.
	devClientDir = "pki/dev"

	// defaultDuration is how long a run with neither --count nor --duration lasts.
	defaultDuration = 10 * time.Second
)

// env is what dislog-bench takes from the process: streams and environment variables.
type env struct {
	stdout, stderr   io.Writer
	stderrIsTerminal bool
	lookupEnv        func(string) (string, bool)
}

// app holds the flags.
type app struct {
	env
	addr, dataDir, ca, cert, key string
	cluster                      int
	dislogBin, clusterLog        string
	dislogArgs                   []string
	jsonOut, progress            bool
	plotFile                     string
	kills, pauses                int
	killEvery, pauseFor          time.Duration
	pids                         []int
	cfg                          bench.Config
}

// envFlags maps connection flags to their environment variables, which dislogctl reads too.
var envFlags = map[string]string{
	"addr":          "DISLOG_ADDR",
	"data-dir":      "DISLOG_DATA_DIR",
	"tls-ca-file":   "DISLOG_CA",
	"tls-cert-file": "DISLOG_CERT",
	"tls-key-file":  "DISLOG_KEY",
}

// errFailedRecords is returned, after the report is printed, when records failed.
var errFailedRecords = errors.New("records failed")

// run runs dislog-bench with args and returns the exit code.
func run(ctx context.Context, args []string, e env) int {
	a := &app{env: e}
	cmd := a.rootCommand()
	cmd.SetArgs(args)
	cmd.SetOut(e.stdout)
	cmd.SetErr(e.stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(e.stderr, "dislog-bench: %v\n", err)
		return 1
	}
	return 0
}

func (a *app) rootCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dislog-bench",
		Short: "Load generator for Dislog: throughput and latency of produce and consume",
		Long: `dislog-bench runs one workload against Dislog and reports throughput and latency percentiles
(p50, p90, p99, p99.9, max) from an HDR histogram.

With no --cluster it talks to running servers: --addr (default the dev node that "dislog" starts in
the current directory, with the client certificate in ./dislog-data/pki/dev), or --tls-ca-file, --tls-cert-file
and --tls-key-file for your own certificate; the environment variables DISLOG_ADDR, DISLOG_DATA_DIR,
DISLOG_CA, DISLOG_CERT and DISLOG_KEY work as for dislogctl. --cluster 1 starts a node inside this
process, with a temporary CA, and --cluster 3 or 5 starts a replicated cluster of dislog processes on
127.0.0.1 (built with go build unless --dislog-bin names the binary); either is removed afterwards.

A run lasts --count records in all (failed ones count) or --duration (default 10s), shared among
--clients clients, each on its own connection, optionally at most --rate records a second in all.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&a.addr, "addr", defaultAddr, "server address: host:port, or any gRPC target such as dislog:///h1:7070,h2:7070 (env DISLOG_ADDR)")
	f.StringVar(&a.dataDir, "data-dir", defaultDataDir, "data directory of a local dev node, whose client certificate is used by default (env DISLOG_DATA_DIR)")
	f.StringVar(&a.ca, "tls-ca-file", "", "CA certificate the server's certificate must chain to (env DISLOG_CA; default <data-dir>/pki/dev/ca.pem)")
	f.StringVar(&a.cert, "tls-cert-file", "", "client certificate (env DISLOG_CERT; default <data-dir>/pki/dev/dev.pem)")
	f.StringVar(&a.key, "tls-key-file", "", "client certificate key (env DISLOG_KEY; default <data-dir>/pki/dev/dev-key.pem)")
	f.IntVar(&a.cluster, "cluster", 0, "start a loopback cluster of 1 (in this process), 3 or 5 nodes (dislog processes) instead of dialing --addr")
	f.StringVar(&a.dislogBin, "dislog-bin", "", "dislog binary for --cluster 3 or 5 (default: go build it into a temporary directory)")
	f.StringSliceVar(&a.dislogArgs, "dislog-args", nil, `more flags for every node of --cluster 3 or 5, comma separated, such as "--raft-heartbeat-timeout=300ms"`)
	f.StringVar(&a.clusterLog, "cluster-log", "", "file to write the output of --cluster 3 or 5 nodes to (default: discard it)")

	f.StringVar(&a.cfg.Topic, "topic", bench.DefaultTopic, "topic, created if it does not exist")
	f.IntVar(&a.cfg.Partitions, "partitions", 1, "partitions of the topic, if the run creates it")
	f.IntVar(&a.cfg.ReplicationFactor, "replicas", 0, "replication factor of the topic, if the run creates it: 1, 3 or 5 (0: the cluster's default, 3 on three servers or more)")
	f.BoolVar(&a.cfg.Leaders, "leaders", false, "at the end, print how many partitions each server leads and holds, and whether that is balanced")
	f.IntSliceVar(&a.pids, "server-pid", nil, "pids of server processes on this machine to measure (CPU, disk writes, memory from /proc), comma separated; --cluster 3 or 5 measures its own")
	f.IntVar(&a.cfg.RecordSize, "record-size", bench.DefaultRecordSize, "bytes in each record's value")
	f.Int64Var(&a.cfg.Count, "count", 0, "records to produce (replay: read) in all; failed ones count")
	f.DurationVar(&a.cfg.Duration, "duration", 0, "how long to run, instead of --count (default 10s)")
	f.Float64Var(&a.cfg.Rate, "rate", 0, "at most this many records a second in all (0: no limit)")
	f.IntVar(&a.cfg.Clients, "clients", 1, "clients, each on its own connection")

	f.BoolVar(&a.jsonOut, "json", false, "print the report as JSON (latencies in microseconds, a timeline sample a second)")
	f.StringVar(&a.plotFile, "plot", "", "draw throughput and p99 latency over time into this PNG file")
	f.BoolVar(&a.progress, "progress", false, "show the progress bar on stderr even when it is not a terminal")
	ctl.AddOldTLSFlags(f, &a.ca, &a.cert, &a.key)

	for _, w := range []struct {
		workload     bench.Workload
		short, long  string
		window       bool
		batch        bool
		preload      bool
		consumers    bool
		failover     bool
		exampleFlags string
	}{
		{workload: bench.Sync, short: "produce one record at a time per client (Produce)",
			long: "Each client calls Produce with one record and waits for its offset before the next: one record in\n" +
				"flight. The latency is each call's.\n\n" + failoverHelp, failover: true, exampleFlags: "--count 10000"},
		{workload: bench.Async, short: "produce through the batching client.Producer with a window of records in flight",
			long: "Each client sends records through a client.Producer (batches pipelined on ProduceStream) and keeps\n" +
				"at most --window of them waiting for their results. The latency is from Send to a record's result.",
			window: true, exampleFlags: "--count 1000000 --window 4096"},
		{workload: bench.Batch, short: "produce --batch records per ProduceBatch call",
			long: "Each client calls ProduceBatch with --batch records and waits for it before the next: one batch in\n" +
				"flight. The latency is each call's.", batch: true, exampleFlags: "--count 1000000 --batch 256"},
		{workload: bench.Replay, short: "read the topic from offset 0 (ConsumeStream)",
			long: "Each client reads the topic from offset 0 on its own ConsumeStream. With --count, the topic is first\n" +
				"filled to the records each client reads; with --duration, to --preload records, and each client reads\n" +
				"it from 0 to its end over and over. The latency is how long the reading loop waited for each record.",
			preload: true, exampleFlags: "--count 1000000"},
		{workload: bench.Mixed, short: "produce (as async) and consume at once, end to end",
			long: "--clients producers work as in async while --consumers subscribers follow the topic from where it\n" +
				"ended when the run began, until each has read every record produced. The produce latency is async's;\n" +
				"the consume latency is end to end, from Send to the subscriber (from a send time in each value).",
			window: true, consumers: true, exampleFlags: "--duration 30s --rate 20000"},
	} {
		sub := &cobra.Command{
			Use:     string(w.workload),
			Short:   w.short,
			Long:    w.long,
			Example: fmt.Sprintf("  dislog-bench %s --cluster 1 %s", w.workload, w.exampleFlags),
			Args:    cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				a.cfg.Workload = w.workload
				return a.run(cmd)
			},
		}
		sf := sub.Flags()
		if w.window {
			sf.IntVar(&a.cfg.Window, "window", bench.DefaultWindow, "records each producer has in flight")
			sf.DurationVar(&a.cfg.Linger, "linger", 0, "the producer's linger: how long a batch waits for more records (0: the client's default, 2ms; negative: none)")
		}
		if w.batch {
			sf.IntVar(&a.cfg.Batch, "batch", bench.DefaultBatch, "records in each ProduceBatch call")
		}
		if w.preload {
			sf.Int64Var(&a.cfg.Preload, "preload", bench.DefaultPreload, "with --duration, records the topic is filled to before the replay")
		}
		if w.consumers {
			sf.IntVar(&a.cfg.Consumers, "consumers", 1, "subscribers, each on its own connection")
		}
		if w.workload != bench.Replay {
			sf.BoolVar(&a.cfg.Keys, "keys", false, fmt.Sprintf("give each record a key of %d bytes, a different one each, so that it goes to its key's partition (default: no key; the producer's sticky partition, or the partitions in turn)", bench.KeyBytes))
		}
		if w.failover {
			sf.IntVar(&a.kills, "kill-leader", 0, "with --cluster 3 or 5: SIGKILL the leader this many times during the run and report the failover gaps")
			sf.DurationVar(&a.killEvery, "kill-every", 5*time.Second, "with --kill-leader or --pause-leader: time before the first kill and between a restart (resume) and the next kill")
			sf.IntVar(&a.pauses, "pause-leader", 0, "with --cluster 3 or 5: freeze the leader with SIGSTOP this many times during the run, each for --pause-for, and report the failover gaps")
			sf.DurationVar(&a.pauseFor, "pause-for", 5*time.Second, "with --pause-leader: how long the leader stays frozen before SIGCONT")
		}
		cmd.AddCommand(sub)
	}
	cmd.AddCommand(a.idleCommand())
	ctl.PlainBools(cmd)
	return cmd
}

// resolveEnv fills the connection flags not given from the environment.
func (a *app) resolveEnv(cmd *cobra.Command) error {
	ctl.WarnOldTLSFlags(a.stderr, "dislog-bench", cmd.Flags())
	for name, variable := range envFlags {
		f := cmd.Flags().Lookup(name)
		if f == nil || ctl.Given(cmd.Flags(), name) {
			continue
		}
		if v, ok := a.lookupEnv(variable); ok && v != "" {
			if err := f.Value.Set(v); err != nil {
				return fmt.Errorf("%s: %w", variable, err)
			}
		}
	}
	return nil
}

// run starts or finds the target, runs the workload and reports it.
func (a *app) run(cmd *cobra.Command) (err error) {
	if err := a.resolveEnv(cmd); err != nil {
		return err
	}
	if a.cfg.Count == 0 && a.cfg.Duration == 0 {
		a.cfg.Duration = defaultDuration
	}
	if a.cluster != 0 && cmd.Flags().Changed("addr") {
		return errors.New("give --addr or --cluster, not both")
	}
	if a.kills > 0 && a.pauses > 0 {
		return errors.New("give --kill-leader or --pause-leader, not both")
	}
	if a.kills > 0 || a.pauses > 0 {
		if a.cluster != 3 && a.cluster != 5 {
			return errors.New("--kill-leader and --pause-leader need --cluster 3 or 5: dislog-bench kills and freezes nodes it started")
		}
		if a.pauses > 0 && a.pauseFor <= 0 {
			return fmt.Errorf("--pause-for %s: want a positive duration", a.pauseFor)
		}
		// A placeholder for Validate; the cluster comes once it runs, and bench.Run checks again.
		a.cfg.Failover = &bench.Failover{Kills: a.kills, Every: a.killEvery, Cluster: nodes{}}
		if a.pauses > 0 {
			a.cfg.Failover.Kills, a.cfg.Failover.Pause = a.pauses, a.pauseFor
		}
	}
	if err := a.cfg.Validate(); err != nil {
		return err
	}

	ctx := cmd.Context()
	target, closeTarget, err := a.target(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeTarget()) }()
	if a.cfg.Failover != nil {
		a.cfg.Failover.Cluster = nodes{Cluster: target.cluster, topic: a.cfg.Topic}
	}
	a.cfg.Processes = target.processes
	if len(a.pids) > 0 {
		a.cfg.Processes = a.pidProcesses
	}
	bar := a.startProgress(a.cfg)
	if bar != nil {
		a.cfg.OnProgress = bar.update
	}
	rep, runErr := bench.Run(ctx, target.dial, a.cfg)
	bar.finish()
	if rep == nil {
		return runErr
	}
	rep.Target = target.description
	if a.jsonOut {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(a.stdout)
	}
	if err != nil {
		return err
	}
	if a.plotFile != "" {
		if err := bench.WritePlot(rep, a.plotFile); err != nil {
			return err
		}
	}
	if runErr != nil {
		return runErr
	}
	if n := rep.Failed(); n > 0 {
		return fmt.Errorf("%w: %d (samples of their errors are in the report)", errFailedRecords, n)
	}
	return nil
}

// target is what the clients dial.
type target struct {
	dial        func() (*client.Client, error)
	description string
	cluster     *localcluster.Cluster // the processes of --cluster 3 or 5
	// processes lists the server processes of a --cluster, or is nil.
	processes func() ([]bench.Process, error)
}

// target dials --addr, or starts the --cluster and dials it. The function it returns stops the
// cluster.
func (a *app) target(ctx context.Context) (target, func() error, error) {
	none := func() error { return nil }
	switch a.cluster {
	case 0:
		ca, cert, key, err := a.tlsFiles()
		if err != nil {
			return target{}, none, err
		}
		return target{
			dial:        func() (*client.Client, error) { return client.Dial(a.addr, client.WithTLSFiles(ca, cert, key)) },
			description: a.addr,
		}, none, nil
	case 1:
		cl, err := localcluster.StartInProcess()
		if err != nil {
			return target{}, none, err
		}
		addr := cl.Addrs[0]
		return target{
			dial:        func() (*client.Client, error) { return cl.Dial(addr) },
			description: fmt.Sprintf("a node in this process at %s, data in a temporary directory", addr),
			processes: func() ([]bench.Process, error) {
				return []bench.Process{{Name: localcluster.NodeName(0) + " and the clients (this process)", PID: os.Getpid()}}, nil
			},
		}, cl.Close, nil
	case 3, 5:
		return a.startProcesses(ctx)
	}
	return target{}, none, fmt.Errorf("--cluster %d: want 1, 3 or 5", a.cluster)
}

// startProcesses starts a --cluster of 3 or 5 dislog processes and targets them as a cluster:
// produces go to the leader, consumes to followers.
func (a *app) startProcesses(ctx context.Context) (target, func() error, error) {
	none := func() error { return nil }
	bin := a.dislogBin
	if bin == "" {
		dir, err := os.MkdirTemp("", "dislog-bench-bin-")
		if err != nil {
			return target{}, none, err
		}
		defer os.RemoveAll(dir) // a running binary may be unlinked
		fmt.Fprintln(a.stderr, "dislog-bench: building dislog for the cluster (or give --dislog-bin)")
		if bin, err = localcluster.BuildDislog(ctx, dir); err != nil {
			return target{}, none, err
		}
	}
	opts := localcluster.Options{Bin: bin, Nodes: a.cluster, Args: a.dislogArgs}
	var logFile *os.File
	if a.clusterLog != "" {
		var err error
		if logFile, err = os.Create(a.clusterLog); err != nil {
			return target{}, none, err
		}
		opts.Log = logFile
	}
	closeLog := func() error {
		if logFile == nil {
			return nil
		}
		return logFile.Close()
	}
	cl, err := localcluster.StartProcesses(ctx, opts)
	if err != nil {
		if errors.Is(err, localcluster.ErrNoReplication) {
			err = fmt.Errorf("--cluster %d: %w; use --cluster 1, or --addr with running servers", a.cluster, err)
		}
		return target{}, none, errors.Join(err, closeLog())
	}
	seeds := "dislog:///" + strings.Join(cl.Addrs, ",")
	stop := func() error { return errors.Join(cl.Close(), closeLog()) }
	return target{
		dial:        func() (*client.Client, error) { return cl.Dial(seeds) },
		description: fmt.Sprintf("%d dislog processes on 127.0.0.1, as %s", a.cluster, seeds),
		cluster:     cl,
		processes:   func() ([]bench.Process, error) { return nodeProcesses(cl) },
	}, stop, nil
}

// nodeProcesses finds the processes of a cluster's nodes: the children of this process that run
// with each node's data directory.
func nodeProcesses(cl *localcluster.Cluster) ([]bench.Process, error) {
	var ps []bench.Process
	for i := range cl.Addrs {
		name := localcluster.NodeName(i)
		pid, err := proc.Find(os.Getpid(), "--data-dir", filepath.Join(cl.Dir, name))
		if err != nil {
			return nil, err
		}
		ps = append(ps, bench.Process{Name: name, PID: pid})
	}
	return ps, nil
}

// tlsFiles returns the CA, certificate and key to dial with: the ones given, or a dev node's.
func (a *app) tlsFiles() (ca, cert, key string, err error) {
	given := 0
	for _, v := range []string{a.ca, a.cert, a.key} {
		if v != "" {
			given++
		}
	}
	switch given {
	case 3:
		return a.ca, a.cert, a.key, nil
	case 0:
	default:
		return "", "", "", errors.New("give all of --tls-ca-file, --tls-cert-file and --tls-key-file (or DISLOG_CA, DISLOG_CERT and DISLOG_KEY), or none to use a local dev node's certificate")
	}
	dir := filepath.Join(a.dataDir, devClientDir)
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "dev.pem"), filepath.Join(dir, "dev-key.pem")
	for _, f := range []string{ca, cert, key} {
		if _, err := os.Stat(f); err != nil {
			return "", "", "", fmt.Errorf("no dev client certificate: %w\n"+
				"Start a dev node in this directory with `dislog` (go run ./server/cmd/dislog), point --data-dir\n"+
				"(DISLOG_DATA_DIR) at its data directory, give --tls-ca-file, --tls-cert-file and --tls-key-file, or use --cluster 1", err)
		}
	}
	return ca, cert, key, nil
}

// failoverHelp documents --kill-leader and --pause-leader.
const failoverHelp = `With --cluster 3 or 5, --kill-leader N kills the leader with SIGKILL N times during the run: the
first after --kill-every, each next --kill-every after the killed node was restarted (once produce
resumed). --pause-leader N freezes it with SIGSTOP instead, for --pause-for (its connections stay
open and its calls hang, as in a long GC pause or a stalled disk), then resumes it with SIGCONT. For
each the report gives the gap: the time from the last produce acknowledged before the signal to the
first acknowledged of those sent after it. The run lasts --duration, and longer if the kills need it.`

// nodes is a --cluster's processes as a bench.FailoverCluster, whose leader is that of the
// topic's partition 0: the partition a one-partition run writes to.
type nodes struct {
	*localcluster.Cluster
	topic string
}

func (n nodes) Leader(ctx context.Context) (int, error) {
	// Once every node is in the cluster again, the cluster's leader (of its metadata)...
	addr, err := n.Cluster.Leader(ctx)
	if err != nil {
		return 0, err
	}
	// ... or, once it names one, the partition's.
	c, err := n.Dial("dislog:///" + strings.Join(n.Addrs, ","))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	info, err := bench.AwaitLeaders(ctx, []*client.Client{c}, n.topic, 10*time.Second)
	if err == nil && len(info.PartitionInfo) > 0 {
		addr = info.PartitionInfo[0].LeaderAddr
	}
	if i := slices.Index(n.Addrs, addr); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("the leader %s is none of the cluster's nodes %v", addr, n.Addrs)
}

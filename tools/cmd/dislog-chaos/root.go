package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dislog/dislog/server/localcluster"
	"github.com/dislog/dislog/tools/chaos"
	"github.com/spf13/cobra"
)

// Exit statuses.
const (
	exitPass      = 0
	exitViolation = 1
	exitError     = 2
)

// errViolation ends a run whose checks found a violation; its report is already printed.
var errViolation = errors.New("violations found")

// errIncomplete ends a run in which a check reached no verdict.
var errIncomplete = errors.New("a check reached no verdict")

type args struct {
	cfg        chaos.Config
	faults     string
	seed       int64
	dislogBin  string
	dislogTags string
	json       bool
	logFile    string
	history    string
}

func run(ctx context.Context, argv []string, stdout, stderr io.Writer) int {
	cmd := newCommand(ctx, stdout, stderr)
	cmd.SetArgs(argv)
	err := cmd.Execute()
	switch {
	case err == nil:
		return exitPass
	case errors.Is(err, errViolation):
		return exitViolation
	case errors.Is(err, errIncomplete):
		return exitError
	}
	fmt.Fprintf(stderr, "dislog-chaos: %v\n", err)
	return exitError
}

func newCommand(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	var a args
	cmd := &cobra.Command{
		Use:   "dislog-chaos",
		Short: "Run a Dislog cluster through crashes, pauses and partitions and check what it did",
		Long: `Run a Dislog cluster through crashes, pauses and partitions and check what it did.

dislog-chaos starts --nodes dislog processes on 127.0.0.11, 127.0.0.12, ... each behind a proxy that
can cut the links between nodes, runs --clients clients (unique values produced with idempotent
retries, read_your_writes reads, consumer offset commits and fetches) for --duration while a
nemesis injects one fault at a time from --faults, then heals everything, waits for the nodes to
agree, reads every topic from every node, and checks: no acknowledged write lost, no duplicate, no
phantom value, the same value at each offset on every node, consumer offsets monotonic, and a
linearizable history (porcupine).

Topics have --partitions partitions each, held by --replicas nodes; the clients spread their
operations over every partition, and every check is made per partition.

Faults: kill (SIGKILL, restart later), pause (SIGSTOP, SIGCONT later), partition-leader (a
partition's leader cut from the others), partition-split (a random minority from the majority),
partition-oneway (one direction between a node and the others), partition (the three),
leader-move (SIGTERM of a partition's leader, which hands its leaderships over; restart later),
remove-readd (SIGKILL, and past --failed-remove-after, once the cluster has removed the node and
placed its replicas elsewhere, a new empty node with a new ID in its place), all (every one).

Exit status: 0 every check passed, 1 a violation, 2 the run failed or a check reached no verdict.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("seed") {
				a.seed = time.Now().UnixNano()
			}
			return runChaos(ctx, a, stdout, stderr)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	f := cmd.Flags()
	f.IntVar(&a.cfg.Nodes, "nodes", 3, "nodes in the cluster: 3 or 5")
	f.DurationVar(&a.cfg.Duration, "duration", time.Minute, "how long the clients and the nemesis run")
	f.Int64Var(&a.seed, "seed", 0, "seed of the nemesis's schedule and the clients' choices (default: the time)")
	f.IntVar(&a.cfg.Clients, "clients", 6, "clients, one operation at a time each")
	f.IntVar(&a.cfg.Topics, "topics", 2, "topics the clients share")
	f.IntVar(&a.cfg.Partitions, "partitions", 1, "partitions of each topic (the checks, linearizability too, are per partition)")
	f.IntVar(&a.cfg.ReplicationFactor, "replicas", 0, "replication factor of each topic: 1, 3 or 5 (0: the cluster's default, 3)")
	f.Float64Var(&a.cfg.Rate, "rate", 0, "operations a second of all clients together; 0 for no cap")
	f.StringVar(&a.faults, "faults", "all", "faults to inject, comma separated: kill, pause, partition-leader, partition-split, partition-oneway, partition, leader-move, remove-readd, all; \"\" for none")
	f.IntVar(&a.cfg.MaxFaults, "max-faults", 0, "most faults to inject; 0 for as many as the duration allows")
	f.DurationVar(&a.cfg.FaultDuration, "fault-duration", 3*time.Second, "mean length of a fault (each lasts 0.5 to 1.5 times it)")
	f.DurationVar(&a.cfg.FaultInterval, "fault-interval", 2*time.Second, "mean quiet time before each fault")
	d := chaos.DefaultRaftTimings
	f.DurationVar(&a.cfg.Raft.HeartbeatTimeout, "raft-heartbeat-timeout", d.HeartbeatTimeout, "the nodes' --raft-heartbeat-timeout")
	f.DurationVar(&a.cfg.Raft.ElectionTimeout, "raft-election-timeout", d.ElectionTimeout, "the nodes' --raft-election-timeout")
	f.DurationVar(&a.cfg.Raft.LeaderLeaseTimeout, "raft-leader-lease-timeout", d.LeaderLeaseTimeout, "the nodes' --raft-leader-lease-timeout")
	f.DurationVar(&a.cfg.Raft.CommitTimeout, "raft-commit-timeout", d.CommitTimeout, "the nodes' --raft-commit-timeout")
	f.DurationVar(&a.cfg.FailedRemoveAfter, "failed-remove-after", 0, fmt.Sprintf("the nodes' --failed-remove-after (default: dislog's, 1m; %s with remove-readd)", chaos.DefaultFailedRemoveAfter))
	f.DurationVar(&a.cfg.LinearizabilityTimeout, "lin-timeout", 5*time.Minute, "how long porcupine may search each partition before its verdict is unknown")
	f.StringVar(&a.dislogBin, "dislog-bin", "", "the dislog binary (default: go build it from this repository)")
	f.StringVar(&a.dislogTags, "dislog-tags", "", "build tags for the dislog built when --dislog-bin is not given (dislog_unsafe: the deliberately broken server)")
	f.BoolVar(&a.json, "json", false, "print the report as JSON")
	f.StringVar(&a.logFile, "log", "", "file for the nodes' output and the nemesis's account of each fault")
	f.StringVar(&a.history, "history", "", "file for every operation, one JSON object a line")
	f.StringVar(&a.cfg.VisualizeDir, "visualize", "", "directory for porcupine's HTML view of a topic whose history is not linearizable")
	return cmd
}

func runChaos(ctx context.Context, a args, stdout, stderr io.Writer) error {
	var err error
	if a.cfg.Faults, err = chaos.ParseFaults(a.faults); err != nil {
		return err
	}
	a.cfg.Seed = a.seed
	a.cfg.Bin = a.dislogBin
	if a.cfg.Bin == "" {
		dir, err := os.MkdirTemp("", "dislog-chaos-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintln(stderr, "dislog-chaos: building dislog (or give --dislog-bin)")
		var tags []string
		if a.dislogTags != "" {
			tags = strings.Split(a.dislogTags, ",")
		}
		if a.cfg.Bin, err = localcluster.BuildDislog(ctx, dir, tags...); err != nil {
			return err
		}
	}
	if a.logFile != "" {
		f, err := os.Create(a.logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		a.cfg.Log = &lockedWriter{w: f}
	}
	fmt.Fprintf(stderr, "dislog-chaos: %d nodes, %d topics of %d partitions, %v, seed %d\n", a.cfg.Nodes, a.cfg.Topics, max(a.cfg.Partitions, 1), a.cfg.Duration, a.cfg.Seed)
	rep, err := chaos.Run(ctx, a.cfg)
	if err != nil {
		return err
	}
	if a.history != "" {
		if err := writeHistory(a.history, rep.History); err != nil {
			return err
		}
	}
	if err := writeReport(stdout, rep, a.json); err != nil {
		return err
	}
	switch {
	case !rep.Valid():
		return errViolation
	case !rep.Complete():
		return errIncomplete
	}
	return nil
}

func writeReport(w io.Writer, rep *chaos.Report, asJSON bool) error {
	if !asJSON {
		rep.WriteText(w)
		return nil
	}
	out := struct {
		*chaos.Report
		Valid    bool `json:"valid"`
		Complete bool `json:"complete"`
	}{rep, rep.Valid(), rep.Complete()}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeHistory(path string, ops []chaos.Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for i := range ops {
		if err := enc.Encode(&ops[i]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// lockedWriter serializes the writes of the nodes' output and the nemesis to one file.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dislog/dislog/server/localcluster"
	"github.com/dislog/dislog/tools/bench"
	"github.com/dislog/dislog/tools/internal/proc"
	"github.com/spf13/cobra"
)

// stopTimeout bounds how long a node may take to stop after SIGTERM: dislog's shutdown timeout
// (10 s by default) and some.
const stopTimeout = 30 * time.Second

// idleCommand is the idle benchmark: what many partitions cost while nothing is written.
func (a *app) idleCommand() *cobra.Command {
	var restart string
	cmd := &cobra.Command{
		Use:   "idle",
		Short: "create a topic of many partitions, then measure the idle servers and, with --restart, a restart of them all",
		Long: `idle creates --topic (which must not exist) with --partitions and --replicas and times until every
partition has a leader; then it measures, for --duration (default 60s), what each server process uses
while nothing is written: CPU time and its share of a core, bytes written, resident memory (and its
growth since before the topic, per replica held). With --restart term (SIGTERM, a graceful stop) or
--restart kill (SIGKILL), it then stops every server at once, starts them again one after another (each
once the one before prints that it serves), and times from the first start until every partition has a
leader again. It needs server processes on this machine: --cluster 3 or 5, or --addr with --server-pid
(no --restart then).`,
		Example: "  dislog-bench idle --cluster 3 --partitions 256 --replicas 3 --duration 60s --restart term",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runIdle(cmd, restart)
		},
	}
	cmd.Flags().StringVar(&restart, "restart", "", `after the idle measurement, stop every server, start them again and time the elections: "term" (SIGTERM) or "kill" (SIGKILL)`)
	return cmd
}

func (a *app) runIdle(cmd *cobra.Command, restart string) (err error) {
	if err := a.resolveEnv(cmd); err != nil {
		return err
	}
	switch {
	case restart != "" && restart != "term" && restart != "kill":
		return fmt.Errorf("--restart %q: want term or kill", restart)
	case a.cluster == 1:
		return errors.New("idle measures server processes: use --cluster 3 or 5, or --addr with --server-pid")
	case a.cluster == 0 && len(a.pids) == 0:
		return errors.New("idle measures server processes on this machine: give --cluster 3 or 5, or --server-pid with --addr")
	case a.cluster == 0 && restart != "":
		return errors.New("--restart needs --cluster 3 or 5: dislog-bench restarts the servers it started")
	case a.cluster != 0 && cmd.Flags().Changed("addr"):
		return errors.New("give --addr or --cluster, not both")
	}
	cfg := bench.IdleConfig{
		Topic: a.cfg.Topic, Partitions: a.cfg.Partitions, ReplicationFactor: a.cfg.ReplicationFactor,
		Duration: a.cfg.Duration,
	}
	ctx := cmd.Context()
	target, closeTarget, err := a.target(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeTarget()) }()
	cfg.Processes = target.processes
	if len(a.pids) > 0 {
		cfg.Processes = a.pidProcesses
	}
	if restart != "" {
		cfg.Restart = func(ctx context.Context) (func(context.Context) error, error) {
			return stopAll(target.cluster, restart == "kill")
		}
	}
	rep, err := bench.Idle(ctx, target.dial, cfg)
	if rep == nil {
		return err
	}
	rep.Target = target.description
	var werr error
	if a.jsonOut {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		werr = enc.Encode(rep)
	} else {
		werr = rep.WriteText(a.stdout)
	}
	return errors.Join(err, werr)
}

// pidProcesses are the --server-pid processes.
func (a *app) pidProcesses() ([]bench.Process, error) {
	var ps []bench.Process
	for _, pid := range a.pids {
		ps = append(ps, bench.Process{Name: fmt.Sprintf("pid %d", pid), PID: pid})
	}
	return ps, nil
}

// stopAll stops every node of cl at once, with SIGTERM and waiting for it to exit, or with
// SIGKILL, and returns what starts them again.
func stopAll(cl *localcluster.Cluster, kill bool) (func(context.Context) error, error) {
	ps, err := nodeProcesses(cl)
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			if kill {
				errs[i] = cl.Kill(i)
			} else {
				errs[i] = proc.Terminate(p.PID, stopTimeout)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		for i := range ps {
			if err := restartNode(ctx, cl, i); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// restartNode starts node i again once it has stopped. A node stopped with SIGTERM from outside
// localcluster is reaped by the cluster's own goroutine, which marks it stopped a moment later:
// until then Restart says it is running, and is tried again, for up to 2 s.
func restartNode(ctx context.Context, cl *localcluster.Cluster, i int) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := cl.Restart(ctx, i)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

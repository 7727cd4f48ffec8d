package chaos

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// convergeTimeout bounds the wait, after healing, for the nodes to agree.
const convergeTimeout = 2 * time.Minute

// Run starts a cluster, runs the clients and the nemesis for cfg.Duration, heals every fault,
// waits for the nodes to agree, reads everything back and checks it. An error means the harness
// could not run or read back (no verdict); violations are in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	began := time.Now()
	cl, err := startCluster(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	topics := make([]string, cfg.Topics)
	for i := range topics {
		topics[i] = fmt.Sprintf("chaos-%d", i)
	}
	if err := cl.createTopics(ctx, topics, cfg.Partitions, cfg.ReplicationFactor); err != nil {
		return nil, err
	}
	var logs []Log
	for _, t := range topics {
		for p := range cfg.Partitions {
			logs = append(logs, Log{Topic: t, Partition: p})
		}
	}

	w := &workload{cfg: &cfg, cl: cl, logs: logs, ends: map[Log]uint64{}}
	if cfg.Rate > 0 {
		w.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	n := newNemesis(&cfg, cl, logs)
	w.start = time.Now()
	n.start = w.start
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	nemesisDone := make(chan struct{})
	go func() {
		defer close(nemesisDone)
		n.run(runCtx)
	}()
	werr := w.run(runCtx)
	<-nemesisDone
	if werr != nil {
		return nil, werr
	}

	rep := &Report{
		Seed: cfg.Seed, Nodes: cfg.Nodes, Clients: cfg.Clients, Topics: cfg.Topics, Partitions: cfg.Partitions,
		ReplicationFactor: cfg.ReplicationFactor, Duration: cfg.Duration,
		FaultKinds: cfg.Faults, Raft: cfg.Raft, Faults: n.events, History: w.hist.Ops(),
	}
	rep.count()
	fmt.Fprintf(cfg.Log, "chaos: %6.2fs: clients done; healing everything\n", time.Since(w.start).Seconds())
	healCtx, cancelHeal := context.WithTimeout(ctx, convergeTimeout)
	defer cancelHeal()
	recovered := Check{Name: "recovers after healing", Verdict: Pass}
	if err := n.healAll(healCtx); err != nil {
		recovered.violation("%v", err)
	}
	sets, err := cl.converge(healCtx, topics)
	if err != nil {
		recovered.violation("%v", err)
	}
	recovered.Summary = fmt.Sprintf("the nodes agreed %v after the clients stopped", time.Since(w.start.Add(cfg.Duration)).Round(time.Millisecond))
	if recovered.Verdict != Pass {
		recovered.Summary = "the nodes did not agree on the leaders, the replicas and the partitions' ends after healing"
	}
	fmt.Fprintf(cfg.Log, "chaos: %6.2fs: %s; reading back\n", time.Since(w.start).Seconds(), recovered.Summary)

	// Each partition is read back from every node that holds a replica, against its leader's
	// copy; without agreement, from the replicas and leader some node names, or every node.
	final := newFinalLogs(cl.nodeIDs(), logs)
	for _, l := range logs {
		set, ok := sets[l]
		if !ok {
			set = cl.guessReplicas(ctx, l)
		}
		final.ref[l] = set.leader
		for _, i := range set.holders {
			values, err := cl.readAll(ctx, i, l)
			final.add(l, i, values, err)
		}
	}
	rep.Checks = []Check{
		recovered,
		checkNoLostWrites(rep.History, final),
		checkNoDuplicates(final),
		checkNoPhantoms(rep.History, final),
		checkConsistent(final),
		checkOffsets(rep.History),
		checkLinearizable(&cfg, rep.History, final),
	}
	rep.Elapsed = time.Since(began)
	return rep, nil
}

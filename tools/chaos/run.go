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
	if err := cl.createTopics(ctx, topics); err != nil {
		return nil, err
	}

	w := &workload{cfg: &cfg, cl: cl, topics: topics, ends: map[string]uint64{}}
	if cfg.Rate > 0 {
		w.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	n := newNemesis(&cfg, cl)
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
		Seed: cfg.Seed, Nodes: cfg.Nodes, Clients: cfg.Clients, Topics: cfg.Topics, Duration: cfg.Duration,
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
	if err := cl.converge(healCtx, topics); err != nil {
		recovered.violation("%v", err)
	}
	recovered.Summary = fmt.Sprintf("the nodes agreed %v after the clients stopped", time.Since(w.start.Add(cfg.Duration)).Round(time.Millisecond))
	if recovered.Verdict != Pass {
		recovered.Summary = "the nodes did not agree on a leader and the topics' ends after healing"
	}
	fmt.Fprintf(cfg.Log, "chaos: %6.2fs: %s; reading back\n", time.Since(w.start).Seconds(), recovered.Summary)

	logs := &finalLogs{nodes: cl.names, topics: topics, values: map[string][][]string{}, errs: map[string][]error{}}
	if leader := cl.leader(ctx); leader >= 0 {
		logs.ref = leader
	}
	for _, t := range topics {
		for i := range cl.names {
			values, err := cl.readAll(ctx, i, t)
			logs.values[t] = append(logs.values[t], values)
			logs.errs[t] = append(logs.errs[t], err)
		}
	}
	rep.Checks = []Check{
		recovered,
		checkNoLostWrites(rep.History, logs),
		checkNoDuplicates(logs),
		checkNoPhantoms(rep.History, logs),
		checkConsistent(logs),
		checkOffsets(rep.History),
		checkLinearizable(&cfg, rep.History, logs),
	}
	rep.Elapsed = time.Since(began)
	return rep, nil
}

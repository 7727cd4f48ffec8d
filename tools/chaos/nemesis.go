package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/dislog/dislog/tools/internal/faultproxy"
)

// FaultEvent is one fault the nemesis injected.
type FaultEvent struct {
	Kind Fault `json:"kind"`
	// What says which nodes and how: "node2 (leader)", "node1 | node2 node3 (blackhole)".
	What  string        `json:"what"`
	Start time.Duration `json:"start_ns"`
	End   time.Duration `json:"end_ns"`
	// Err is set when the fault could not be injected or healed.
	Err string `json:"error,omitempty"`
}

// nemesis injects one fault at a time, on a schedule drawn from the run's seed: a quiet interval,
// a fault held for a while, its heal, and again, until the run ends or MaxFaults faults.
//
// The kinds come in rounds, each a shuffle of every kind enabled, so that a run of n rounds
// injects each kind n times. The kinds, their lengths and the quiet times come from one random
// source (schedule), the choices that depend on the cluster's state, such as which follower, from
// another (rng): the same seed gives the same schedule whatever the leader was.
type nemesis struct {
	cfg      *Config
	cl       *cluster
	logs     []Log
	schedule *rand.Rand
	rng      *rand.Rand
	start    time.Time
	events   []FaultEvent
}

func newNemesis(cfg *Config, cl *cluster, logs []Log) *nemesis {
	return &nemesis{
		cfg: cfg, cl: cl, logs: logs,
		schedule: rand.New(rand.NewPCG(uint64(cfg.Seed), 1)),
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 2)),
	}
}

// leaderWait bounds the wait for a leader to isolate.
const leaderWait = 5 * time.Second

// removeWait bounds the wait, past the failed-remove grace period, for the cluster to remove a
// node and place its replicas on the others.
const removeWait = time.Minute

// jitter returns a duration between half and one and a half of mean.
func (n *nemesis) jitter(mean time.Duration) time.Duration {
	return mean/2 + time.Duration(n.schedule.Int64N(int64(mean)+1))
}

func (n *nemesis) logf(format string, args ...any) {
	fmt.Fprintf(n.cfg.Log, "chaos: %6.2fs: %s\n", time.Since(n.start).Seconds(), fmt.Sprintf(format, args...))
}

// run injects faults until ctx ends; each fault is healed before the next, and the last one
// before run returns.
func (n *nemesis) run(ctx context.Context) {
	if len(n.cfg.Faults) == 0 {
		return
	}
	var round []Fault
	for count := 0; n.cfg.MaxFaults == 0 || count < n.cfg.MaxFaults; count++ {
		if len(round) == 0 {
			round = slices.Clone(n.cfg.Faults)
			n.schedule.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		kind := round[0]
		round = round[1:]
		quiet, hold := n.jitter(n.cfg.FaultInterval), n.jitter(n.cfg.FaultDuration)
		if !sleep(ctx, quiet) {
			return
		}
		ev := FaultEvent{Kind: kind, Start: time.Since(n.start)}
		heal, err := n.inject(ctx, kind, &ev)
		if err != nil {
			ev.Err = err.Error()
			ev.End = ev.Start
			n.logf("%s %s: %v", kind, ev.What, err)
			n.events = append(n.events, ev)
			continue
		}
		n.logf("%s %s, for %v", kind, ev.What, hold.Round(time.Millisecond))
		sleep(ctx, hold)
		if err := heal(); err != nil {
			ev.Err = err.Error()
		}
		ev.End = time.Since(n.start)
		n.logf("healed %s %s", kind, ev.What)
		n.events = append(n.events, ev)
	}
}

// target picks the node a fault hits: the leader of a random partition or, as often, another
// node (any node when the partition has no leader known).
func (n *nemesis) target(ctx context.Context) (int, string) {
	nodes := n.cl.size()
	l := n.logs[n.rng.IntN(len(n.logs))]
	leader := n.cl.partitionLeader(ctx, l, n.rng.IntN(nodes))
	if leader < 0 {
		i := n.rng.IntN(nodes)
		return i, fmt.Sprintf("%s (no leader of %s known)", n.cl.id(i), l)
	}
	if n.rng.IntN(2) == 0 {
		return leader, fmt.Sprintf("%s (leader of %s)", n.cl.id(leader), l)
	}
	i := (leader + 1 + n.rng.IntN(nodes-1)) % nodes
	return i, fmt.Sprintf("%s (not the leader of %s)", n.cl.id(i), l)
}

// leader returns the leader of a random partition, waiting a few seconds for one: just after
// another fault the partition may still be electing.
func (n *nemesis) leader(ctx context.Context) (int, string, error) {
	l := n.logs[n.rng.IntN(len(n.logs))]
	from := n.rng.IntN(n.cl.size())
	leader := -1
	waitCtx, cancel := context.WithTimeout(ctx, leaderWait)
	defer cancel()
	err := poll(waitCtx, "a leader of "+l.String(), func() error {
		if leader = n.cl.partitionLeader(waitCtx, l, from); leader < 0 {
			return errors.New("no node names one")
		}
		return nil
	})
	if err != nil {
		return -1, "the leader of " + l.String(), err
	}
	return leader, fmt.Sprintf("%s (leader of %s)", n.cl.id(leader), l), nil
}

func (n *nemesis) mode() faultproxy.Mode {
	if n.rng.IntN(2) == 0 {
		return faultproxy.Refuse
	}
	return faultproxy.Blackhole
}

// inject starts a fault and returns what heals it.
func (n *nemesis) inject(ctx context.Context, kind Fault, ev *FaultEvent) (func() error, error) {
	restart := func(i int) func() error {
		return func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return n.cl.restart(ctx, i)
		}
	}
	switch kind {
	case Kill:
		i, what := n.target(ctx)
		ev.What = what
		if err := n.cl.kill(i); err != nil {
			return nil, err
		}
		return restart(i), nil
	case Pause:
		i, what := n.target(ctx)
		ev.What = what
		if err := n.cl.pause(i); err != nil {
			return nil, err
		}
		return func() error { return n.cl.resume(i) }, nil
	case PartitionLeader:
		leader, what, err := n.leader(ctx)
		ev.What = what
		if err != nil {
			return nil, err
		}
		heal := n.partition(ev, []int{leader}, true, true)
		ev.What = what + " cut off: " + ev.What
		return heal, nil
	case PartitionSplit:
		perm := n.rng.Perm(n.cl.size())
		minority := perm[:1+n.rng.IntN(len(perm)/2)]
		return n.partition(ev, minority, true, true), nil
	case PartitionOneWay:
		i, what := n.target(ctx)
		out := n.rng.IntN(2) == 0
		heal := n.partition(ev, []int{i}, out, !out)
		if out {
			ev.What = fmt.Sprintf("%s cannot reach the others, they reach it: %s", what, ev.What)
		} else {
			ev.What = fmt.Sprintf("the others cannot reach %s, it reaches them: %s", what, ev.What)
		}
		return heal, nil
	case LeaderMove:
		i, what, err := n.leader(ctx)
		ev.What = what + ", stopped with SIGTERM"
		if err != nil {
			return nil, err
		}
		if err := n.cl.terminate(i); err != nil {
			return nil, err
		}
		return restart(i), nil
	case RemoveReadd:
		i, what := n.target(ctx)
		old := n.cl.id(i)
		ev.What = what + ", killed for good"
		if err := n.cl.kill(i); err != nil {
			return nil, err
		}
		return func() error { return n.readd(ev, i, old) }, nil
	}
	return nil, fmt.Errorf("unknown fault %q", kind)
}

// readd waits until the cluster has removed node i, whose ID was old, and placed its replicas on
// the others, and then starts a new node in its place. If the cluster does not remove it in time,
// the old node is started again so that the run can go on, and readd fails.
func (n *nemesis) readd(ev *FaultEvent, i int, old string) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.FailedRemoveAfter+removeWait)
	defer cancel()
	err := poll(ctx, "the cluster to remove "+old+" and place its replicas on the other nodes", func() error {
		return n.cl.removed(ctx, i, old, n.logs)
	})
	if err != nil {
		return errors.Join(err, n.cl.restart(context.Background(), i))
	}
	n.logf("%s removed and its replicas placed on the other nodes", old)
	id, err := n.cl.replace(ctx, i)
	if err != nil {
		return err
	}
	ev.What += fmt.Sprintf("; %s added empty in its place", id)
	return nil
}

// partition blocks the links between the nodes of side and the others: the ones side opens if
// out, the ones the others open to side if in.
func (n *nemesis) partition(ev *FaultEvent, side []int, out, in bool) func() error {
	var links []faultproxy.Link
	var a, b, ids, others []string
	for i, label := range n.cl.labels {
		if slices.Contains(side, i) {
			a, ids = append(a, label), append(ids, n.cl.id(i))
		} else {
			b, others = append(b, label), append(others, n.cl.id(i))
		}
	}
	for _, x := range a {
		for _, y := range b {
			if out {
				links = append(links, faultproxy.Link{From: x, To: y})
			}
			if in {
				links = append(links, faultproxy.Link{From: y, To: x})
			}
		}
	}
	mode := n.mode()
	n.cl.net.Block(mode, links...)
	ev.What = fmt.Sprintf("%s | %s (%s)", strings.Join(ids, " "), strings.Join(others, " "), mode)
	return func() error {
		n.cl.net.Heal(links...)
		return nil
	}
}

// healAll undoes whatever fault may remain: it heals every link, continues paused nodes and
// restarts killed ones. The nemesis heals each of its faults itself; this is the safety net before
// the final checks.
func (n *nemesis) healAll(ctx context.Context) error {
	n.cl.net.HealAll()
	var errs []string
	for i := range n.cl.size() {
		// Resume fails on a node that is not running, Restart on one that is: one of them applies.
		if err := n.cl.resume(i); err != nil {
			if rerr := n.cl.restart(ctx, i); rerr != nil {
				errs = append(errs, fmt.Sprintf("%s: %v; %v", n.cl.id(i), err, rerr))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("chaos: healing: %s", strings.Join(errs, "; "))
	}
	return nil
}

// sleep waits d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Failover makes a run kill or freeze the leader: Kills times, the first after Every and each next
// Every after the last node was restarted or resumed. The report's Failover then says, for each
// kill, how long produce stopped. A run with a Failover lasts its Duration, and longer if the
// kills need it: it ends once the last one is over.
type Failover struct {
	Kills int
	Every time.Duration
	// Pause, if set, stops the leader with SIGSTOP for that long instead of killing it: its
	// connections stay open and its calls hang, as with a long GC pause, a stalled disk or a
	// frozen VM. It is resumed once Pause has passed (and not before produce resumed, or gave up).
	Pause time.Duration
	// Cluster is the cluster the run's clients talk to.
	Cluster FailoverCluster
}

// FailoverCluster is a cluster of server processes a run can kill or freeze nodes of.
type FailoverCluster interface {
	// Leader is the index of the node that leads, once every node is in the cluster again.
	Leader(ctx context.Context) (int, error)
	// Kill ends node i with SIGKILL and returns once it has exited.
	Kill(i int) error
	// Restart starts node i again, on its data, and returns once it serves.
	Restart(ctx context.Context, i int) error
	// Pause stops node i with SIGSTOP; Resume continues it with SIGCONT.
	Pause(i int) error
	Resume(i int) error
}

// Signals a Kill reports.
const (
	SignalKill = "SIGKILL"
	SignalStop = "SIGSTOP"
)

// resumeTimeout bounds how long a failover waits for produce to resume before it gives up.
const resumeTimeout = 60 * time.Second

// FailoverStats are the kills of a run and the gaps they made.
type FailoverStats struct {
	Kills []Kill `json:"kills"`
	// MaxGapMillis is the longest gap; GapP50Millis the median.
	MaxGapMillis float64 `json:"max_gap_ms"`
	GapP50Millis float64 `json:"p50_gap_ms"`
}

// Kill is one SIGKILL or SIGSTOP of the leader.
type Kill struct {
	// Node is the index of the node killed, from 0.
	Node int `json:"node"`
	// Signal is SignalKill or SignalStop.
	Signal string `json:"signal"`
	// AtSeconds is when it was killed, since the measurement started.
	AtSeconds float64 `json:"at_seconds"`
	// GapMillis is the longest time with no successful produce around the kill: from the last
	// produce acknowledged before it to the first one acknowledged of those that started after it.
	// ResumedMillis is the part after the kill. Both are 0 if produce had not resumed when the
	// run ended (Resumed false).
	GapMillis     float64 `json:"gap_ms"`
	ResumedMillis float64 `json:"resumed_after_ms"`
	Resumed       bool    `json:"resumed"`
}

// verb says what was done to the node.
func (k Kill) verb() string {
	if k.Signal == SignalStop {
		return "froze (SIGSTOP)"
	}
	return "killed (SIGKILL)"
}

// acks tracks successful produces for a failover: the last acknowledgement, and the first one of a
// produce that started after a mark (the kill).
type acks struct {
	mu         sync.Mutex
	last       time.Time
	mark       time.Time // zero: no kill in progress
	firstAfter time.Time
	resumed    chan struct{} // closed at the first acknowledgement after mark
}

// ack records a produce that started at start and was acknowledged at end.
func (a *acks) ack(start, end time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = end
	if !a.mark.IsZero() && a.firstAfter.IsZero() && start.After(a.mark) {
		a.firstAfter = end
		close(a.resumed)
	}
}

// markKill starts watching for the first produce after now and returns the last ack before it.
func (a *acks) markKill(now time.Time) (last time.Time, resumed <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mark, a.firstAfter, a.resumed = now, time.Time{}, make(chan struct{})
	return a.last, a.resumed
}

// first returns the first ack after the mark, and ends the watch.
func (a *acks) first() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	first := a.firstAfter
	a.mark = time.Time{}
	return first
}

// failovers kills or freezes the leader on f's schedule until ctx ends or the kills are done, and
// returns what each did. A kill's gap is measured from the moment SIGKILL returned (the process had
// exited) or SIGSTOP was sent, so no acknowledgement in flight from the old leader counts as
// produce resuming.
func (r *run) failovers(ctx context.Context, f *Failover, a *acks) ([]Kill, error) {
	var kills []Kill
	wait := time.NewTimer(f.Every)
	defer wait.Stop()
	for len(kills) < f.Kills {
		select {
		case <-ctx.Done():
			return kills, nil
		case <-wait.C:
		}
		k, err := r.failover(ctx, f, a)
		kills = append(kills, k)
		if err != nil || ctx.Err() != nil {
			return kills, err
		}
		wait.Reset(f.Every)
	}
	return kills, nil
}

// failover kills or freezes the leader once, waits for produce to resume, and brings the node back.
func (r *run) failover(ctx context.Context, f *Failover, a *acks) (Kill, error) {
	leader, err := f.Cluster.Leader(ctx)
	if err != nil {
		return Kill{}, fmt.Errorf("bench: failover: find the leader: %w", err)
	}
	k := Kill{Node: leader, Signal: SignalKill}
	var thaw <-chan time.Time
	if f.Pause > 0 {
		k.Signal = SignalStop
		if err := f.Cluster.Pause(leader); err != nil {
			return k, fmt.Errorf("bench: failover: %w", err)
		}
		t := time.NewTimer(f.Pause)
		defer t.Stop()
		thaw = t.C
	} else if err := f.Cluster.Kill(leader); err != nil {
		return k, fmt.Errorf("bench: failover: %w", err)
	}
	killed := time.Now()
	last, resumed := a.markKill(killed)
	k.AtSeconds = killed.Sub(r.start).Seconds()
	timeout := time.NewTimer(resumeTimeout)
	defer timeout.Stop()
	// A frozen node is resumed when its pause is over, even if produce waits for it.
	paused := f.Pause > 0
	for waiting := true; waiting; {
		select {
		case <-resumed:
			waiting = false
		case <-ctx.Done():
			waiting = false
		case <-timeout.C:
			waiting = false
		case <-thaw:
			thaw = nil
			paused = false
			if err := f.Cluster.Resume(leader); err != nil {
				return k, fmt.Errorf("bench: failover: %w", err)
			}
		}
	}
	if first := a.first(); !first.IsZero() {
		k.Resumed = true
		k.GapMillis = millis(first.Sub(last))
		k.ResumedMillis = millis(first.Sub(killed))
	}
	if paused {
		select {
		case <-thaw:
		case <-ctx.Done():
		}
		if err := f.Cluster.Resume(leader); err != nil {
			return k, fmt.Errorf("bench: failover: %w", err)
		}
	}
	if ctx.Err() != nil {
		return k, nil
	}
	if !k.Resumed {
		return k, fmt.Errorf("bench: failover: produce did not resume within %s of the %s of node %d", resumeTimeout, k.Signal, leader)
	}
	if f.Pause == 0 {
		if err := f.Cluster.Restart(ctx, leader); err != nil {
			return k, fmt.Errorf("bench: failover: %w", err)
		}
	}
	return k, nil
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// failoverStats summarizes the kills.
func failoverStats(kills []Kill) *FailoverStats {
	s := &FailoverStats{Kills: kills}
	var gaps []float64
	for _, k := range kills {
		if k.Resumed {
			gaps = append(gaps, k.GapMillis)
			s.MaxGapMillis = max(s.MaxGapMillis, k.GapMillis)
		}
	}
	if len(gaps) > 0 {
		slices.Sort(gaps)
		s.GapP50Millis = gaps[(len(gaps)-1)/2]
	}
	return s
}

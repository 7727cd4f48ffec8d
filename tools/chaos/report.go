package chaos

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Counts are operations by outcome.
type Counts struct {
	Attempted     int `json:"attempted"`
	OK            int `json:"ok"`
	Failed        int `json:"failed"`
	Indeterminate int `json:"indeterminate"`
}

func (c *Counts) add(o Outcome) {
	c.Attempted++
	switch o {
	case OK:
		c.OK++
	case Failed:
		c.Failed++
	case Indeterminate:
		c.Indeterminate++
	}
}

// Report is the result of a run.
type Report struct {
	Seed    int64 `json:"seed"`
	Nodes   int   `json:"nodes"`
	Clients int   `json:"clients"`
	Topics  int   `json:"topics"`
	// Partitions is each topic's partition count and ReplicationFactor its replicas (0: the
	// cluster's default).
	Partitions        int           `json:"partitions"`
	ReplicationFactor int           `json:"replication_factor,omitempty"`
	Duration          time.Duration `json:"duration_ns"`
	FaultKinds        []Fault       `json:"fault_kinds"`
	Raft              RaftTimings   `json:"raft"`
	// Ops counts the operations of each kind, and Total all of them.
	Ops   map[OpKind]Counts `json:"ops"`
	Total Counts            `json:"total"`
	// Injected counts the faults injected, by kind; Faults lists them.
	Injected map[Fault]int `json:"faults_injected"`
	Faults   []FaultEvent  `json:"faults"`
	Checks   []Check       `json:"checks"`
	// Elapsed is the whole run's time: start, workload, healing, reading back and checking.
	Elapsed time.Duration `json:"elapsed_ns"`
	// History is every operation, for --history; not in the report's JSON.
	History []Op `json:"-"`
}

func (r *Report) count() {
	r.Ops = map[OpKind]Counts{}
	for _, op := range r.History {
		c := r.Ops[op.Kind]
		c.add(op.Outcome)
		r.Ops[op.Kind] = c
		r.Total.add(op.Outcome)
	}
	r.Injected = map[Fault]int{}
	for _, f := range r.Faults {
		if f.Err == "" {
			r.Injected[f.Kind]++
		}
	}
}

// Valid reports whether no checker found a violation. A check whose verdict is unknown is no
// violation; Complete tells about those.
func (r *Report) Valid() bool {
	for _, c := range r.Checks {
		if c.Verdict == Fail {
			return false
		}
	}
	return true
}

// Complete reports whether every checker reached a verdict.
func (r *Report) Complete() bool {
	for _, c := range r.Checks {
		if c.Verdict == Unknown {
			return false
		}
	}
	return true
}

// Check returns the check named name, or nil.
func (r *Report) Check(name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) {
	kinds := make([]string, len(r.FaultKinds))
	for i, k := range r.FaultKinds {
		kinds[i] = string(k)
	}
	rf := "the cluster's default replicas"
	if r.ReplicationFactor > 0 {
		rf = fmt.Sprintf("R%d", r.ReplicationFactor)
	}
	fmt.Fprintf(w, "dislog-chaos: %d nodes, %d clients, %d topics of %d partitions (%s), %v, seed %d, faults %s\n",
		r.Nodes, r.Clients, r.Topics, max(r.Partitions, 1), rf, r.Duration, r.Seed, strings.Join(kinds, ","))
	fmt.Fprintf(w, "\n%-10s %10s %10s %10s %14s\n", "operation", "attempted", "ok", "failed", "indeterminate")
	for _, k := range []OpKind{OpProduce, OpRead, OpCommit, OpFetch} {
		c := r.Ops[k]
		fmt.Fprintf(w, "%-10s %10d %10d %10d %14d\n", k, c.Attempted, c.OK, c.Failed, c.Indeterminate)
	}
	fmt.Fprintf(w, "%-10s %10d %10d %10d %14d\n", "total", r.Total.Attempted, r.Total.OK, r.Total.Failed, r.Total.Indeterminate)
	fmt.Fprintf(w, "\nfaults injected:")
	if len(r.Injected) == 0 {
		fmt.Fprintf(w, " none")
	}
	var injected []string
	for k, n := range r.Injected {
		injected = append(injected, fmt.Sprintf(" %s %d", k, n))
	}
	slices.Sort(injected)
	fmt.Fprintf(w, "%s\n", strings.Join(injected, ","))
	for _, f := range r.Faults {
		line := fmt.Sprintf("  %7.2fs-%7.2fs %-16s %s", f.Start.Seconds(), f.End.Seconds(), f.Kind, f.What)
		if f.Err != "" {
			line += ": " + f.Err
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%-7s %s: %s\n", strings.ToUpper(string(c.Verdict)), c.Name, c.Summary)
		for _, d := range c.Details {
			fmt.Fprintf(w, "          %s\n", d)
		}
		if c.Violations > len(c.Details) {
			fmt.Fprintf(w, "          ... and %d more\n", c.Violations-len(c.Details))
		}
	}
	verdict := "every check passed"
	switch {
	case !r.Valid():
		verdict = "VIOLATIONS FOUND"
	case !r.Complete():
		verdict = "no violation found, but not every check reached a verdict"
	}
	fmt.Fprintf(w, "\n%s (%v in all)\n", verdict, r.Elapsed.Round(time.Second))
}

// Package placement decides which servers hold the replicas of a topic's partitions, and which
// replica of each partition is its preferred leader (issue #12, docs/ARCHITECTURE.md).
//
// Place is one pure function used for every change: a new topic (no current assignment), more
// partitions, a server that joined (it receives replicas moved from the busiest servers) and a server
// removed for good (its replicas move to the others). It keeps every replica it can and moves only
// what balance needs, so a server that merely restarts keeps its replicas: the caller passes the
// servers that are members of the cluster, not only those that are up.
//
// Balance, for a topic of P partitions with R replicas on N servers: every server holds
// floor(P·R/N) or ceil(P·R/N) of the topic's replicas and is the preferred leader of floor(P/N) or
// ceil(P/N) of its partitions. Replicas are balanced first (a replica on a server that holds more
// than another moves to it, one at a time, which ends because the sum of squared counts falls), then
// preferred leaderships are shifted along augmenting paths: server v takes the leadership of a
// partition it holds a replica of from server w, w takes one from x, and so on, until the server
// with the most leaderships has given one up. Ties go to the server that other topics load least
// (Load), then to the server that sorts first, so the result is deterministic and many small topics
// spread over the cluster.
package placement

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

var (
	// ErrNotEnoughServers is returned when a topic asks for more replicas than there are servers.
	ErrNotEnoughServers = errors.New("placement: not enough servers")
	// ErrInvalid is returned for a partition or replica count below one, a partition count below
	// the current one, or a server listed twice or empty.
	ErrInvalid = errors.New("placement: invalid request")
)

// Assignment is a topic's replica sets: Assignment[p] lists partition p's replicas, its preferred
// leader first.
type Assignment [][]string

// Load is what other topics already place on a server; Place uses it only to break ties.
type Load struct {
	Replicas int
	Leaders  int
}

// Place returns a balanced assignment of partitions partitions with replicas replicas each over
// servers, keeping as much of current as balance allows. current may be nil (a new topic) or
// shorter than partitions (partitions were added); replicas on servers not in servers are moved.
// load (which may be nil) tells how much other topics put on each server.
func Place(current Assignment, servers []string, partitions, replicas int, load map[string]Load) (Assignment, error) {
	switch {
	case partitions < 1 || replicas < 1:
		return nil, fmt.Errorf("%w: %d partitions of %d replicas", ErrInvalid, partitions, replicas)
	case partitions < len(current):
		return nil, fmt.Errorf("%w: %d partitions, fewer than the %d there are", ErrInvalid, partitions, len(current))
	case replicas > len(servers):
		return nil, fmt.Errorf("%w: %d replicas asked, %d servers", ErrNotEnoughServers, replicas, len(servers))
	}
	p := newPlacer(servers, load)
	if p == nil {
		return nil, fmt.Errorf("%w: servers %q: each must be named once", ErrInvalid, servers)
	}
	sets := p.keep(current, partitions, replicas)
	kept := len(current)
	p.fill(sets, replicas)
	p.balanceReplicas(sets)
	leaders := p.balanceLeaders(sets, kept)
	out := make(Assignment, len(sets))
	for i, set := range sets {
		out[i] = make([]string, 0, len(set))
		out[i] = append(out[i], p.names[leaders[i]])
		for _, s := range set {
			if s != leaders[i] {
				out[i] = append(out[i], p.names[s])
			}
		}
	}
	return out, nil
}

// placer works on server indexes into names, which is sorted.
type placer struct {
	names []string
	index map[string]int
	load  []Load
	// replicas and leaders count this topic's replicas and preferred leaderships per server.
	replicas []int
	leaders  []int
}

func newPlacer(servers []string, load map[string]Load) *placer {
	names := slices.Clone(servers)
	slices.Sort(names)
	if len(slices.Compact(slices.Clone(names))) != len(names) || (len(names) > 0 && names[0] == "") {
		return nil
	}
	p := &placer{names: names, index: map[string]int{}, load: make([]Load, len(names)),
		replicas: make([]int, len(names)), leaders: make([]int, len(names))}
	for i, n := range names {
		p.index[n] = i
		p.load[i] = load[n]
	}
	return p
}

// less orders servers for taking one more replica: fewer replicas of this topic, then fewer of other
// topics, then the name.
func (p *placer) lessReplicas(a, b int) bool {
	return cmp.Or(cmp.Compare(p.replicas[a], p.replicas[b]), cmp.Compare(p.load[a].Replicas, p.load[b].Replicas), cmp.Compare(a, b)) < 0
}

func (p *placer) lessLeaders(a, b int) bool {
	return cmp.Or(cmp.Compare(p.leaders[a], p.leaders[b]), cmp.Compare(p.load[a].Leaders, p.load[b].Leaders), cmp.Compare(a, b)) < 0
}

// keep returns the current replica sets restricted to known servers, each server once per set, at
// most replicas per set, and one empty set per new partition. A kept set's first server is its
// current preferred leader.
func (p *placer) keep(current Assignment, partitions, replicas int) [][]int {
	sets := make([][]int, partitions)
	for i, set := range current {
		for _, name := range set {
			s, ok := p.index[name]
			if !ok || slices.Contains(sets[i], s) || len(sets[i]) == replicas {
				continue
			}
			sets[i] = append(sets[i], s)
			p.replicas[s]++
		}
	}
	return sets
}

// fill completes every set to replicas servers, each time with the least loaded server the set lacks.
func (p *placer) fill(sets [][]int, replicas int) {
	for i := range sets {
		for len(sets[i]) < replicas {
			best := -1
			for s := range p.names {
				if !slices.Contains(sets[i], s) && (best < 0 || p.lessReplicas(s, best)) {
					best = s
				}
			}
			sets[i] = append(sets[i], best)
			p.replicas[best]++
		}
	}
}

// balanceReplicas moves one replica at a time from a server with the most to one with the fewest
// until they differ by at most one. The busiest server holds more sets than the idlest, so some set
// holds it and lacks the idlest: the move always exists.
func (p *placer) balanceReplicas(sets [][]int) {
	for {
		most, fewest := 0, 0
		for s := range p.names {
			if p.replicas[s] > p.replicas[most] || p.replicas[s] == p.replicas[most] && p.load[s].Replicas > p.load[most].Replicas {
				most = s
			}
			if p.lessReplicas(s, fewest) {
				fewest = s
			}
		}
		if p.replicas[most]-p.replicas[fewest] <= 1 {
			return
		}
		// Move a replica that is not a preferred leader if there is one, so leaderships stay put.
		move, at := -1, -1
		for i, set := range sets {
			if j := slices.Index(set, most); j >= 0 && !slices.Contains(set, fewest) && (move < 0 || at == 0 && j > 0) {
				move, at = i, j
			}
		}
		sets[move][at] = fewest
		p.replicas[most]--
		p.replicas[fewest]++
	}
}

// balanceLeaders picks each set's preferred leader: a kept set's first server (its current leader),
// a new set's server with the fewest leaderships; then it shifts leaderships along augmenting paths
// until the counts differ by at most one or no path is left.
func (p *placer) balanceLeaders(sets [][]int, kept int) []int {
	leader := make([]int, len(sets))
	for i, set := range sets {
		if i < kept {
			leader[i] = set[0]
			p.leaders[set[0]]++
		}
	}
	for i := kept; i < len(sets); i++ {
		leader[i] = slices.MinFunc(sets[i], func(a, b int) int {
			if p.lessLeaders(a, b) {
				return -1
			}
			return 1
		})
		p.leaders[leader[i]]++
	}
	for p.shiftLeadership(sets, leader) {
	}
	return leader
}

// shiftLeadership moves one leadership from a server with the most to one with at least two fewer,
// along a path of partitions, and reports whether it found one.
func (p *placer) shiftLeadership(sets [][]int, leader []int) bool {
	order := make([]int, len(p.names))
	for s := range order {
		order[s] = s
	}
	slices.SortFunc(order, func(a, b int) int {
		if p.lessLeaders(a, b) {
			return -1
		}
		return 1
	})
	most := slices.MaxFunc(order, func(a, b int) int { return cmp.Compare(p.leaders[a], p.leaders[b]) })
	for _, v := range order {
		if p.leaders[most]-p.leaders[v] <= 1 {
			return false
		}
		// Breadth-first from v: u may take partition i from its leader w if u holds a replica of i.
		via := make([]int, len(p.names))  // via[w]: the partition through which w was reached
		prev := make([]int, len(p.names)) // prev[w]: the server that reached w
		seen := make([]bool, len(p.names))
		seen[v] = true
		queue := []int{v}
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			// The newest partitions first, so that older ones keep their leaders where they can.
			for i := len(sets) - 1; i >= 0; i-- {
				set, w := sets[i], leader[i]
				if seen[w] || !slices.Contains(set, u) {
					continue
				}
				seen[w], via[w], prev[w] = true, i, u
				if p.leaders[w]-p.leaders[v] >= 2 {
					// Walk back: each partition on the path goes to the server that reached its
					// leader; w gives up one leadership, v gains one, the others keep their count.
					for at := w; at != v; at = prev[at] {
						leader[via[at]] = prev[at]
					}
					p.leaders[w]--
					p.leaders[v]++
					return true
				}
				queue = append(queue, w)
			}
		}
	}
	return false
}

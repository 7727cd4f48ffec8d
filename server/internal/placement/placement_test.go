package placement_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dislog/dislog/server/internal/placement"
	"github.com/matryer/is"
)

func servers(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("s%02d", i+1)
	}
	return s
}

// checkBalanced fails t unless a is a valid, balanced assignment of partitions×replicas over names:
// every set has replicas distinct known servers, and every server's replica and preferred-leader
// counts are the floor or the ceiling of the mean.
func checkBalanced(t *testing.T, a placement.Assignment, names []string, partitions, replicas int) {
	t.Helper()
	if len(a) != partitions {
		t.Fatalf("%d partitions placed, want %d", len(a), partitions)
	}
	reps, leads := map[string]int{}, map[string]int{}
	for i, set := range a {
		if len(set) != replicas {
			t.Fatalf("partition %d has replicas %q, want %d of them", i, set, replicas)
		}
		for j, s := range set {
			if !slices.Contains(names, s) {
				t.Fatalf("partition %d is placed on %q, not one of %q", i, s, names)
			}
			if slices.Contains(set[:j], s) {
				t.Fatalf("partition %d has %q twice: %q", i, s, set)
			}
			reps[s]++
		}
		leads[set[0]]++
	}
	n := len(names)
	for _, s := range names {
		if lo, hi := partitions*replicas/n, (partitions*replicas+n-1)/n; reps[s] < lo || reps[s] > hi {
			t.Fatalf("%s holds %d replicas, want %d to %d (%d partitions × %d replicas on %d servers): %q",
				s, reps[s], lo, hi, partitions, replicas, n, a)
		}
		if lo, hi := partitions/n, (partitions+n-1)/n; leads[s] < lo || leads[s] > hi {
			t.Fatalf("%s leads %d partitions, want %d to %d (%d partitions on %d servers): %q",
				s, leads[s], lo, hi, partitions, n, a)
		}
	}
}

// moved counts the replicas of b that a does not have on the same partition.
func moved(a, b placement.Assignment) int {
	n := 0
	for i := range b {
		for _, s := range b[i] {
			if i >= len(a) || !slices.Contains(a[i], s) {
				n++
			}
		}
	}
	return n
}

func TestNewTopicsAreBalanced(t *testing.T) {
	for n := 1; n <= 9; n++ {
		for _, r := range []int{1, 3, 5} {
			if r > n {
				continue
			}
			for _, p := range []int{1, 2, 3, 5, 7, 12, 32, 100, 256} {
				names := servers(n)
				a, err := placement.Place(nil, names, p, r, nil)
				if err != nil {
					t.Fatalf("%d partitions × %d replicas on %d servers: %v", p, r, n, err)
				}
				checkBalanced(t, a, names, p, r)
			}
		}
	}
}

func TestPlacingTheSameServersAgainMovesNothing(t *testing.T) {
	is := is.New(t)
	names := servers(5)
	a, err := placement.Place(nil, names, 12, 3, nil)
	is.NoErr(err)
	b, err := placement.Place(a, names, 12, 3, nil)
	is.NoErr(err)
	is.Equal(a, b) // a restart, or a periodic check, changes nothing
}

func TestAJoinedServerTakesItsShareAndOnlyThat(t *testing.T) {
	for _, tc := range []struct{ n, p, r int }{{3, 12, 3}, {3, 12, 1}, {4, 32, 3}, {5, 8, 3}, {2, 7, 1}} {
		t.Run(fmt.Sprintf("%d partitions of %d replicas, server %d joins", tc.p, tc.r, tc.n+1), func(t *testing.T) {
			is := is.New(t)
			before := servers(tc.n)
			a, err := placement.Place(nil, before, tc.p, tc.r, nil)
			is.NoErr(err)
			after := servers(tc.n + 1)
			b, err := placement.Place(a, after, tc.p, tc.r, nil)
			is.NoErr(err)
			checkBalanced(t, b, after, tc.p, tc.r)
			// The newcomer gets floor(P·R/N) or so; nothing else moves.
			newcomer := after[tc.n]
			got := 0
			for _, set := range b {
				if slices.Contains(set, newcomer) {
					got++
				}
			}
			if m := moved(a, b); m != got {
				t.Fatalf("%d replicas moved, but the new server holds %d: %q -> %q", m, got, a, b)
			}
		})
	}
}

func TestARemovedServersReplicasMoveToTheOthers(t *testing.T) {
	for _, tc := range []struct{ n, p, r int }{{4, 12, 3}, {5, 32, 3}, {6, 8, 5}, {3, 5, 1}} {
		t.Run(fmt.Sprintf("%d partitions of %d replicas on %d servers, one removed", tc.p, tc.r, tc.n), func(t *testing.T) {
			is := is.New(t)
			names := servers(tc.n)
			a, err := placement.Place(nil, names, tc.p, tc.r, nil)
			is.NoErr(err)
			gone := names[1]
			left := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == gone })
			b, err := placement.Place(a, left, tc.p, tc.r, nil)
			is.NoErr(err)
			checkBalanced(t, b, left, tc.p, tc.r) // every partition has R replicas again
			had := 0
			for _, set := range a {
				if slices.Contains(set, gone) {
					had++
				}
			}
			if m := moved(a, b); m < had {
				t.Fatalf("%d replicas moved, fewer than the %d the removed server held", m, had)
			}
		})
	}
}

func TestAddingPartitionsKeepsTheOldOnes(t *testing.T) {
	is := is.New(t)
	names := servers(3)
	a, err := placement.Place(nil, names, 4, 3, nil)
	is.NoErr(err)
	b, err := placement.Place(a, names, 10, 3, nil)
	is.NoErr(err)
	checkBalanced(t, b, names, 10, 3)
	for i := range a {
		is.Equal(a[i], b[i]) // R = N: every old set, and its leader, stays
	}
}

func TestLoadSpreadsSmallTopics(t *testing.T) {
	is := is.New(t)
	names := servers(5)
	load := map[string]placement.Load{}
	for range 10 {
		a, err := placement.Place(nil, names, 1, 1, load)
		is.NoErr(err)
		l := load[a[0][0]]
		l.Replicas++
		l.Leaders++
		load[a[0][0]] = l
	}
	for _, s := range names {
		if load[s].Replicas != 2 {
			t.Fatalf("ten topics of one replica on five servers: %s holds %d, want 2 (%v)", s, load[s].Replicas, load)
		}
	}
}

func TestRandomHistoriesStayBalanced(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 300 {
		n := 1 + rng.IntN(8)
		names := servers(n)
		r := []int{1, 3, 5}[rng.IntN(3)]
		if r > n {
			r = 1
		}
		p := 1 + rng.IntN(40)
		a, err := placement.Place(nil, names, p, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		for step := range 6 {
			switch rng.IntN(3) {
			case 0: // a server joins
				names = append(names, fmt.Sprintf("j%d-%d", run, step))
			case 1: // a server is removed, if R still fits
				if len(names) > r {
					i := rng.IntN(len(names))
					names = slices.Delete(slices.Clone(names), i, i+1)
				}
			case 2: // partitions are added
				p += rng.IntN(5)
			}
			if a, err = placement.Place(a, names, p, r, nil); err != nil {
				t.Fatalf("run %d step %d: %v", run, step, err)
			}
			checkBalanced(t, a, names, p, r)
		}
	}
}

func TestBadRequests(t *testing.T) {
	three := servers(3)
	cur, err := placement.Place(nil, three, 4, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		current     placement.Assignment
		servers     []string
		parts, reps int
		want        error
	}{
		{"zero partitions", nil, three, 0, 1, placement.ErrInvalid},
		{"zero replicas", nil, three, 1, 0, placement.ErrInvalid},
		{"more replicas than servers", nil, three, 1, 5, placement.ErrNotEnoughServers},
		{"fewer partitions than there are", cur, three, 3, 1, placement.ErrInvalid},
		{"a server named twice", nil, []string{"a", "b", "a"}, 1, 1, placement.ErrInvalid},
		{"an empty server name", nil, []string{"", "b"}, 1, 1, placement.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := placement.Place(tc.current, tc.servers, tc.parts, tc.reps, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func BenchmarkPlace1024PartitionsOnNineServers(b *testing.B) {
	names := servers(9)
	for b.Loop() {
		if _, err := placement.Place(nil, names, 1024, 3, nil); err != nil {
			b.Fatal(err)
		}
	}
}

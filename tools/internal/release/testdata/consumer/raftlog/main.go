// Command raftlog is a user of github.com/dislog/dislog/raftlog: a one-server hashicorp/raft
// cluster on an in-memory transport that stores its log and stable state with raftlog, applies
// 100 entries, stops, starts again on the same directory and reads them back.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/dislog/dislog/raftlog"
	"github.com/hashicorp/raft"
)

const entries = 100

func main() {
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "raftlog consumer:", err)
		os.Exit(1)
	}
	fmt.Printf("raftlog: %d entries applied, read back after a restart\n", entries)
}

func run(dir string) error {
	var first fsm
	r, store, err := start(dir, &first, true)
	if err != nil {
		return err
	}
	for i := range entries {
		if err := r.Apply(fmt.Appendf(nil, "entry %d", i), 5*time.Second).Error(); err != nil {
			return fmt.Errorf("apply %d: %w", i, err)
		}
	}
	if err := r.Shutdown().Error(); err != nil {
		return err
	}
	if err := store.Close(); err != nil {
		return err
	}

	var again fsm
	r, store, err = start(dir, &again, false)
	if err != nil {
		return err
	}
	defer store.Close()
	defer r.Shutdown()
	var seen []string
	for i := uint64(1); i <= r.LastIndex(); i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			return fmt.Errorf("GetLog(%d): %w", i, err)
		}
		if l.Type == raft.LogCommand {
			seen = append(seen, string(l.Data))
		}
	}
	if err := check(seen); err != nil {
		return fmt.Errorf("the log after a restart: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(again.applied()) < entries && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := check(again.applied()); err != nil {
		return fmt.Errorf("the entries raft applied again after a restart: %w", err)
	}
	return nil
}

func check(got []string) error {
	var want []string
	for i := range entries {
		want = append(want, fmt.Sprintf("entry %d", i))
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("%d entries %q, want %d", len(got), got, entries)
	}
	return nil
}

// start opens the store in dir and starts raft on it, bootstrapping a new cluster if asked, and
// waits until it leads.
func start(dir string, f *fsm, bootstrap bool) (*raft.Raft, *raftlog.Store, error) {
	store, err := raftlog.Open(dir, raftlog.Options{})
	if err != nil {
		return nil, nil, err
	}
	conf := raft.DefaultConfig()
	conf.LocalID = "n1"
	conf.LogOutput = io.Discard
	conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	addr, transport := raft.NewInmemTransport("n1")
	snapshots := raft.NewInmemSnapshotStore()
	if bootstrap {
		servers := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}
		if err := raft.BootstrapCluster(conf, store, store, snapshots, transport, servers); err != nil {
			return nil, nil, err
		}
	}
	r, err := raft.NewRaft(conf, f, store, store, snapshots, transport)
	if err != nil {
		return nil, nil, err
	}
	select {
	case <-waitLeader(r):
		return r, store, nil
	case <-time.After(10 * time.Second):
		return nil, nil, errors.New("no leader after 10s")
	}
}

func waitLeader(r *raft.Raft) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for r.State() != raft.Leader {
			time.Sleep(10 * time.Millisecond)
		}
		close(done)
	}()
	return done
}

type fsm struct {
	mu   sync.Mutex
	data []string
}

func (f *fsm) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data = append(f.data, string(l.Data))
	return nil
}

func (f *fsm) applied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.data)
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots here") }

func (f *fsm) Restore(io.ReadCloser) error { return errors.New("no snapshots here") }

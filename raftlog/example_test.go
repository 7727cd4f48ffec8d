package raftlog_test

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/dislog/dislog/raftlog"
	"github.com/hashicorp/raft"
)

// counter is the smallest raft.FSM: it counts the commands it applies.
type counter struct{ n int }

func (c *counter) Apply(*raft.Log) any                 { c.n++; return c.n }
func (c *counter) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not supported") }
func (c *counter) Restore(io.ReadCloser) error         { return fmt.Errorf("not supported") }

// A single-node raft on a raftlog store: the store is both raft's log store and its stable store.
func Example() {
	dir, err := os.MkdirTemp("", "raftlog-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := raftlog.Open(filepath.Join(dir, "raft"), raftlog.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	conf := raft.DefaultConfig()
	conf.LocalID = "node-1"
	conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
	conf.LogOutput = io.Discard
	addr, transport := raft.NewInmemTransport("node-1")
	r, err := raft.NewRaft(conf, &counter{}, store, store, raft.NewInmemSnapshotStore(), transport)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = r.Shutdown().Error() }()
	if err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}).Error(); err != nil {
		log.Fatal(err)
	}
	<-r.LeaderCh()
	if err := r.Apply([]byte("hello"), time.Second).Error(); err != nil {
		log.Fatal(err)
	}

	// Entry 1 is the bootstrap configuration, entry 2 the new leader's no-op, entry 3 the command.
	last, _ := store.LastIndex()
	var entry raft.Log
	if err := store.GetLog(last, &entry); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("entry %d: %s\n", entry.Index, entry.Data)
	// Output: entry 3: hello
}

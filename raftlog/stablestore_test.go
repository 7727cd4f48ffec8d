package raftlog

import (
	"errors"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

func TestStableStore(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	s, err := OpenStableStore(dir, Options{})
	is.NoErr(err)

	v, err := s.Get([]byte("missing"))
	is.NoErr(err)
	is.True(v == nil) // a missing key is nil, nil
	n, err := s.GetUint64([]byte("missing"))
	is.NoErr(err)
	is.Equal(n, uint64(0)) // and 0, nil as a uint64

	is.NoErr(s.Set([]byte("LastVoteCand"), []byte("node-2")))
	is.NoErr(s.SetUint64([]byte("CurrentTerm"), 42))
	is.NoErr(s.Set([]byte("empty"), nil))
	is.NoErr(s.Close())

	s, err = OpenStableStore(dir, Options{})
	is.NoErr(err)
	defer s.Close()
	v, err = s.Get([]byte("LastVoteCand"))
	is.NoErr(err)
	is.Equal(string(v), "node-2")
	n, err = s.GetUint64([]byte("CurrentTerm"))
	is.NoErr(err)
	is.Equal(n, uint64(42))
	_, err = s.GetUint64([]byte("LastVoteCand"))
	is.True(errors.Is(err, ErrBadUint64))

	is.NoErr(s.SetUint64([]byte("CurrentTerm"), 43)) // overwrites
	n, err = s.GetUint64([]byte("CurrentTerm"))
	is.NoErr(err)
	is.Equal(n, uint64(43))
}

func TestOpenPutsBothStoresInOneDirectory(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	is.NoErr(err)
	store(t, s, 1, 3)
	is.NoErr(s.SetUint64([]byte("CurrentTerm"), 2))
	is.NoErr(s.Close())

	s, err = Open(dir, Options{})
	is.NoErr(err)
	defer s.Close()
	checkRange(t, s, 1, 3)
	n, err := s.GetUint64([]byte("CurrentTerm"))
	is.NoErr(err)
	is.Equal(n, uint64(2))
}

// Groups of one StableStore keep their keys apart, from each other and from the store's own, also
// when one id starts another or ids hold 0xff bytes; they survive a reopen, and DeleteGroup removes
// one group's keys and nothing else.
func TestStableStoreGroups(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	ids := []string{"topic/0", "topic/01", "topic/1", "", "a", "\xff", "\xff\xff", "\x00"}
	s, err := OpenStableStore(dir, Options{})
	is.NoErr(err)
	is.NoErr(s.SetUint64([]byte("CurrentTerm"), 1000))
	for i, id := range ids {
		g := s.Group(id)
		is.Equal(g.ID(), id)
		n, err := g.GetUint64([]byte("CurrentTerm"))
		is.NoErr(err)
		is.Equal(n, uint64(0)) // a new group sees nothing of the store's or other groups' keys
		is.NoErr(g.SetUint64([]byte("CurrentTerm"), uint64(i)))
		is.NoErr(g.Set([]byte("LastVoteCand"), []byte("node-"+id)))
	}
	term := map[string]uint64{}
	for i, id := range ids {
		term[id] = uint64(i)
	}
	check := func(s *StableStore, deleted string) {
		t.Helper()
		for _, id := range ids {
			g := s.Group(id)
			n, err := g.GetUint64([]byte("CurrentTerm"))
			is.NoErr(err)
			v, err := g.Get([]byte("LastVoteCand"))
			is.NoErr(err)
			if id == deleted {
				if n != 0 || v != nil {
					t.Fatalf("deleted group %q still holds %d, %q", id, n, v)
				}
				continue
			}
			if n != term[id] || string(v) != "node-"+id {
				t.Fatalf("group %q holds %d, %q; want %d, %q", id, n, v, term[id], "node-"+id)
			}
		}
		n, err := s.GetUint64([]byte("CurrentTerm"))
		is.NoErr(err)
		is.Equal(n, uint64(1000)) // the store's own key, untouched by the groups
	}
	check(s, "none")
	is.NoErr(s.Close())

	s, err = OpenStableStore(dir, Options{})
	is.NoErr(err)
	check(s, "none")
	for _, id := range []string{"\xff", "topic/0"} {
		is.NoErr(s.DeleteGroup(id))
		check(s, id)
		if id != "topic/0" {
			ids = slices.DeleteFunc(ids, func(x string) bool { return x == id })
		}
	}
	is.NoErr(s.Close())

	s, err = OpenStableStore(dir, Options{})
	is.NoErr(err)
	defer s.Close()
	check(s, "topic/0")
	g := s.Group("topic/0") // a deleted group starts again empty
	is.NoErr(g.SetUint64([]byte("CurrentTerm"), 7))
	n, err := g.GetUint64([]byte("CurrentTerm"))
	is.NoErr(err)
	is.Equal(n, uint64(7))
	_, err = s.Group("a").GetUint64([]byte("LastVoteCand"))
	is.True(errors.Is(err, ErrBadUint64))
}

// A group's StableStore is what raft needs: a cluster of one on a group of a shared StableStore
// elects itself and applies commands, and so does another group beside it.
func TestGroupStableStoreUnderRaft(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	stable, err := OpenStableStore(filepath.Join(dir, "stable"), Options{})
	is.NoErr(err)
	defer stable.Close()
	for _, id := range []string{"orders/0", "orders/1"} {
		logs := openLogStore(t, filepath.Join(dir, id), Options{})
		conf := raft.DefaultConfig()
		conf.LocalID = "node"
		conf.LogOutput = io.Discard
		addr, trans := raft.NewInmemTransport("")
		r, err := raft.NewRaft(conf, &hashFSM{}, logs, stable.Group(id), raft.NewInmemSnapshotStore(), trans)
		is.NoErr(err)
		is.NoErr(r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "node", Address: addr}}}).Error())
		for deadline := time.Now().Add(10 * time.Second); r.State() != raft.Leader; <-time.After(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("group %s: no leader after 10s", id)
			}
		}
		is.NoErr(r.Apply([]byte("command"), 5*time.Second).Error())
		is.NoErr(r.Shutdown().Error())
		term, err := stable.Group(id).GetUint64([]byte("CurrentTerm"))
		is.NoErr(err)
		is.True(term > 0) // raft kept its term in the group's keys
	}
	term, err := stable.GetUint64([]byte("CurrentTerm"))
	is.NoErr(err)
	is.Equal(term, uint64(0)) // and not in the store's own
}

package server_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/server"
	"github.com/dislog/dislog/server/servertest"
	"github.com/dislog/dislog/storelog"
	"github.com/matryer/is"
)

// damageRaftLog flips one bit in the value of the middle entry of the newest segment of the Raft log
// in a server's data directory, walking the frames as storelog's package doc draws them.
func damageRaftLog(t *testing.T, dataDir string) {
	t.Helper()
	stores, err := filepath.Glob(filepath.Join(dataDir, "controller", "log", "*.store"))
	if err != nil || len(stores) == 0 {
		t.Fatalf("no Raft log segments in %s: %v", dataDir, err)
	}
	slices.Sort(stores)
	path := stores[len(stores)-1]
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const storeHeader, frameHeader = 32, 36
	var frames []int
	for pos := storeHeader; pos+frameHeader <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[pos:]))
		if binary.LittleEndian.Uint32(b[pos+4:]) == 0 || pos+frameHeader+n > len(b) {
			break
		}
		frames = append(frames, pos)
		pos += frameHeader + n
	}
	if len(frames) < 3 {
		t.Fatalf("%s holds %d entries, too few to damage one in the middle", path, len(frames))
	}
	mid := frames[len(frames)/2]
	b[mid+frameHeader+int(binary.LittleEndian.Uint32(b[mid:]))/2] ^= 0x08
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A server whose Raft log is damaged in the middle does not start, and its error says how to
// recover; following that path (the old ID out of the configuration, the data directory moved aside,
// the server started empty under a new ID) brings the cluster back to three voters that all hold
// every record, without the damaged replica ever voting.
func TestAServerWithADamagedRaftLogRejoinsUnderANewID(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	// A short grace period: the damaged server's partition replicas move to the server that
	// replaces it once it has been out of the cluster that long.
	nodes := servertest.StartCluster(t, 3, server.WithFailedRemoveAfter(time.Second))
	leader := leaderOf(t, nodes)
	lc := leader.Client(t, "alice")
	_, err := lc.CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)
	for i := range 20 {
		_, err := lc.Produce(ctx, "t", client.Record{Value: fmt.Appendf(nil, "before-%d", i)})
		is.NoErr(err)
	}
	var victim *servertest.Node
	var others []*servertest.Node
	for _, n := range nodes {
		if n != leader && victim == nil {
			victim = n
		} else {
			others = append(others, n)
		}
	}
	sameRecords(t, clientsOf(t, nodes), "t", 20)
	is.NoErr(victim.Stop())
	damageRaftLog(t, victim.Dir)

	err = victim.TryRestart()
	if err == nil {
		t.Fatal("a server started on a damaged Raft log")
	}
	if !errors.Is(err, storelog.ErrCorrupt) || !strings.Contains(err.Error(), "new node ID") ||
		!strings.Contains(err.Error(), victim.Dir) || !strings.Contains(err.Error(), fmt.Sprintf("%q", victim.ID)) {
		t.Fatalf("start on a damaged Raft log: %v; want ErrCorrupt and the way to recover", err)
	}

	// The path the error gives: the old ID out of the configuration (a graceful stop left Serf, so
	// the leader removed it at once; a crashed server is removed after WithFailedRemoveAfter)...
	servertest.WaitFor(t, 10*time.Second, "the leader to drop the damaged server", func() bool {
		servers, err := lc.GetServers(ctx)
		if err != nil {
			return false
		}
		for _, s := range servers {
			if s.ID == victim.ID {
				return false
			}
		}
		return len(servers) == 2
	})
	for i := range 10 {
		_, err := lc.Produce(ctx, "t", client.Record{Value: fmt.Appendf(nil, "while-away-%d", i)})
		is.NoErr(err)
	}
	// ...the data directory moved aside, and the server started empty under a new ID.
	is.NoErr(os.Rename(victim.Dir, victim.Dir+".damaged"))
	reborn := servertest.StartNode(t, nodes[0].CA, victim.ID+"-b", "",
		append(servertest.ClusterOptions(), server.WithJoin(leader.Server.SerfAddr()), server.WithFailedRemoveAfter(time.Second))...)
	servertest.WaitFor(t, 20*time.Second, "three voters again", func() bool { return leader.Server.Voters() == 3 })
	for i := range 10 {
		_, err := lc.Produce(ctx, "t", client.Record{Value: fmt.Appendf(nil, "after-%d", i)})
		is.NoErr(err)
	}
	sameRecords(t, clientsOf(t, append(others, reborn)), "t", 40)
	// The partition is on three servers again, the new one among them: its replica on the damaged
	// server moved there (or, if the move came while two servers were left, was added back).
	servertest.WaitFor(t, 20*time.Second, "the partition's replicas to include the new server", func() bool {
		info, err := lc.DescribeTopic(ctx, "t")
		return err == nil && len(info.PartitionInfo) == 1 && len(info.PartitionInfo[0].Replicas) == 3 &&
			slices.Contains(info.PartitionInfo[0].Replicas, reborn.ID) && !slices.Contains(info.PartitionInfo[0].Replicas, victim.ID)
	})
	servers, err := lc.GetServers(ctx)
	is.NoErr(err)
	var ids []string
	for _, s := range servers {
		ids = append(ids, s.ID)
		is.True(s.IsVoter)
	}
	slices.Sort(ids)
	want := []string{others[0].ID, others[1].ID, reborn.ID}
	slices.Sort(want)
	is.Equal(ids, want)
}

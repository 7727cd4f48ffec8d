package server_test

import (
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/server/servertest"
	"github.com/matryer/is"
)

// A group's offset committed through the leader is what a follower answers the moment after the
// commit's acknowledgement: FetchOffset is linearizable, as Kafka's coordinator is. Without the
// read barrier a follower applies the commit up to a commit timeout later and answers the old value.
func TestAFollowerFetchesTheOffsetJustCommittedOnTheLeader(t *testing.T) {
	is := is.New(t)
	ctx := ctxT(t)
	nodes := servertest.StartCluster(t, 3)
	leader := leaderOf(t, nodes)
	lc := leader.Client(t, "alice")
	var fcs []*client.Client
	for _, n := range nodes {
		if n != leader {
			fcs = append(fcs, n.Client(t, "alice"))
		}
	}
	_, err := lc.CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err)
	_, err = lc.ProduceBatch(ctx, "t", []client.Record{{Value: make([]byte, 300)}})
	is.NoErr(err)
	for _, fc := range fcs {
		servertest.WaitFor(t, 10*time.Second, "the topic on every follower", func() bool { return nextOffset(fc, "t") == 1 })
	}
	for i := range 200 {
		want := uint64(i%2 + 0) // 0, 1, 0, 1: every commit changes the value a follower holds
		is.NoErr(lc.CommitOffset(ctx, "g", "t", want))
		got, ok, err := fcs[i%len(fcs)].FetchOffset(ctx, "g", "t")
		is.NoErr(err)
		is.True(ok)
		if got != want {
			t.Fatalf("commit %d: a follower answered offset %d after the leader acknowledged %d", i, got, want)
		}
	}
}

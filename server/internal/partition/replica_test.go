package partition

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

// checkDense checks that every running replica serves exactly want, at offsets 0..len(want)-1.
func checkDense(t *testing.T, c *testCluster, want []string) {
	t.Helper()
	c.waitApplied(uint64(len(want)))
	for _, r := range c.running() {
		got := readAll(t, r)
		if len(got) != len(want) {
			t.Fatalf("%s serves %d records, want %d", r.cfg.LocalID, len(got), len(want))
		}
		for i, rec := range got {
			if rec.Offset != uint64(i) || string(rec.Data) != want[i] {
				t.Fatalf("%s: record %d is %d:%q, want %q", r.cfg.LocalID, i, rec.Offset, rec.Data, want[i])
			}
		}
		if v := r.Stats().SequenceViolations; v != 0 {
			t.Fatalf("%s counted %d sequence violations", r.cfg.LocalID, v)
		}
	}
}

func TestOffsetsAreDenseAcrossLeaderChangesAndConfigurationEntries(t *testing.T) {
	is := is.New(t)
	c := newTestCluster(t, 3, nil)
	var want []string
	produce := func(prefix string, n int) {
		recs := records(prefix, n)
		res := c.produce(Batch{Records: recs})
		is.Equal(res.BaseOffset, uint64(len(want)))
		for _, r := range recs {
			want = append(want, string(r))
		}
	}
	produce("a", 3)
	produce("b", 1)
	leader := c.leader()
	is.NoErr(leader.TransferLeadership("", ""))
	produce("c", 5) // after the new leader's no-op
	checkDense(t, c, want)

	// A fourth replica, added as a voter: a configuration entry in the log, and a replica that
	// gets every entry from the leader.
	r3 := raft.ServerID("r3")
	c.ids = append(c.ids, r3)
	c.start(r3)
	is.NoErr(c.leader().AddVoter(context.Background(), r3, addrOf(r3)))
	produce("d", 2)
	next := c.leader()
	to := c.followers(next)[0]
	is.NoErr(next.TransferLeadership(to.cfg.LocalID, addrOf(to.cfg.LocalID)))
	produce("e", 4)
	checkDense(t, c, want)

	servers, err := c.replica(r3).Configuration()
	is.NoErr(err)
	is.Equal(len(servers), 4)
	st := c.leader().Stats()
	// Raft's own entries are in the log: more entries than batches.
	is.True(st.LastIndex > 5)
	is.Equal(st.Next, uint64(len(want)))
	is.Equal(st.Lowest, uint64(0))
}

func TestRetriesOfTheLastBatchGetItsOffsetAndAreNotWrittenAgain(t *testing.T) {
	is := is.New(t)
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	ctx := context.Background()
	first, err := leader.Produce(ctx, Batch{ProducerID: 7, Sequence: 10, Records: records("a", 2)})
	is.NoErr(err)
	is.Equal(first, Result{BaseOffset: 0})
	again, err := leader.Produce(ctx, Batch{ProducerID: 7, Sequence: 10, Records: records("a", 2)})
	is.NoErr(err)
	is.Equal(again, Result{BaseOffset: 0, Duplicate: true})

	// A retry while the batch is in flight: the followers store nothing until the gate opens, so
	// the batch cannot commit.
	tr := c.trans[leader.cfg.LocalID]
	for _, f := range c.followers(leader) {
		tr.set(addrOf(f.cfg.LocalID), gateBlock)
	}
	stored := leader.raft.LastIndex()
	done := make(chan Result, 1)
	go func() {
		res, err := leader.Produce(ctx, Batch{ProducerID: 7, Sequence: 11, Records: records("b", 3)})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	waitFor(t, 5*time.Second, "the batch to be in flight, in the leader's log", func() bool {
		leader.proposeMu.Lock()
		defer leader.proposeMu.Unlock()
		return leader.pending[7] != nil && leader.raft.LastIndex() > stored
	})
	last := leader.raft.LastIndex()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = leader.Produce(short, Batch{ProducerID: 7, Sequence: 11, Records: records("b", 3)})
	cancel()
	is.True(errors.Is(err, context.DeadlineExceeded)) // it waited for the batch in flight
	is.Equal(leader.raft.LastIndex(), last)           // and proposed nothing
	retried := make(chan Result, 1)
	go func() {
		res, err := leader.Produce(ctx, Batch{ProducerID: 7, Sequence: 11, Records: records("b", 3)})
		if err != nil {
			t.Error(err)
		}
		retried <- res
	}()
	for _, f := range c.followers(leader) {
		tr.set(addrOf(f.cfg.LocalID), gateOpen)
	}
	is.Equal(<-done, Result{BaseOffset: 2})
	is.Equal(<-retried, Result{BaseOffset: 2, Duplicate: true})
	checkDense(t, c, []string{"a-0", "a-1", "b-0", "b-1", "b-2"})
}

func TestOutOfSequenceBatchesAreRefusedAndNotProposed(t *testing.T) {
	is := is.New(t)
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	ctx := context.Background()
	_, err := leader.Produce(ctx, Batch{ProducerID: 3, Sequence: 5, Records: records("a", 1)})
	is.NoErr(err)
	_, err = leader.Produce(ctx, Batch{ProducerID: 3, Sequence: 6, Records: records("b", 1)})
	is.NoErr(err)
	last := leader.raft.LastIndex()
	for _, seq := range []uint64{4, 8, 0} {
		_, err = leader.Produce(ctx, Batch{ProducerID: 3, Sequence: seq, Records: records("x", 1)})
		is.True(errors.Is(err, ErrSequence))
	}
	is.Equal(leader.raft.LastIndex(), last)
	// A producer of its own, and one without deduplication, are not affected.
	_, err = leader.Produce(ctx, Batch{ProducerID: 4, Sequence: 8, Records: records("c", 1)})
	is.NoErr(err)
	_, err = leader.Produce(ctx, Batch{Records: records("d", 1)})
	is.NoErr(err)
	checkDense(t, c, []string{"a-0", "b-0", "c-0", "d-0"})

	_, err = c.followers(leader)[0].Produce(ctx, Batch{Records: records("e", 1)})
	var nl *NotLeaderError
	is.True(errors.As(err, &nl))
	is.Equal(nl.Leader, leader.cfg.LocalID)
	is.Equal(nl.LeaderAddr, addrOf(leader.cfg.LocalID))
	is.True(errors.Is(err, raft.ErrNotLeader))
	_, err = leader.Produce(ctx, Batch{})
	is.True(errors.Is(err, ErrEmptyBatch))
}

func TestLeadershipTransfersInAStreamOfRetriedProducesLoseAndDuplicateNothing(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	const producers = 4
	var mu sync.Mutex
	acked := map[string]uint64{} // record -> offset acknowledged
	var ackedBatches atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				recs := records(fmt.Sprintf("p%d-s%d", p, seq), 3)
				res, err := c.tryProduce(Batch{ProducerID: uint64(p + 1), Sequence: uint64(seq), Records: recs})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, r := range recs {
					acked[string(r)] = res.BaseOffset + uint64(i)
				}
				mu.Unlock()
				ackedBatches.Add(1)
			}
		})
	}
	// Three transfers, each once the leader before it has taken produces: the stream runs on
	// through every change of leader.
	for transfers := 0; transfers < 3 && !t.Failed(); {
		from := ackedBatches.Load()
		waitFor(t, 20*time.Second, "produces under the current leader", func() bool { return ackedBatches.Load() >= from+20 || t.Failed() })
		if err := c.leader().TransferLeadership("", ""); err == nil {
			transfers++
		}
	}
	from := ackedBatches.Load()
	waitFor(t, 20*time.Second, "produces after the last transfer", func() bool { return ackedBatches.Load() >= from+20 || t.Failed() })
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	total := len(acked)
	if int64(total) != 3*ackedBatches.Load() {
		t.Fatalf("%d records acknowledged in %d batches of 3", total, ackedBatches.Load())
	}
	c.waitApplied(uint64(total))
	for _, r := range c.running() {
		got := readAll(t, r)
		if len(got) != total {
			t.Fatalf("%s holds %d records, want %d: something was lost or written twice", r.cfg.LocalID, len(got), total)
		}
		for _, rec := range got {
			off, ok := acked[string(rec.Data)]
			if !ok || off != rec.Offset {
				t.Fatalf("%s: record %q at offset %d was acknowledged at %d (%v)", r.cfg.LocalID, rec.Data, rec.Offset, off, ok)
			}
		}
		if v := r.Stats().SequenceViolations; v != 0 {
			t.Fatalf("%s counted %d sequence violations", r.cfg.LocalID, v)
		}
	}
}

func TestFollowersServeOnlyCommittedRecords(t *testing.T) {
	is := is.New(t)
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	ctx := context.Background()
	_, err := leader.Produce(ctx, Batch{Records: records("a", 2)})
	is.NoErr(err)
	c.waitApplied(2)
	fs := c.followers(leader)
	holder, other := fs[0], fs[1]
	// holder stores the next batch but the leader never hears so; other never gets it: no quorum.
	tr := c.trans[leader.cfg.LocalID]
	tr.set(addrOf(holder.cfg.LocalID), gateHoldReply)
	tr.set(addrOf(other.cfg.LocalID), gateBlock)
	waited := make(chan error, 1)
	go func() { waited <- holder.Wait(ctx, 2) }()
	produced := make(chan error, 1)
	go func() {
		_, err := leader.Produce(ctx, Batch{Records: records("b", 1)})
		produced <- err
	}()
	waitFor(t, 5*time.Second, "the follower to store the batch", func() bool { return holder.logs.NextOffset() == 3 })
	lowest, next := holder.Offsets()
	is.Equal([2]uint64{lowest, next}, [2]uint64{0, 2})
	_, err = holder.Read(2)
	var oe *OffsetRangeError
	is.True(errors.As(err, &oe))
	is.Equal(*oe, OffsetRangeError{Offset: 2, Lowest: 0, Next: 2})
	recs, err := holder.ReadBatch(0, 10, 0)
	is.NoErr(err)
	is.Equal(len(recs), 2) // stops at the committed next offset
	select {
	case err := <-waited:
		t.Fatalf("Wait returned before the commit: %v", err)
	default:
	}

	tr.set(addrOf(holder.cfg.LocalID), gateOpen)
	tr.set(addrOf(other.cfg.LocalID), gateOpen)
	is.NoErr(<-produced)
	is.NoErr(<-waited)
	rec, err := holder.Read(2)
	is.NoErr(err)
	is.Equal(string(rec.Data), "b-0")

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	is.True(errors.Is(holder.Wait(short, 3), context.DeadlineExceeded))
}

func TestRestartsKeepOffsetsAndProducers(t *testing.T) {
	is := is.New(t)
	c := newTestCluster(t, 3, nil)
	ctx := context.Background()
	res := c.produce(Batch{ProducerID: 9, Sequence: 0, Records: records("a", 3)})
	is.Equal(res.BaseOffset, uint64(0))
	res = c.produce(Batch{ProducerID: 9, Sequence: 1, Records: records("b", 2)})
	is.Equal(res.BaseOffset, uint64(3))
	// A snapshot in the middle, so a restart restores it and replays the rest.
	is.NoErr(c.leader().raft.Snapshot().Error())
	res = c.produce(Batch{ProducerID: 9, Sequence: 2, Records: records("c", 1)})
	is.Equal(res.BaseOffset, uint64(5))
	want := []string{"a-0", "a-1", "a-2", "b-0", "b-1", "c-0"}
	c.waitApplied(6)

	// One replica, the leader.
	id := c.leader().cfg.LocalID
	c.stop(id)
	c.start(id)
	checkDense(t, c, want)

	// All of them.
	for _, id := range c.ids {
		c.stop(id)
	}
	for _, id := range c.ids {
		c.start(id)
	}
	leader := c.leader()
	checkDense(t, c, want)
	dup, err := leader.Produce(ctx, Batch{ProducerID: 9, Sequence: 2, Records: records("c", 1)})
	is.NoErr(err)
	is.Equal(dup, Result{BaseOffset: 5, Duplicate: true})
	_, err = leader.Produce(ctx, Batch{ProducerID: 9, Sequence: 1, Records: records("b", 2)})
	is.True(errors.Is(err, ErrSequence))
	res, err = leader.Produce(ctx, Batch{ProducerID: 9, Sequence: 3, Records: records("d", 1)})
	is.NoErr(err)
	is.Equal(res.BaseOffset, uint64(6))
	checkDense(t, c, append(want, "d-0"))
}

func TestOffsetForTime(t *testing.T) {
	is := is.New(t)
	c := newTestCluster(t, 1, nil)
	leader := c.leader()
	ctx := context.Background()
	var times []int64
	for i := range 6 {
		_, err := leader.Produce(ctx, Batch{Records: records(fmt.Sprint(i), 2)})
		is.NoErr(err)
		rec, err := leader.Read(uint64(2 * i))
		is.NoErr(err)
		times = append(times, rec.Time)
	}
	for i, tm := range times {
		off, err := leader.OffsetForTime(time.Unix(0, tm))
		is.NoErr(err)
		is.Equal(off, uint64(2*i))
	}
	off, err := leader.OffsetForTime(time.Unix(0, times[0]-1))
	is.NoErr(err)
	is.Equal(off, uint64(0))
	off, err = leader.OffsetForTime(time.Unix(0, times[5]+1))
	is.NoErr(err)
	is.Equal(off, uint64(12)) // past every record: the next offset
}

package partition

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/matryer/is"
)

func TestRetentionCutsBelowTheSnapshotAndABehindReplicaCatchesUpFromIt(t *testing.T) {
	is := is.New(t)
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.MaxSegmentBytes = 8 << 10
		cfg.Retention = Retention{Bytes: 16 << 10}
	})
	value := func(i int) []byte { return append(fmt.Appendf(nil, "%04d:", i), bytes.Repeat([]byte("v"), 500)...) }
	n := 0
	produce := func(count int) {
		for range count {
			c.produce(Batch{Records: [][]byte{value(n)}})
			n++
		}
	}
	produce(5)
	c.waitApplied(uint64(n))
	leader := c.leader()
	behind := c.followers(leader)[0]
	behindID := behind.cfg.LocalID
	c.stop(behindID)

	produce(100)
	leader = c.leader()
	before := leader.Stats()
	is.True(before.Segments > 4)
	is.Equal(before.LastSnapshotIndex, uint64(0))
	is.NoErr(leader.ApplyRetention())
	after := leader.Stats()
	first, err := leader.logs.FirstIndex()
	is.NoErr(err)
	t.Logf("retention: %d segments, %d bytes -> %d segments, %d bytes; first index %d, snapshot %d, lowest offset %d",
		before.Segments, before.Bytes, after.Segments, after.Bytes, first, after.LastSnapshotIndex, after.Lowest)
	is.True(after.Segments < before.Segments)
	is.True(after.Bytes <= 16<<10+8<<10) // the limit, give or take the segment that crossed it
	is.True(after.LastSnapshotIndex > 0)
	is.True(first <= after.LastSnapshotIndex+1) // never past the snapshot
	is.True(after.Lowest > 5)                   // past what the stopped replica holds
	is.Equal(after.Next, uint64(n))
	_, err = leader.Read(after.Lowest - 1)
	var oe *OffsetRangeError
	is.True(errors.As(err, &oe))
	is.Equal(*oe, OffsetRangeError{Offset: after.Lowest - 1, Lowest: after.Lowest, Next: after.Next})
	is.True(errors.Is(err, ErrOffsetOutOfRange))
	rec, err := leader.Read(after.Lowest)
	is.NoErr(err)
	is.Equal(rec.Data, value(int(after.Lowest)))
	metas, err := leader.snapshots.List()
	is.NoErr(err)
	is.True(metas[0].Size < 100) // the state machine, no records

	// The stopped replica needs entries the leader deleted: it installs the snapshot.
	behind = c.start(behindID)
	c.waitApplied(uint64(n))
	st := behind.Stats()
	is.True(st.LastSnapshotIndex > 0)
	is.Equal(st.Next, uint64(n))
	is.True(st.Lowest > 5)
	for off := st.Lowest; off < st.Next; off++ {
		rec, err := behind.Read(off)
		is.NoErr(err)
		is.Equal(rec.Data, value(int(off)))
	}
	_, err = behind.Read(4)
	is.True(errors.Is(err, ErrOffsetOutOfRange))

	// And it serves new records at the right offsets.
	produce(3)
	c.waitApplied(uint64(n))
	for off := uint64(n - 3); off < uint64(n); off++ {
		rec, err := behind.Read(off)
		is.NoErr(err)
		is.Equal(rec.Data, value(int(off)))
	}
	// Its state survives a restart too.
	c.stop(behindID)
	behind = c.start(behindID)
	c.waitApplied(uint64(n))
	lowest, next := behind.Offsets()
	is.Equal([2]uint64{lowest, next}, [2]uint64{st.Lowest, uint64(n)})
	for _, r := range c.running() {
		is.Equal(r.Stats().SequenceViolations, uint64(0))
	}
	ctx := context.Background()
	is.NoErr(c.leader().Barrier(ctx))
}

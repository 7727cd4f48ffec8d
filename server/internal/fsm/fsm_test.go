package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/internal/codec"
	"github.com/dislog/dislog/server/internal/topics"
	"github.com/dislog/dislog/storelog"
	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

// discardSink is a raft.SnapshotSink that keeps nothing: the tests need Persist's effect on the
// data directory, not the snapshot.
type discardSink struct{}

func (discardSink) Write(b []byte) (int, error) { return len(b), nil }
func (discardSink) Close() error                { return nil }
func (discardSink) ID() string                  { return "test" }
func (discardSink) Cancel() error               { return nil }

func openFSM(t *testing.T, dir string) (*FSM, *topics.Registry) {
	t.Helper()
	f, reg, err := tryOpenFSM(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	return f, reg
}

// tryOpenFSM opens the topics and the FSM of dir and returns Open's error; on an error it has
// closed the topics, otherwise the caller closes them.
func tryOpenFSM(t *testing.T, dir string) (*FSM, *topics.Registry, error) {
	t.Helper()
	reg, err := topics.Open(filepath.Join(dir, "topics"), topics.Options{Log: storelog.Options{Sync: storelog.SyncNever}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(Config{Dir: dir, Topics: reg})
	if err != nil {
		reg.Close()
	}
	return f, reg, err
}

func produce(producer, seq uint64, values ...string) []byte {
	c := Command{Kind: KindProduce, Topic: "t", ProducerID: producer, Sequence: seq, Time: 1700000000000000000 + int64(seq)}
	for _, v := range values {
		c.Records = append(c.Records, codec.Append(nil, &dislogv1.Record{Value: []byte(v)}))
	}
	return AppendCommand(nil, &c)
}

func readAll(t *testing.T, reg *topics.Registry) []string {
	t.Helper()
	tp, err := reg.Get("t")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for off := tp.Log.LowestOffset(); off < tp.Log.NextOffset(); off++ {
		rec, err := tp.Log.Read(off)
		if err != nil {
			t.Fatal(err)
		}
		var r dislogv1.Record
		if err := codec.Decode(rec.Value, &r); err != nil {
			t.Fatal(err)
		}
		index, _ := codec.Index(rec.Value)
		got = append(got, fmt.Sprintf("%d@%d:%s", off, index, r.GetValue()))
	}
	return got
}

// TestReplayRestoresRecordsATopicLost is the power failure the FSM must survive: topic logs are
// not fsynced as they are appended, so after a crash a topic may have lost records of commands the
// producers' table had accepted. Raft replays its log from the last snapshot; every acknowledged
// record must be there again, once, at its offset, and the producers' table must still tell a
// retry from a new batch.
func TestReplayRestoresRecordsATopicLost(t *testing.T) {
	entries := [][]byte{
		AppendCommand(nil, &Command{Kind: KindCreateTopic, Topic: "t"}), // 1
		produce(7, 0, "a", "b"), // 2
		produce(7, 1, "c"),      // 3
		produce(7, 1, "c"),      // 4: a retry, which writes nothing
		produce(0, 0, "d"),      // 5: not idempotent
		produce(7, 2, "e", "f"), // 6
		produce(7, 5, "g"),      // 7: out of sequence, refused
		produce(7, 3, "h"),      // 8
		produce(7, 3, "h"),      // 9: after the replay, a retry
		produce(7, 4, "i"),      // 10: after the replay, a new batch
	}
	const crash = 8
	want := []string{"0@2:a", "1@2:b", "2@3:c", "3@5:d", "4@6:e", "5@6:f", "6@8:h"}
	apply := func(f *FSM, from, to int) []*Result {
		var logs []*raft.Log
		for i := from; i <= to; i++ {
			logs = append(logs, &raft.Log{Index: uint64(i), Type: raft.LogCommand, Data: entries[i-1]})
		}
		var rs []*Result
		for _, r := range f.ApplyBatch(logs) {
			rs = append(rs, r.(*Result))
		}
		return rs
	}
	for _, tc := range []struct {
		name string
		// snapshot is the index after which a snapshot is persisted (0: none), keep the number of
		// records the topic still holds after the crash: never fewer than the snapshot fsynced.
		snapshot, keep int
	}{
		{"a topic that lost every record is filled again", 0, 0},
		{"a topic that lost its last batch gets it again", 0, 6},
		{"a topic that lost a retried batch gets it once", 0, 2},
		{"a topic that lost what followed a snapshot gets it again", 3, 3},
		{"a topic that lost nothing after a snapshot is unchanged", 3, 7},
		{"a topic that lost part of a batch after a snapshot is completed", 6, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			dir := t.TempDir()
			f, reg := openFSM(t, dir)
			if tc.snapshot == 0 {
				apply(f, 1, crash)
			} else {
				apply(f, 1, tc.snapshot)
				snap, err := f.Snapshot()
				is.NoErr(err)
				is.NoErr(snap.Persist(discardSink{}))
				apply(f, tc.snapshot+1, crash)
			}
			is.Equal(readAll(t, reg), want)

			tp, err := reg.Get("t")
			is.NoErr(err)
			if tc.keep == 0 {
				is.NoErr(tp.Log.Reset(0))
			} else {
				is.NoErr(tp.Log.TruncateAfter(uint64(tc.keep - 1)))
			}
			is.NoErr(reg.Close())

			f, reg = openFSM(t, dir)
			defer reg.Close()
			rs := apply(f, 1, crash)
			is.Equal(readAll(t, reg), want)
			if tc.snapshot < 4 {
				is.True(rs[3].Duplicate)
				is.Equal(rs[3].BaseOffset, uint64(2))
			}
			is.True(errors.Is(rs[6].Err, ErrSequence))

			// The table came through the replay: the last batch again is a retry, the next is new.
			rs = apply(f, crash+1, len(entries))
			is.True(rs[0].Duplicate)
			is.Equal(rs[0].BaseOffset, uint64(6))
			is.Equal(rs[1].BaseOffset, uint64(7))
			is.Equal(readAll(t, reg), append(want, "7@10:i"))
		})
	}
}

// Retention may delete every record of a topic after a checkpoint; a replay must then neither write
// those records again nor give later batches other offsets. (Reading the Raft index of the topic's
// last record, as the FSM once did, finds no record and appends the whole replay again.)
func TestReplayAfterRetentionEmptiedATopicWritesNothingAgain(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	f, reg := openFSM(t, dir)
	var logs []*raft.Log
	for i, e := range [][]byte{
		AppendCommand(nil, &Command{Kind: KindCreateTopic, Topic: "t"}),
		produce(7, 0, "a", "b"),
		produce(7, 1, "c"),
	} {
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: e})
	}
	f.ApplyBatch(logs[:1])
	snap, err := f.Snapshot()
	is.NoErr(err)
	is.NoErr(snap.Persist(discardSink{})) // the checkpoint: the topic exists, empty
	f.ApplyBatch(logs[1:])
	is.Equal(readAll(t, reg), []string{"0@2:a", "1@2:b", "2@3:c"})

	tp, err := reg.Get("t")
	is.NoErr(err)
	is.NoErr(tp.Log.Sync())
	is.NoErr(tp.Log.Reset(3)) // retention deleted every record: the topic is [3, 3)
	is.NoErr(reg.Close())

	f, reg = openFSM(t, dir)
	defer reg.Close()
	rs := f.ApplyBatch(logs)
	is.Equal(rs[1].(*Result).BaseOffset, uint64(0))
	is.Equal(rs[2].(*Result).BaseOffset, uint64(2))
	is.Equal(readAll(t, reg), nil) // nothing written again
	next := f.ApplyBatch([]*raft.Log{{Index: 4, Type: raft.LogCommand, Data: produce(7, 2, "d")}})
	is.Equal(next[0].(*Result).BaseOffset, uint64(3))
	is.Equal(readAll(t, reg), []string{"3@4:d"})
}

// A checkpoint promises that the topics hold what it names; a topic found shorter lost fsynced
// records, and the FSM refuses to start rather than hand out its offsets again.
func TestATopicShorterThanItsCheckpointIsReported(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	f, reg := openFSM(t, dir)
	f.ApplyBatch([]*raft.Log{
		{Index: 1, Type: raft.LogCommand, Data: AppendCommand(nil, &Command{Kind: KindCreateTopic, Topic: "t"})},
		{Index: 2, Type: raft.LogCommand, Data: produce(7, 0, "a", "b")},
	})
	is.NoErr(f.Checkpoint())
	tp, err := reg.Get("t")
	is.NoErr(err)
	is.NoErr(tp.Log.TruncateAfter(0))
	is.NoErr(reg.Close())

	_, _, err = tryOpenFSM(t, dir)
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), `topic "t" ends at offset 1, before the 2 of the checkpoint`))
}

// The metadata file is a checkpoint a restart trusts: a bit flipped anywhere in it, or a file cut
// short, must stop the FSM with an error rather than be read as other topics or offsets; a
// temporary file that a crash left beside an intact one changes nothing.
func TestADamagedMetadataFileIsRefused(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	f, reg := openFSM(t, dir)
	f.ApplyBatch([]*raft.Log{
		{Index: 1, Type: raft.LogCommand, Data: AppendCommand(nil, &Command{Kind: KindCreateTopic, Topic: "t"})},
		{Index: 2, Type: raft.LogCommand, Data: produce(7, 0, "a", "b")},
		{Index: 3, Type: raft.LogCommand, Data: AppendCommand(nil, &Command{Kind: KindCommitOffset, Topic: "t", Group: "g", Offset: 1})},
	})
	is.NoErr(f.Checkpoint())
	is.NoErr(reg.Close())
	path := filepath.Join(dir, stateFileName)
	good, err := os.ReadFile(path)
	is.NoErr(err)

	open := func() error {
		_, reg, err := tryOpenFSM(t, dir)
		if err == nil {
			reg.Close()
		}
		return err
	}
	for i := range len(good) * 8 {
		bad := bytes.Clone(good)
		bad[i/8] ^= 1 << (i % 8)
		is.NoErr(os.WriteFile(path, bad, 0o644))
		if err := open(); !errors.Is(err, ErrMalformedState) {
			t.Fatalf("bit %d of byte %d flipped: Open says %v, want ErrMalformedState", i%8, i/8, err)
		}
	}
	for n := range len(good) {
		is.NoErr(os.WriteFile(path, good[:n], 0o644))
		if err := open(); !errors.Is(err, ErrMalformedState) {
			t.Fatalf("cut to %d of %d bytes: Open says %v, want ErrMalformedState", n, len(good), err)
		}
	}

	is.NoErr(os.WriteFile(path, good, 0o644))
	is.NoErr(os.WriteFile(path+".tmp", good[:len(good)/2], 0o644)) // a rename the crash prevented
	is.NoErr(open())
}

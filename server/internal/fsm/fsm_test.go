package fsm

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

// applier applies commands to an FSM at increasing indexes.
type applier struct {
	f     *FSM
	index uint64
}

func (a *applier) apply(c Command) error {
	a.index++
	return a.f.Apply(&raft.Log{Index: a.index, Type: raft.LogCommand, Data: AppendCommand(nil, &c)}).(*Result).Err
}

func createCommand(topic string, replicas ...[]string) Command {
	return Command{Kind: KindCreateTopic, Topic: topic, ReplicationFactor: len(replicas[0]), Replicas: replicas}
}

func TestTopicsPartitionsAndOffsets(t *testing.T) {
	is := is.New(t)
	a := &applier{f: New(Config{})}
	_, changed := a.f.Watch()

	is.NoErr(a.apply(createCommand("t", []string{"a", "b", "c"}, []string{"b", "c", "a"})))
	select {
	case <-changed:
	default:
		t.Fatal("creating a topic did not signal a change")
	}
	ts, ok := a.f.Topic("t")
	is.True(ok)
	is.Equal(ts.Partitions(), 2)
	is.Equal(ts.Created, uint64(1))
	is.Equal(ts.Replicas[1], []string{"b", "c", "a"})

	err := a.apply(createCommand("t", []string{"a"}))
	is.True(errors.Is(err, ErrTopicExists))
	is.Equal(a.f.Applied(), uint64(2))

	is.NoErr(a.apply(Command{Kind: KindCommitOffset, Topic: "t", Group: "g", Partition: 1, Offset: 5}))
	off, ok := a.f.Offset("g", "t", 1)
	is.True(ok)
	is.Equal(off, uint64(5))
	_, ok = a.f.Offset("g", "t", 0)
	is.True(!ok) // offsets are per partition

	err = a.apply(Command{Kind: KindCommitOffset, Topic: "t", Group: "g", Partition: 2, Offset: 5})
	is.True(errors.Is(err, ErrPartitionNotFound))
	err = a.apply(Command{Kind: KindCommitOffset, Topic: "nope", Group: "g", Offset: 5})
	is.True(errors.Is(err, ErrTopicNotFound))

	_, changed = a.f.Watch()
	is.NoErr(a.apply(Command{Kind: KindDeleteTopic, Topic: "t"}))
	<-changed
	_, ok = a.f.Offset("g", "t", 1)
	is.True(!ok) // a deleted topic's offsets go with it
	is.Equal(len(a.f.Topics()), 0)
}

func TestAnAssignmentReplacesAPartitionsReplicas(t *testing.T) {
	is := is.New(t)
	a := &applier{f: New(Config{})}
	is.NoErr(a.apply(createCommand("t", []string{"a", "b", "c"}, []string{"b", "c", "a"})))
	_, changed := a.f.Watch()
	is.NoErr(a.apply(Command{Kind: KindAssign, Topic: "t", Partition: 1, Replicas: [][]string{{"b", "c", "d"}}}))
	<-changed
	ts, _ := a.f.Topic("t")
	is.Equal(ts.Replicas, [][]string{{"a", "b", "c"}, {"b", "c", "d"}})
	is.Equal(ts.Assigned, []uint64{1, 2}) // partition 0 keeps its creation's index
	err := a.apply(Command{Kind: KindAssign, Topic: "t", Partition: 2, Replicas: [][]string{{"a"}}})
	is.True(errors.Is(err, ErrPartitionNotFound))
	err = a.apply(Command{Kind: KindAssign, Topic: "t", Partition: 0, Replicas: [][]string{{}}})
	is.True(err != nil) // a partition needs a replica
	ts, _ = a.f.Topic("t")
	is.Equal(ts.Replicas[0], []string{"a", "b", "c"})
}

func TestACreationOfABadShapeIsRefused(t *testing.T) {
	is := is.New(t)
	a := &applier{f: New(Config{})}
	err := a.apply(Command{Kind: KindCreateTopic, Topic: "t", ReplicationFactor: 1, Replicas: [][]string{{"a", "a"}}})
	is.True(err != nil) // the same server twice
	is.Equal(len(a.f.Topics()), 0)
}

// nopSink is a raft.SnapshotSink over a buffer.
type nopSink struct{ bytes.Buffer }

func (*nopSink) ID() string    { return "test" }
func (*nopSink) Cancel() error { return nil }
func (*nopSink) Close() error  { return nil }

func TestASnapshotRestoresTheWholeState(t *testing.T) {
	is := is.New(t)
	a := &applier{f: New(Config{})}
	is.NoErr(a.apply(createCommand("t", []string{"a"}, []string{"a"}, []string{"a"})))
	is.NoErr(a.apply(createCommand("u", []string{"a", "b", "c"})))
	is.NoErr(a.apply(Command{Kind: KindCommitOffset, Topic: "t", Group: "g", Partition: 2, Offset: 9}))
	snap, err := a.f.Snapshot()
	is.NoErr(err)
	var sink nopSink
	is.NoErr(snap.Persist(&sink))

	other := New(Config{})
	_, changed := other.Watch()
	is.NoErr(other.Restore(io.NopCloser(&sink)))
	<-changed
	is.Equal(other.Applied(), uint64(3))
	is.Equal(other.Topics(), []string{"t", "u"})
	off, ok := other.Offset("g", "t", 2)
	is.True(ok)
	is.Equal(off, uint64(9))
	u, _ := other.Topic("u")
	is.Equal(u.Replicas, [][]string{{"a", "b", "c"}})
}

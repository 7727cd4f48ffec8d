package fsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/matryer/is"
)

func TestCommandsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Command
	}{
		{"a topic creation carries its retention, replication and replicas", Command{
			Kind: KindCreateTopic, Topic: "t", RetentionBytes: 1 << 30, RetentionAge: 3600e9,
			ReplicationFactor: 3, Replicas: [][]string{{"a", "b", "c"}, {"b", "c", "a"}},
		}},
		{"a topic deletion is its name", Command{Kind: KindDeleteTopic, Topic: "t"}},
		{"an offset commit carries its group and partition", Command{Kind: KindCommitOffset, Topic: "t", Group: "g", Partition: 7, Offset: 12}},
		{"an assignment carries its partition and replicas", Command{Kind: KindAssign, Topic: "t", Partition: 3, Replicas: [][]string{{"c", "a", "d"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			got, err := DecodeCommand(AppendCommand(nil, &tc.c))
			is.NoErr(err)
			is.Equal(got, tc.c)
		})
	}
}

func TestMalformedCommandsAreRefused(t *testing.T) {
	for _, b := range [][]byte{
		nil, {2}, {1, 3, 1, 't'}, // too short; version 1 (layout 1)
		{2, 9, 0},                             // unknown kind
		{2, 1, 1, 't', 0, 0},                  // a produce: no longer a controller command
		{2, 3, 1, 't', 0},                     // bytes after a deletion
		{2, 3, 1, 0xff},                       // a topic that is not UTF-8
		{2, 2, 1, 't', 0, 0, 1, 0},            // zero partitions
		{2, 2, 1, 't', 0, 0, 0, 1, 0},         // replication factor 0
		{2, 2, 1, 't', 0, 0, 1, 1, 50},        // 50 replicas in no bytes
		{2, 4, 1, 't', 1, 'g', 0x80, 0x08, 0}, // partition 1024
	} {
		_, err := DecodeCommand(b)
		if !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("DecodeCommand(%v) = %v, want ErrMalformedCommand", b, err)
		}
	}
}

// FuzzDecodeCommand feeds DecodeCommand arbitrary bytes, as a corrupt or hostile Raft entry would
// be: it must not panic or allocate beyond its input, and a command it accepts encodes to bytes that
// decode to the same command.
func FuzzDecodeCommand(f *testing.F) {
	f.Add(AppendCommand(nil, &Command{Kind: KindCreateTopic, Topic: "orders", RetentionBytes: 10, ReplicationFactor: 3, Replicas: [][]string{{"a", "b", "c"}}}))
	f.Add(AppendCommand(nil, &Command{Kind: KindDeleteTopic, Topic: "orders"}))
	f.Add(AppendCommand(nil, &Command{Kind: KindCommitOffset, Topic: "t", Group: "g", Partition: 2, Offset: 3}))
	f.Add(AppendCommand(nil, &Command{Kind: KindAssign, Topic: "t", Partition: 1, Replicas: [][]string{{"b", "c"}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedCommand) {
				t.Fatalf("error %v does not wrap ErrMalformedCommand", err)
			}
			return
		}
		n := 0
		for _, rs := range c.Replicas {
			n += len(rs)
		}
		if len(c.Replicas) > len(b) || n > len(b) {
			t.Fatalf("%d partitions, %d replicas from %d bytes", len(c.Replicas), n, len(b))
		}
		again := AppendCommand(nil, &c)
		c2, err := DecodeCommand(again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(AppendCommand(nil, &c2), again) {
			t.Fatalf("round trip changed the command")
		}
	})
}

// FuzzDecodeState feeds DecodeState arbitrary bytes, as a corrupt snapshot would be: it must not
// panic, and a state it accepts is internally consistent.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"version":3,"index":9,"topics":{"t":{"created":3,"replication_factor":1,"replicas":[["a"],["a"]],"assigned":[3,7]}},"offsets":{"g":{"t":{"1":2}}}}`))
	f.Add([]byte(`{"version":3,"topics":{}}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeState(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedState) {
				t.Fatalf("error %v does not wrap ErrMalformedState", err)
			}
			return
		}
		for name, ts := range s.Topics {
			if err := checkTopic(ts); err != nil {
				t.Fatalf("topic %q accepted: %v", name, err)
			}
		}
		for g, offs := range s.Offsets {
			for topic, parts := range offs {
				for p := range parts {
					if int(p) >= s.Topics[topic].Partitions() {
						t.Fatalf("group %q: offset on partition %d of %q accepted", g, p, topic)
					}
				}
			}
		}
	})
}

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
		{"a produce carries its records, time and producer", Command{Kind: KindProduce, Topic: "t", ProducerID: 7, Sequence: 3, Time: 1700000000000000000, Records: [][]byte{{1, 0, 0, 'a'}, {1, 0, 0}}}},
		{"a topic creation carries its retention", Command{Kind: KindCreateTopic, Topic: "t", RetentionBytes: 1 << 30, RetentionAge: 3600e9}},
		{"a topic deletion is its name", Command{Kind: KindDeleteTopic, Topic: "t"}},
		{"an offset commit carries its group", Command{Kind: KindCommitOffset, Topic: "t", Group: "g", Offset: 12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			b := AppendCommand(nil, &tc.c)
			is.True(len(b) <= CommandSize(&tc.c))
			got, err := DecodeCommand(b)
			is.NoErr(err)
			is.Equal(got, tc.c)
		})
	}
}

func TestMalformedCommandsAreRefused(t *testing.T) {
	for _, b := range [][]byte{nil, {1}, {2, 1, 0}, {1, 9, 0}, {1, 1, 1, 't', 0, 0, 0, 0xff, 0xff, 0x03}, {1, 3, 1, 't', 0}, {1, 3, 1, 0xff}} {
		_, err := DecodeCommand(b)
		if !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("DecodeCommand(%v) = %v, want ErrMalformedCommand", b, err)
		}
	}
}

// FuzzDecodeCommand feeds DecodeCommand arbitrary bytes, as a corrupt or hostile Raft entry would
// be: it must not panic or allocate beyond its input, and a command it accepts encodes to the same
// bytes.
func FuzzDecodeCommand(f *testing.F) {
	f.Add(AppendCommand(nil, &Command{Kind: KindProduce, Topic: "t", ProducerID: 1, Sequence: 1, Time: 5, Records: [][]byte{{1, 0, 0, 'v'}}}))
	f.Add(AppendCommand(nil, &Command{Kind: KindCreateTopic, Topic: "orders", RetentionBytes: 10}))
	f.Add(AppendCommand(nil, &Command{Kind: KindCommitOffset, Topic: "t", Group: "g", Offset: 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedCommand) {
				t.Fatalf("error %v does not wrap ErrMalformedCommand", err)
			}
			return
		}
		if len(c.Records) > len(b) {
			t.Fatalf("%d records from %d bytes", len(c.Records), len(b))
		}
		if again := AppendCommand(nil, &c); !bytes.Equal(again, b) {
			// Varints have one canonical form only when written by AppendCommand.
			c2, err := DecodeCommand(again)
			if err != nil {
				t.Fatalf("re-decode: %v", err)
			}
			if !bytes.Equal(AppendCommand(nil, &c2), again) {
				t.Fatalf("round trip changed the command")
			}
		}
	})
}

// FuzzDecodeState feeds DecodeState arbitrary bytes, as a corrupt metadata file or snapshot would
// be: it must not panic, and a state it accepts is internally consistent.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"version":2,"index":9,"topics":{"t":{"created":3,"next":4}},"offsets":{"g":{"t":2}},"producers":{"t":{"7":{"next":2,"base":0}}}}`))
	f.Add([]byte(`{"version":2,"topics":{}}`))
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
			if ts.Lowest > ts.Next {
				t.Fatalf("topic %q accepted with offsets [%d, %d)", name, ts.Lowest, ts.Next)
			}
		}
		for topic := range s.Producers {
			if _, ok := s.Topics[topic]; !ok {
				t.Fatalf("producers on unknown topic %q accepted", topic)
			}
		}
	})
}

// FuzzDecodeStateFile feeds DecodeStateFile arbitrary bytes, as a damaged metadata file would be:
// it must not panic, and what it accepts carries a matching checksum.
func FuzzDecodeStateFile(f *testing.F) {
	for _, s := range []State{
		{Version: stateVersion, Index: 9, Topics: map[string]TopicState{"t": {Created: 3, Next: 4}}, Offsets: map[string]map[string]uint64{"g": {"t": 2}}},
		newState(),
	} {
		b, err := encodeStateFile(&s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("{\"version\":2}\ncrc32c 00000000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeStateFile(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedState) {
				t.Fatalf("error %v does not wrap ErrMalformedState", err)
			}
			return
		}
		again, err := encodeStateFile(&s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeStateFile(again); err != nil {
			t.Fatalf("a state it accepted does not read back: %v", err)
		}
	})
}

package raftlog

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// update rewrites the golden files from today's encoder: go test -run Golden -update. Only for a
// deliberate format change, which also needs a new entry version and a decoder for the old one.
var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenEntries are the entries whose encodings testdata/golden/<name>.entry pins: every field, every
// raft.LogType this version writes, empty and non-empty data and extensions, varints of one and of
// many bytes, and the zero, a pre-1970 and a nanosecond AppendedAt.
var goldenEntries = []struct {
	name   string
	log    raft.Log
	commit uint64
}{
	{"command", raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("produce orders"),
		AppendedAt: time.Unix(1_767_225_600, 123_456_789)}, 0},
	{"command-with-extensions", raft.Log{Index: 300, Term: 7, Type: raft.LogCommand, Data: []byte{0, 1, 2, 0xff},
		Extensions: []byte("trace=abc"), AppendedAt: time.Unix(1_767_225_601, 0)}, 299},
	{"noop", raft.Log{Index: 1 << 40, Term: 1 << 33, Type: raft.LogNoop,
		AppendedAt: time.Unix(-1, 999_999_999)}, 1<<40 - 1},
	{"barrier-zero-time", raft.Log{Index: 2, Term: 2, Type: raft.LogBarrier}, 2},
	{"configuration", raft.Log{Index: 3, Term: 2, Type: raft.LogConfiguration,
		Data:       raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "a", Address: "127.0.0.1:7000"}}}),
		AppendedAt: time.Unix(1_767_225_602, 1)}, 1},
	{"max-values", raft.Log{Index: 1<<64 - 1, Term: 1<<64 - 1, Type: raft.LogType(255), Data: bytes.Repeat([]byte{0xaa}, 200),
		Extensions: bytes.Repeat([]byte{0x55}, 130), AppendedAt: time.Unix(1<<40, 999_999_999)}, 1<<64 - 1},
}

// Today's code decodes the golden encodings to the entries they were written from and encodes those
// entries to the same bytes: a change of the entry format cannot pass unnoticed.
func TestGoldenEntries(t *testing.T) {
	for _, g := range goldenEntries {
		t.Run(g.name, func(t *testing.T) {
			path := filepath.Join("testdata", "golden", g.name+".entry")
			enc := appendEntry(nil, &g.log, g.commit)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, enc, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -run Golden -update writes the golden files)", err)
			}
			var l raft.Log
			commit, err := decodeEntry(bytes.Clone(golden), g.log.Index, &l)
			if err != nil {
				t.Fatalf("decode %s: %v", path, err)
			}
			if l.Index != g.log.Index || l.Term != g.log.Term || l.Type != g.log.Type || commit != g.commit ||
				!bytes.Equal(l.Data, g.log.Data) || !bytes.Equal(l.Extensions, g.log.Extensions) ||
				!l.AppendedAt.Equal(g.log.AppendedAt) || l.AppendedAt.IsZero() != g.log.AppendedAt.IsZero() {
				t.Fatalf("%s decodes to %+v, commit %d; want %+v, commit %d", path, l, commit, g.log, g.commit)
			}
			if !bytes.Equal(enc, golden) {
				t.Fatalf("the encoding of %s changed:\n got %x\nwant %x", g.name, enc, golden)
			}
			if re := appendEntry(nil, &l, commit); !bytes.Equal(re, golden) {
				t.Fatalf("%s does not re-encode to its bytes:\n got %x\nwant %x", path, re, golden)
			}
		})
	}
}

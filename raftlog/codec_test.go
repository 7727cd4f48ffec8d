package raftlog

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

func TestDecodeEntryRejectsDamage(t *testing.T) {
	good := appendEntry(nil, &raft.Log{Index: 9, Term: 2, Type: raft.LogCommand, Data: []byte("data"), Extensions: []byte("ext"), AppendedAt: time.Unix(5, 6)}, 3)
	cases := []struct {
		name  string
		b     []byte
		index uint64
	}{
		{"an empty value", nil, 9},
		{"an unknown version", append([]byte{2}, good[1:]...), 9},
		{"an entry stored at another index", good, 10},
		{"a cut entry", good[:len(good)-3], 9},
		{"trailing bytes", append(bytes.Clone(good), 0), 9},
		{"a data length past the end", appendEntryFields(9, 2, 1, 0, []byte{0xff, 0x01}), 9},
		{"a log type past 255", appendEntryFields(9, 2, 256, 0, []byte{0, 0, 0, 0}), 9},
		{"a second with too many nanoseconds", appendEntryFields(9, 2, 1, 0, []byte{0, 0, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03}), 9},
		{"an overlong varint", append([]byte{entryVersion}, bytes.Repeat([]byte{0xff}, 11)...), 9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			l := raft.Log{Index: 77}
			_, err := decodeEntry(c.b, c.index, &l)
			is.True(errors.Is(err, ErrCorrupt))
			is.Equal(l.Index, uint64(77)) // l is left alone
		})
	}
}

// appendEntryFields hand-builds an entry: the version, four varint fields, then rest as it is.
func appendEntryFields(index, term, typ, commit uint64, rest []byte) []byte {
	b := []byte{entryVersion}
	for _, v := range []uint64{index, term, typ, commit} {
		b = appendUvarint(b, v)
	}
	return append(b, rest...)
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func TestEncodedSizeBoundsTheEncoding(t *testing.T) {
	is := is.New(t)
	l := &raft.Log{Index: 1<<64 - 1, Term: 1<<64 - 1, Type: 255, Data: []byte("d"), Extensions: []byte("e"), AppendedAt: time.Unix(-1<<62, 999_999_999)}
	is.True(len(appendEntry(nil, l, 1<<64-1)) <= encodedSize(l))
}

// FuzzDecodeLog feeds the entry decoder arbitrary bytes, as a damaged disk could: it must never
// panic, it must check the index, and whatever it accepts must survive a re-encoding unchanged.
func FuzzDecodeLog(f *testing.F) {
	f.Add(appendEntry(nil, &raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("x"), AppendedAt: time.Unix(1, 2)}, 1), uint64(1))
	f.Add(appendEntry(nil, &raft.Log{Index: 300, Term: 4, Type: raft.LogConfiguration, Extensions: []byte{1, 2}}, 299), uint64(300))
	f.Add([]byte{entryVersion, 0xff, 0xff}, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, index uint64) {
		var l raft.Log
		commit, err := decodeEntry(b, index, &l)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if l.Index != index {
			t.Fatalf("decoded index %d at index %d", l.Index, index)
		}
		again := appendEntry(nil, &l, commit)
		var l2 raft.Log
		commit2, err := decodeEntry(again, index, &l2)
		if err != nil || commit2 != commit || l2.Term != l.Term || l2.Type != l.Type ||
			!bytes.Equal(l2.Data, l.Data) || !bytes.Equal(l2.Extensions, l.Extensions) || !l2.AppendedAt.Equal(l.AppendedAt) {
			t.Fatalf("re-encoding %+v gives %+v, %v", l, l2, err)
		}
	})
}

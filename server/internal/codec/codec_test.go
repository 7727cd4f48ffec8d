package codec

import (
	"bytes"
	"errors"
	"testing"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  *dislogv1.Record
		enc  []byte
	}{
		{"a value alone is a version byte, two zero lengths and the value", &dislogv1.Record{Value: []byte("v")}, []byte{1, 0, 0, 'v'}},
		{"an empty record is three bytes", &dislogv1.Record{}, []byte{1, 0, 0}},
		{"a key comes before the headers", &dislogv1.Record{Key: []byte("k"), Value: []byte("v")}, []byte{1, 1, 'k', 0, 'v'}},
		{"headers keep their order and repeats", &dislogv1.Record{
			Headers: []*dislogv1.Header{{Key: "a", Value: []byte("1")}, {Key: "a"}, {Key: "é", Value: []byte("22")}},
			Value:   []byte("v"),
		}, []byte{1, 0, 3, 1, 'a', 1, '1', 1, 'a', 0, 2, 0xc3, 0xa9, 2, '2', '2', 'v'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			enc := Append(nil, tc.rec)
			is.Equal(enc, tc.enc)
			is.Equal(Size(tc.rec), len(enc))
			var got dislogv1.Record
			is.NoErr(Decode(enc, &got))
			is.True(proto.Equal(&got, tc.rec))
		})
	}
}

func TestDecodeRejectsMalformedRecords(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"an unknown version", []byte{3, 0, 0}},
		{"a version 2 record with a truncated raft index", []byte{2, 0x80}},
		{"a key longer than the record", []byte{1, 5, 'k'}},
		{"a truncated varint", []byte{1, 0x80}},
		{"more headers than bytes could hold", []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0}},
		{"a header value past the end", []byte{1, 0, 1, 1, 'a', 9}},
		{"a header key that is not UTF-8", []byte{1, 0, 1, 1, 0xff, 0}},
		{"no header count", []byte{1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			var rec dislogv1.Record
			err := Decode(tc.b, &rec)
			is.True(errors.Is(err, ErrMalformed))
			is.Equal(rec.Key, nil)
			is.Equal(rec.Headers, nil)
		})
	}
}

// FuzzDecode feeds Decode arbitrary bytes: it must never panic or allocate beyond its input, and a
// record it accepts must encode to bytes that decode to the same record.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{1, 0, 0, 'v'})
	f.Add([]byte{1, 1, 'k', 2, 1, 'a', 1, '1', 0, 0, 'v', 'a', 'l'})
	f.Add([]byte{1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{2, 0xac, 0x02, 1, 'k', 0, 'v'}) // version 2 (layout 1): refused
	f.Fuzz(func(t *testing.T, b []byte) {
		var rec dislogv1.Record
		err := Decode(b, &rec)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if n := len(rec.Key) + len(rec.Value); n > len(b) {
			t.Fatalf("decoded %d bytes of key and value from %d", n, len(b))
		}
		enc := Append(nil, &rec)
		if Size(&rec) != len(enc) {
			t.Fatalf("Size %d, encoding %d bytes", Size(&rec), len(enc))
		}
		var again dislogv1.Record
		if err := Decode(enc, &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !proto.Equal(&rec, &again) || !bytes.Equal(Append(nil, &again), enc) {
			t.Fatalf("round trip changed the record: %v then %v", &rec, &again)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	rec := &dislogv1.Record{Key: []byte("order-17"), Headers: []*dislogv1.Header{{Key: "trace", Value: []byte("abc")}}, Value: make([]byte, 1024)}
	enc := Append(nil, rec)
	b.SetBytes(int64(len(enc)))
	var got dislogv1.Record
	for b.Loop() {
		if err := Decode(enc, &got); err != nil {
			b.Fatal(err)
		}
	}
}

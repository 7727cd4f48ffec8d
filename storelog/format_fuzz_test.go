package storelog

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeFrame: any bytes either decode to a frame that re-encodes to the same bytes, or give
// ErrCorrupt; never a panic, never a value longer than the input.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(appendFrame(nil, 0, 1, []byte("hello")))
	f.Add(appendFrame(nil, 1<<40, -5, nil))
	f.Add(appendFrame(appendFrame(nil, 7, 8, []byte("a")), 8, 9, []byte("bc")))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, value, err := decodeFrame(b, 1<<20)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if len(value) != int(h.length) || len(value) > len(b) {
			t.Fatalf("value of %d bytes from a header saying %d", len(value), h.length)
		}
		again := appendFrame(nil, h.offset, h.time, value)
		if !bytes.Equal(again, b[:len(again)]) {
			t.Fatalf("frame does not re-encode to its bytes")
		}
	})
}

// FuzzDecodeMeta: any bytes decode to a meta that re-encodes to them, or to a clear error.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(meta{version: formatVersion, lowWatermark: 42}))
	f.Add(encodeMeta(meta{version: formatVersion, clean: true, storeSize: 100, activeBase: 9, activeCount: 3}))
	f.Add([]byte("DSLG\x02\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("error %v is neither ErrCorrupt nor ErrUnsupportedVersion", err)
			}
			return
		}
		if !bytes.Equal(encodeMeta(m), b) {
			t.Fatalf("meta does not re-encode to its bytes")
		}
	})
}

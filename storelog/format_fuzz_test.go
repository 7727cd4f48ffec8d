package storelog

import (
	"bytes"
	"errors"
	"testing"
)

const fuzzSeed = 0x5eed

// FuzzDecodeFrame: any bytes either decode to a frame that re-encodes to the same bytes, or give
// ErrCorrupt; never a panic, never a value longer than the input.
func FuzzDecodeFrame(f *testing.F) {
	seed := frameSeed(fuzzSeed)
	f.Add(appendFrame(nil, seed, 0, 1, 0, storeHeaderSize, []byte("hello")))
	f.Add(appendFrame(nil, seed, 1<<40, -5, 1<<63, 0, nil))
	f.Add(appendFrame(appendFrame(nil, seed, 7, 8, 3, 40, []byte("a")), seed, 8, 9, 3, 40, []byte("bc")))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, value, err := decodeFrame(b, seed, 1<<20)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if len(value) != int(h.length) || len(value) > len(b) {
			t.Fatalf("value of %d bytes from a header saying %d", len(value), h.length)
		}
		again := appendFrame(nil, seed, h.offset, h.time, h.key, h.synced, value)
		if !bytes.Equal(again, b[:len(again)]) {
			t.Fatalf("frame does not re-encode to its bytes")
		}
		if _, _, err := decodeFrame(b, frameSeed(fuzzSeed+1), 1<<20); err == nil {
			t.Fatalf("frame passes its checksum under another segment's id")
		}
	})
}

// FuzzDecodeStoreHeader: any bytes decode to a header that re-encodes to them, or to a clear error.
func FuzzDecodeStoreHeader(f *testing.F) {
	f.Add(encodeStoreHeader(storeHeader{base: 42, id: 7}))
	f.Add(make([]byte, storeHeaderSize))
	f.Add([]byte("DSLS\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeStoreHeader(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("error %v is neither ErrCorrupt nor ErrUnsupportedVersion", err)
			}
			return
		}
		if !bytes.Equal(encodeStoreHeader(h), b[:storeHeaderSize]) {
			t.Fatalf("store header does not re-encode to its bytes")
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

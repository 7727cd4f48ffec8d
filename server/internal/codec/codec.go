// Package codec turns a record (key, headers, value) into the bytes a partition's batch holds for
// it, and back. The partition gives each record its offset and append time; this is the rest.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/dislog/dislog/server/internal/wire"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
)

// The record format. It is part of the on-disk format of every topic: a change needs a new version
// byte, and Decode must go on reading every version written before.
//
//	+---------+------------+-----+--------------+----------------------------------------+-------+
//	| version | key length | key | header count | header count × (key length, key,       | value |
//	|         |            |     |              |                 value length, value)   |       |
//	| 1 byte  | uvarint    |     | uvarint      | uvarint, bytes, uvarint, bytes         | rest  |
//	+---------+------------+-----+--------------+----------------------------------------+-------+
//
// The value runs to the end of the entry, which storelog delimits and checksums. Header keys are
// UTF-8, as protobuf strings must be.
const (
	version1 = 1
	// minHeaderSize is the smallest encoded header: two zero lengths. It bounds the header count a
	// decoder believes before allocating.
	minHeaderSize = 2
)

// ErrMalformed is returned by Decode for bytes that are not a record of a version it knows.
var ErrMalformed = errors.New("codec: malformed record")

// MaxFraming is how many bytes of framing a stored record may add to its key, headers and value:
// the version, the lengths and the header count. A server's record limit is on the key, headers
// and value (Payload), so that a value of exactly the limit fits; its logs allow the limit plus
// MaxFraming. A record whose framing would take more (thousands of
// headers) is refused.
const MaxFraming = 4096

// Payload is the bytes of rec that its producer chose: key, header keys and values, and value.
func Payload(rec *dislogv1.Record) int {
	n := len(rec.GetKey()) + len(rec.GetValue())
	for _, h := range rec.GetHeaders() {
		n += len(h.GetKey()) + len(h.GetValue())
	}
	return n
}

// Size is the length of rec's encoding (version 1; version 2 adds the Raft index, a uvarint).
func Size(rec *dislogv1.Record) int {
	n := 1 + uvarintLen(len(rec.GetKey())) + len(rec.GetKey()) + uvarintLen(len(rec.GetHeaders()))
	for _, h := range rec.GetHeaders() {
		n += uvarintLen(len(h.GetKey())) + len(h.GetKey()) + uvarintLen(len(h.GetValue())) + len(h.GetValue())
	}
	return n + len(rec.GetValue())
}

// Append appends the encoding of rec's key, headers and value to dst. Offset and append time are not
// encoded: the log keeps them.
func Append(dst []byte, rec *dislogv1.Record) []byte {
	dst = append(dst, version1)
	dst = binary.AppendUvarint(dst, uint64(len(rec.GetKey())))
	dst = append(dst, rec.GetKey()...)
	dst = binary.AppendUvarint(dst, uint64(len(rec.GetHeaders())))
	for _, h := range rec.GetHeaders() {
		dst = binary.AppendUvarint(dst, uint64(len(h.GetKey())))
		dst = append(dst, h.GetKey()...)
		dst = binary.AppendUvarint(dst, uint64(len(h.GetValue())))
		dst = append(dst, h.GetValue()...)
	}
	return append(dst, rec.GetValue()...)
}

// body checks the version byte and returns what follows it.
func body(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if b[0] != version1 {
		return nil, fmt.Errorf("%w: unknown version %d", ErrMalformed, b[0])
	}
	return b[1:], nil
}

// Decode sets rec's key, headers and value from b, a record of version 1. The byte slices alias
// b. Nil key, header values and value stand for empty ones.
func Decode(b []byte, rec *dislogv1.Record) error {
	rest, err := body(b)
	if err != nil {
		return err
	}
	d := wire.Decoder{B: rest, Malformed: ErrMalformed}
	rec.Key = nilIfEmpty(d.Bytes("key"))
	count := d.Uvarint("header count")
	if d.Err == nil && count > uint64(len(d.B)/minHeaderSize) {
		d.Err = fmt.Errorf("%w: %d headers in %d bytes", ErrMalformed, count, len(d.B))
	}
	rec.Headers = nil
	if d.Err == nil && count > 0 {
		rec.Headers = make([]*dislogv1.Header, count)
		for i := range rec.Headers {
			key := nilIfEmpty(d.Bytes("header key"))
			value := nilIfEmpty(d.Bytes("header value"))
			if d.Err != nil {
				break
			}
			if !utf8.Valid(key) {
				d.Err = fmt.Errorf("%w: header %d key is not UTF-8", ErrMalformed, i)
				break
			}
			rec.Headers[i] = &dislogv1.Header{Key: string(key), Value: value}
		}
	}
	if d.Err != nil {
		rec.Key, rec.Headers = nil, nil
		return d.Err
	}
	rec.Value = d.B
	if len(rec.Value) == 0 {
		rec.Value = nil
	}
	return nil
}

func uvarintLen(n int) int {
	l := 1
	for x := uint64(n); x >= 0x80; x >>= 7 {
		l++
	}
	return l
}

// nilIfEmpty keeps the codec's convention that an absent key or header value decodes as nil.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Package wire reads the server's varint-framed binary formats (the stored record codec and the Raft
// command codec). A Decoder is a cursor whose first error sticks, so a format reads every field and
// checks for an error once at the end.
package wire

import (
	"encoding/binary"
	"fmt"
)

// Decoder reads fields from B. Every error it makes wraps Malformed.
type Decoder struct {
	B         []byte // the bytes not read yet
	Err       error  // the first error, if any; later reads return zero values
	Malformed error  // the sentinel of the format being read
}

// Failf records an error (wrapping Malformed) unless one is already recorded.
func (d *Decoder) Failf(format string, args ...any) {
	if d.Err == nil {
		d.Err = fmt.Errorf("%w: "+format, append([]any{d.Malformed}, args...)...)
	}
}

// Uvarint reads an unsigned varint; what names the field in the error.
func (d *Decoder) Uvarint(what string) uint64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.Failf("bad %s varint", what)
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint(what string) int64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.Failf("bad %s varint", what)
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Bytes reads a length-prefixed byte string. The result aliases B, with its capacity cut to its length
// so that appending to it never writes over the bytes after it. A length longer than what is left is
// an error, so a corrupt length never sizes an allocation.
func (d *Decoder) Bytes(what string) []byte {
	n := d.Uvarint(what + " length")
	if d.Err != nil {
		return nil
	}
	if n > uint64(len(d.B)) {
		d.Failf("%s of %d bytes, %d left", what, n, len(d.B))
		return nil
	}
	v := d.B[:n:n]
	d.B = d.B[n:]
	return v
}

package raftlog

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// The entry format is drawn and described in the package doc (doc.go, section "Entry format"). Every
// constant in this file is part of raftlog's on-disk format: changing one makes existing stores
// unreadable, so a change needs a new entryVersion and a decoder for the old one; the golden files in
// testdata/golden pin the bytes (codec_golden_test.go).
const (
	entryVersion = 1

	// maxEntryOverhead bounds the bytes an entry adds to its data and extensions: the version byte,
	// seven varints of at most binary.MaxVarintLen64 bytes each.
	maxEntryOverhead = 1 + 7*binary.MaxVarintLen64
)

// zeroTimeUnix is time.Time{}.Unix(): AppendedAt values equal to it with no nanoseconds decode to the
// zero time.Time, so that an unset AppendedAt round-trips exactly.
const zeroTimeUnix = -62135596800

// encodedSize is an upper bound on the encoded size of l.
func encodedSize(l *raft.Log) int {
	return maxEntryOverhead + len(l.Data) + len(l.Extensions)
}

// appendEntry appends the encoding of l, carrying commit, to dst.
func appendEntry(dst []byte, l *raft.Log, commit uint64) []byte {
	dst = append(dst, entryVersion)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = binary.AppendUvarint(dst, uint64(l.Type))
	dst = binary.AppendUvarint(dst, commit)
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	sec, nsec := int64(zeroTimeUnix), int64(0)
	if !l.AppendedAt.IsZero() {
		sec, nsec = l.AppendedAt.Unix(), int64(l.AppendedAt.Nanosecond())
	}
	dst = binary.AppendVarint(dst, sec)
	return binary.AppendUvarint(dst, uint64(nsec))
}

// entryDecoder walks an encoded entry. Its first error sticks; the fields read after it are zero.
type entryDecoder struct {
	b   []byte
	err error
}

func (d *entryDecoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad %s varint", ErrCorrupt, field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *entryDecoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad %s varint", ErrCorrupt, field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next length-prefixed field, aliasing the input; an empty field is nil.
func (d *entryDecoder) bytes(field, lengthField string) []byte {
	n := d.uvarint(lengthField)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: %s length %d exceeds the %d bytes left", ErrCorrupt, field, n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// decodeEntry decodes b, the value of the storelog record at offset index, into l, and returns the
// commit index it carries. Data and Extensions alias b, so that a read costs one allocation: the
// caller hands over a b that nothing else uses. Any damage, an index other than index included, is
// ErrCorrupt and leaves l untouched.
func decodeEntry(b []byte, index uint64, l *raft.Log) (commit uint64, err error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("%w: empty entry at index %d", ErrCorrupt, index)
	}
	if b[0] != entryVersion {
		return 0, fmt.Errorf("%w: entry at index %d has format version %d, this build reads %d", ErrCorrupt, index, b[0], entryVersion)
	}
	d := entryDecoder{b: b[1:]}
	got := d.uvarint("index")
	term := d.uvarint("term")
	typ := d.uvarint("type")
	commit = d.uvarint("commit")
	data := d.bytes("data", "data length")
	ext := d.bytes("extensions", "extensions length")
	sec := d.varint("appended-at seconds")
	nsec := d.uvarint("appended-at nanoseconds")
	switch {
	case d.err != nil:
		return 0, fmt.Errorf("entry at index %d: %w", index, d.err)
	case len(d.b) != 0:
		return 0, fmt.Errorf("%w: entry at index %d has %d trailing bytes", ErrCorrupt, index, len(d.b))
	case got != index:
		return 0, fmt.Errorf("%w: the entry read at index %d holds index %d", ErrCorrupt, index, got)
	case typ > 0xff:
		return 0, fmt.Errorf("%w: entry at index %d has log type %d", ErrCorrupt, index, typ)
	case nsec >= uint64(time.Second):
		return 0, fmt.Errorf("%w: entry at index %d has %d nanoseconds in its appended-at second", ErrCorrupt, index, nsec)
	}
	var appended time.Time
	if sec != zeroTimeUnix || nsec != 0 {
		appended = time.Unix(sec, int64(nsec))
	}
	*l = raft.Log{Index: got, Term: term, Type: raft.LogType(typ), Data: data, Extensions: ext, AppendedAt: appended}
	return commit, nil
}

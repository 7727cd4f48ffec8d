package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// The command format: the data of every Raft log entry a Dislog server applies. It is part of the
// Raft log's on-disk format and of the replication protocol: a change needs a new version byte, and
// DecodeCommand must go on reading every version written before.
//
//	+---------+------+---------------------+------------------------------------------------+
//	| version | kind | topic length, topic | body of the kind                               |
//	| 1 byte  | 1 B  | uvarint, bytes      |                                                |
//	+---------+------+---------------------+------------------------------------------------+
//
//	produce:       producer id (uvarint) | sequence (uvarint) | time (varint, Unix ns) |
//	               record count (uvarint) | count × (length uvarint, codec version 1 record)
//	create topic:  retention bytes (varint) | retention age (varint, ns)
//	delete topic:  nothing
//	commit offset: group length (uvarint), group | offset (uvarint)
const (
	commandVersion1 = 1
	// minRecordBytes is the smallest encoded record of a produce: a zero length. It bounds the
	// record count a decoder believes before allocating.
	minRecordBytes = 1
)

// Kind is what a command does.
type Kind byte

// The kinds of command. Their values are part of the command format.
const (
	KindProduce      Kind = 1
	KindCreateTopic  Kind = 2
	KindDeleteTopic  Kind = 3
	KindCommitOffset Kind = 4
)

// ErrMalformedCommand is returned by DecodeCommand for bytes that are not a command of a version it
// knows.
var ErrMalformedCommand = errors.New("fsm: malformed command")

// Command is one change to a server's topics.
type Command struct {
	Kind  Kind
	Topic string

	// Produce: the records (each a codec version 1 encoding), the time the leader stamps them with,
	// and, with a ProducerID other than 0, the batch's sequence number for deduplication.
	ProducerID uint64
	Sequence   uint64
	Time       int64
	Records    [][]byte

	// Create topic: the retention.
	RetentionBytes int64
	RetentionAge   int64

	// Commit offset: the group and its next offset.
	Group  string
	Offset uint64
}

// AppendCommand appends c's encoding to dst.
func AppendCommand(dst []byte, c *Command) []byte {
	dst = append(dst, commandVersion1, byte(c.Kind))
	dst = appendString(dst, c.Topic)
	switch c.Kind {
	case KindProduce:
		dst = binary.AppendUvarint(dst, c.ProducerID)
		dst = binary.AppendUvarint(dst, c.Sequence)
		dst = binary.AppendVarint(dst, c.Time)
		dst = binary.AppendUvarint(dst, uint64(len(c.Records)))
		for _, r := range c.Records {
			dst = binary.AppendUvarint(dst, uint64(len(r)))
			dst = append(dst, r...)
		}
	case KindCreateTopic:
		dst = binary.AppendVarint(dst, c.RetentionBytes)
		dst = binary.AppendVarint(dst, c.RetentionAge)
	case KindCommitOffset:
		dst = appendString(dst, c.Group)
		dst = binary.AppendUvarint(dst, c.Offset)
	}
	return dst
}

// CommandSize is an upper bound of the length of c's encoding, for sizing a buffer.
func CommandSize(c *Command) int {
	n := 2 + 2*binary.MaxVarintLen64 + len(c.Topic) + len(c.Group) + 4*binary.MaxVarintLen64
	for _, r := range c.Records {
		n += binary.MaxVarintLen64 + len(r)
	}
	return n
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeCommand decodes a command. Records alias b.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if len(b) < 2 {
		return c, fmt.Errorf("%w: %d bytes", ErrMalformedCommand, len(b))
	}
	if b[0] != commandVersion1 {
		return c, fmt.Errorf("%w: unknown version %d", ErrMalformedCommand, b[0])
	}
	c.Kind = Kind(b[1])
	d := decoder{b: b[2:]}
	c.Topic = d.string("topic")
	switch c.Kind {
	case KindProduce:
		c.ProducerID = d.uvarint("producer id")
		c.Sequence = d.uvarint("sequence")
		c.Time = d.varint("time")
		count := d.uvarint("record count")
		if d.err == nil && count > uint64(len(d.b)/minRecordBytes) {
			d.err = fmt.Errorf("%w: %d records in %d bytes", ErrMalformedCommand, count, len(d.b))
		}
		if d.err == nil {
			c.Records = make([][]byte, count)
			for i := range c.Records {
				c.Records[i] = d.bytes("record")
			}
		}
	case KindCreateTopic:
		c.RetentionBytes = d.varint("retention bytes")
		c.RetentionAge = d.varint("retention age")
	case KindDeleteTopic:
	case KindCommitOffset:
		c.Group = d.string("group")
		c.Offset = d.uvarint("offset")
	default:
		return Command{}, fmt.Errorf("%w: unknown kind %d", ErrMalformedCommand, c.Kind)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d bytes after the command", ErrMalformedCommand, len(d.b))
	}
	if d.err != nil {
		return Command{}, d.err
	}
	return c, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad %s varint", ErrMalformedCommand, what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad %s varint", ErrMalformedCommand, what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: %s of %d bytes, %d left", ErrMalformedCommand, what, n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(what string) string {
	b := d.bytes(what)
	if d.err == nil && !utf8.Valid(b) {
		d.err = fmt.Errorf("%w: %s is not UTF-8", ErrMalformedCommand, what)
	}
	return string(b)
}

package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/dislog/dislog/server/internal/wire"
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
	d := wire.Decoder{B: b[2:], Malformed: ErrMalformedCommand}
	c.Topic = decodeString(&d, "topic")
	switch c.Kind {
	case KindProduce:
		c.ProducerID = d.Uvarint("producer id")
		c.Sequence = d.Uvarint("sequence")
		c.Time = d.Varint("time")
		count := d.Uvarint("record count")
		if d.Err == nil && count > uint64(len(d.B)/minRecordBytes) {
			d.Err = fmt.Errorf("%w: %d records in %d bytes", ErrMalformedCommand, count, len(d.B))
		}
		if d.Err == nil {
			c.Records = make([][]byte, count)
			for i := range c.Records {
				c.Records[i] = d.Bytes("record")
			}
		}
	case KindCreateTopic:
		c.RetentionBytes = d.Varint("retention bytes")
		c.RetentionAge = d.Varint("retention age")
	case KindDeleteTopic:
	case KindCommitOffset:
		c.Group = decodeString(&d, "group")
		c.Offset = d.Uvarint("offset")
	default:
		return Command{}, fmt.Errorf("%w: unknown kind %d", ErrMalformedCommand, c.Kind)
	}
	if d.Err == nil && len(d.B) != 0 {
		d.Err = fmt.Errorf("%w: %d bytes after the command", ErrMalformedCommand, len(d.B))
	}
	if d.Err != nil {
		return Command{}, d.Err
	}
	return c, nil
}

// decodeString reads a length-prefixed UTF-8 string.
func decodeString(d *wire.Decoder, what string) string {
	b := d.Bytes(what)
	if d.Err == nil && !utf8.Valid(b) {
		d.Failf("%s is not UTF-8", what)
	}
	return string(b)
}

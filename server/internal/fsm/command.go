package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/dislog/dislog/server/internal/wire"
)

// The command format: the data of every entry of the controller's Raft log. It is part of the Raft
// log's on-disk format and of the replication protocol: a change needs a new version byte, and
// DecodeCommand must go on reading every version written since the data directory layout it belongs
// to (layout 2; see docs/ARCHITECTURE.md).
//
//	+---------+------+---------------------+------------------------------------------------+
//	| version | kind | topic length, topic | body of the kind                               |
//	| 1 byte  | 1 B  | uvarint, bytes      |                                                |
//	+---------+------+---------------------+------------------------------------------------+
//
//	create topic:  retention bytes (varint) | retention age (varint, ns) | replication factor (uvarint) |
//	               partition count (uvarint) | count × (replica count (uvarint) | replica ids (length, bytes))
//	delete topic:  nothing
//	commit offset: group length (uvarint), group | partition (uvarint) | offset (uvarint)
//	assign:        partition (uvarint) | replica count (uvarint) | replica ids (length, bytes)
//
// Version 1 (layout 1) also had produce commands (kind 1): records now live in each partition's own
// Raft group (package partition), and a data directory of layout 1 is refused at start.
const (
	commandVersion = 2
	// minReplicaBytes is the smallest encoded replica id: a length. It bounds the counts a decoder
	// believes before allocating.
	minReplicaBytes = 1
)

// Kind is what a command does.
type Kind byte

// The kinds of command. Their values are part of the command format; 1 was a produce in version 1.
const (
	KindCreateTopic  Kind = 2
	KindDeleteTopic  Kind = 3
	KindCommitOffset Kind = 4
	KindAssign       Kind = 5
)

// ErrMalformedCommand is returned by DecodeCommand for bytes that are not a command of a version it
// knows.
var ErrMalformedCommand = errors.New("fsm: malformed command")

// Command is one change to the cluster's metadata.
type Command struct {
	Kind  Kind
	Topic string

	// Create topic: the retention, the replication factor and each partition's replicas (server
	// ids, the preferred leader first).
	RetentionBytes    int64
	RetentionAge      int64
	ReplicationFactor int
	Replicas          [][]string

	// Commit offset: the group, the partition and the group's next offset on it. Assign: the
	// partition and its new replicas, in Replicas[0].
	Group     string
	Partition uint32
	Offset    uint64
}

// AppendCommand appends c's encoding to dst.
func AppendCommand(dst []byte, c *Command) []byte {
	dst = append(dst, commandVersion, byte(c.Kind))
	dst = appendString(dst, c.Topic)
	switch c.Kind {
	case KindCreateTopic:
		dst = binary.AppendVarint(dst, c.RetentionBytes)
		dst = binary.AppendVarint(dst, c.RetentionAge)
		dst = binary.AppendUvarint(dst, uint64(c.ReplicationFactor))
		dst = binary.AppendUvarint(dst, uint64(len(c.Replicas)))
		for _, rs := range c.Replicas {
			dst = appendReplicas(dst, rs)
		}
	case KindCommitOffset:
		dst = appendString(dst, c.Group)
		dst = binary.AppendUvarint(dst, uint64(c.Partition))
		dst = binary.AppendUvarint(dst, c.Offset)
	case KindAssign:
		dst = binary.AppendUvarint(dst, uint64(c.Partition))
		var rs []string
		if len(c.Replicas) > 0 {
			rs = c.Replicas[0]
		}
		dst = appendReplicas(dst, rs)
	}
	return dst
}

func appendReplicas(dst []byte, rs []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(rs)))
	for _, r := range rs {
		dst = appendString(dst, r)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeCommand decodes a command.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if len(b) < 2 {
		return c, fmt.Errorf("%w: %d bytes", ErrMalformedCommand, len(b))
	}
	if b[0] != commandVersion {
		return c, fmt.Errorf("%w: unknown version %d (this build reads version %d, data directory layout %d)", ErrMalformedCommand, b[0], commandVersion, Layout)
	}
	c.Kind = Kind(b[1])
	d := wire.Decoder{B: b[2:], Malformed: ErrMalformedCommand}
	c.Topic = decodeString(&d, "topic")
	switch c.Kind {
	case KindCreateTopic:
		c.RetentionBytes = d.Varint("retention bytes")
		c.RetentionAge = d.Varint("retention age")
		rf := d.Uvarint("replication factor")
		if d.Err == nil && (rf == 0 || rf > MaxReplicationFactor) {
			d.Failf("replication factor %d", rf)
		}
		c.ReplicationFactor = int(rf)
		parts := d.Uvarint("partition count")
		if d.Err == nil && (parts == 0 || parts > MaxPartitions) {
			d.Failf("%d partitions", parts)
		}
		if d.Err == nil {
			c.Replicas = make([][]string, parts)
			for p := range c.Replicas {
				if c.Replicas[p] = decodeReplicas(&d); d.Err != nil {
					break
				}
			}
		}
	case KindDeleteTopic:
	case KindCommitOffset:
		c.Group = decodeString(&d, "group")
		p := d.Uvarint("partition")
		if d.Err == nil && p >= MaxPartitions {
			d.Failf("partition %d", p)
		}
		c.Partition = uint32(p)
		c.Offset = d.Uvarint("offset")
	case KindAssign:
		p := d.Uvarint("partition")
		if d.Err == nil && p >= MaxPartitions {
			d.Failf("partition %d", p)
		}
		c.Partition = uint32(p)
		c.Replicas = [][]string{decodeReplicas(&d)}
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

// decodeReplicas reads a list of replica ids.
func decodeReplicas(d *wire.Decoder) []string {
	n := d.Uvarint("replica count")
	if d.Err == nil && n > uint64(len(d.B)/minReplicaBytes) {
		d.Failf("%d replicas in %d bytes", n, len(d.B))
	}
	if d.Err != nil {
		return nil
	}
	rs := make([]string, n)
	for i := range rs {
		rs[i] = decodeString(d, "replica")
	}
	return rs
}

// decodeString reads a length-prefixed UTF-8 string.
func decodeString(d *wire.Decoder, what string) string {
	b := d.Bytes(what)
	if d.Err == nil && !utf8.Valid(b) {
		d.Failf("%s is not UTF-8", what)
	}
	return string(b)
}

// Package raftnet carries the Raft traffic of every Raft group a server runs over one connection
// per peer server (issue #12: "one port carries every group"). A server that holds a thousand
// partition replicas keeps one outgoing connection to each other server, not a thousand: each RPC
// is a frame tagged with its group, and answers come back matched by request id, in any order.
//
//	net, err := raftnet.New(mux.Raft(), raftnet.Options{LocalAddr: "10.0.0.1:7070"})
//	t, err := net.Transport("orders/3") // a raft.Transport for that group
//	r, err := raft.NewRaft(conf, fsm, logs, stable, snaps, t)
//
// Each server dials its own connection to each peer for the calls it makes, and serves the calls
// that arrive on connections its peers dialed. Requests of one group are handed to that group's
// Raft node one at a time, in the order they arrived, as hashicorp/raft's NetworkTransport does per
// connection, so pipelined AppendEntries stay in order; a slow group never holds up another, since
// each group has its own queue and the connection reader never waits on one. Heartbeats take Raft's
// fast path beside the queue.
//
// A connection that answers nothing for a whole RPC timeout is taken for dead and dialed again on
// the next call, so a peer that vanished without a reset (a cut network) is found.
//
// # Wire format
//
// After the stream layer's own preface (the mux marker and TLS), the dialing side sends the
// 5-byte preface "DLRN" 0x01 (format version 1). Then frames, both ways, all integers big-endian:
//
//	request:   | length uint32 | id uint64 | kind uint8 | group length uint16 | group | body |
//	response:  | length uint32 | id uint64 | status uint8 | body |
//
// length counts the bytes after the length field and is at most Options.MaxFrameBytes. kind is the
// RPC (kindAppendEntries, ...); a request body is the msgpack encoding of hashicorp/raft's request
// struct, as NetworkTransport encodes it, followed for an InstallSnapshot by the snapshot's bytes.
// status is statusOK with the msgpack encoding of the response struct, or statusError with an error
// message. These constants are part of the format.
package raftnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// preface starts every connection, after the stream layer's own.
var preface = [5]byte{'D', 'L', 'R', 'N', 1}

// RPC kinds. Part of the format.
const (
	kindAppendEntries  byte = 1
	kindRequestVote    byte = 2
	kindInstallSnap    byte = 3
	kindTimeoutNow     byte = 4
	kindRequestPreVote byte = 5
)

// Response statuses. Part of the format.
const (
	statusOK    byte = 0
	statusError byte = 1
)

const (
	lengthSize         = 4
	requestHeaderSize  = 8 + 1 + 2 // id, kind, group length
	responseHeaderSize = 8 + 1     // id, status
	maxGroupLength     = 1<<16 - 1
)

// ErrFrame is returned for bytes that are not a valid frame: a length over the limit, a header cut
// short, an unknown kind, a body that does not decode.
var ErrFrame = errors.New("raftnet: bad frame")

// request is a decoded request frame.
type request struct {
	id    uint64
	kind  byte
	group string
	body  []byte
}

// response is a decoded response frame.
type response struct {
	id     uint64
	status byte
	body   []byte
}

// readFrame reads one frame's bytes after its length field, refusing a length over max before
// allocating anything.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var l [lengthSize]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(l[:])
	if int64(n) > int64(max) {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrFrame, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func parseRequest(b []byte) (request, error) {
	if len(b) < requestHeaderSize {
		return request{}, fmt.Errorf("%w: request of %d bytes", ErrFrame, len(b))
	}
	q := request{id: binary.BigEndian.Uint64(b), kind: b[8]}
	gl := int(binary.BigEndian.Uint16(b[9:]))
	if len(b) < requestHeaderSize+gl {
		return request{}, fmt.Errorf("%w: group of %d bytes in a request of %d", ErrFrame, gl, len(b))
	}
	q.group = string(b[requestHeaderSize : requestHeaderSize+gl])
	q.body = b[requestHeaderSize+gl:]
	return q, nil
}

func parseResponse(b []byte) (response, error) {
	if len(b) < responseHeaderSize {
		return response{}, fmt.Errorf("%w: response of %d bytes", ErrFrame, len(b))
	}
	return response{id: binary.BigEndian.Uint64(b), status: b[8], body: b[responseHeaderSize:]}, nil
}

// appendRequest encodes a request frame: header, msgpack of args, then extra (a snapshot's bytes).
func appendRequest(h *codec.MsgpackHandle, id uint64, kind byte, group string, args any, extra []byte) ([]byte, error) {
	if len(group) > maxGroupLength {
		return nil, fmt.Errorf("raftnet: group name of %d bytes, at most %d", len(group), maxGroupLength)
	}
	b := make([]byte, lengthSize+requestHeaderSize, 256+len(group)+len(extra))
	binary.BigEndian.PutUint64(b[lengthSize:], id)
	b[lengthSize+8] = kind
	binary.BigEndian.PutUint16(b[lengthSize+9:], uint16(len(group)))
	b = append(b, group...)
	body, err := encode(h, args)
	if err != nil {
		return nil, err
	}
	b = append(b, body...)
	b = append(b, extra...)
	return finish(b), nil
}

// appendResponse encodes a response frame: the response struct, or the error's message.
func appendResponse(h *codec.MsgpackHandle, id uint64, resp any, rerr error) []byte {
	b := make([]byte, lengthSize+responseHeaderSize, 128)
	binary.BigEndian.PutUint64(b[lengthSize:], id)
	if rerr == nil {
		body, err := encode(h, resp)
		if err == nil {
			b = append(b, body...)
		}
		rerr = err
	}
	if rerr != nil {
		b[lengthSize+8] = statusError
		b = append(b, rerr.Error()...)
	}
	return finish(b)
}

func finish(b []byte) []byte {
	binary.BigEndian.PutUint32(b, uint32(len(b)-lengthSize))
	return b
}

// newHandle returns a msgpack handle. A handle caches what it learns of each type, so a Network
// keeps one for all its encoding and decoding (it is safe for concurrent use).
func newHandle() *codec.MsgpackHandle { return &codec.MsgpackHandle{} }

// encode returns the msgpack encoding of v. (codec.NewEncoderBytes writes from the start of the
// slice it is given, so it cannot append to a frame's header.)
func encode(h *codec.MsgpackHandle, v any) ([]byte, error) {
	var b []byte
	if err := codec.NewEncoderBytes(&b, h).Encode(v); err != nil {
		return nil, fmt.Errorf("raftnet: encode: %w", err)
	}
	return b, nil
}

// decode decodes a msgpack body into v and returns the bytes after it.
func decode(h *codec.MsgpackHandle, body []byte, v any) ([]byte, error) {
	r := bytes.NewReader(body)
	if err := codec.NewDecoder(r, h).Decode(v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	return body[len(body)-r.Len():], nil
}

// decodeCommand turns a request into the command raft's RPC carries (and, for an InstallSnapshot,
// the snapshot's bytes).
func decodeCommand(h *codec.MsgpackHandle, q request) (cmd any, snapshot []byte, err error) {
	switch q.kind {
	case kindAppendEntries:
		var a raft.AppendEntriesRequest
		_, err = decode(h, q.body, &a)
		cmd = &a
	case kindRequestVote:
		var a raft.RequestVoteRequest
		_, err = decode(h, q.body, &a)
		cmd = &a
	case kindRequestPreVote:
		var a raft.RequestPreVoteRequest
		_, err = decode(h, q.body, &a)
		cmd = &a
	case kindTimeoutNow:
		var a raft.TimeoutNowRequest
		_, err = decode(h, q.body, &a)
		cmd = &a
	case kindInstallSnap:
		var a raft.InstallSnapshotRequest
		snapshot, err = decode(h, q.body, &a)
		if err == nil && int64(len(snapshot)) != a.Size {
			err = fmt.Errorf("%w: snapshot of %d bytes, header says %d", ErrFrame, len(snapshot), a.Size)
		}
		cmd = &a
	default:
		return nil, nil, fmt.Errorf("%w: unknown kind %d", ErrFrame, q.kind)
	}
	if err != nil {
		return nil, nil, err
	}
	return cmd, snapshot, nil
}

// isHeartbeat tells a heartbeat (an AppendEntries with nothing but the leader's term) from other
// AppendEntries, with NetworkTransport's test, so it can take Raft's fast path.
// Only Dislog servers of one version speak raftnet, so the sender's address is always in the RPC
// header (raft's deprecated Leader field is not consulted).
func isHeartbeat(a *raft.AppendEntriesRequest) bool {
	return a.Term != 0 && a.Addr != nil && a.PrevLogEntry == 0 && a.PrevLogTerm == 0 &&
		len(a.Entries) == 0 && a.LeaderCommitIndex == 0
}

package raftnet

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// FuzzDecodeFrame feeds arbitrary bytes to the frame reader and the request and response decoders:
// they must return an error or a value, never panic or allocate past the frame limit.
func FuzzDecodeFrame(f *testing.F) {
	h := newHandle()
	seeds := []struct {
		kind byte
		args any
	}{
		{kindAppendEntries, &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 7, PrevLogTerm: 2, LeaderCommitIndex: 7,
			Entries: []*raft.Log{{Index: 8, Term: 3, Type: raft.LogCommand, Data: []byte("record"), AppendedAt: time.Unix(1, 2)}}}},
		{kindRequestVote, &raft.RequestVoteRequest{Term: 4, LastLogIndex: 9, LastLogTerm: 3}},
		{kindRequestPreVote, &raft.RequestPreVoteRequest{Term: 4}},
		{kindTimeoutNow, &raft.TimeoutNowRequest{}},
		{kindInstallSnap, &raft.InstallSnapshotRequest{Term: 2, Size: 3}},
	}
	for i, s := range seeds {
		extra := []byte(nil)
		if s.kind == kindInstallSnap {
			extra = []byte("abc")
		}
		b, err := appendRequest(h, uint64(i), s.kind, "orders/3", s.args, extra)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(appendResponse(h, 9, &raft.AppendEntriesResponse{Term: 3, LastLog: 8, Success: true}, nil))
	f.Add(appendResponse(h, 9, nil, ErrNoGroup))
	f.Fuzz(func(t *testing.T, b []byte) {
		frame, err := readFrame(bytes.NewReader(b), 1<<20)
		if err != nil {
			return
		}
		if q, err := parseRequest(frame); err == nil {
			decodeCommand(h, q)
		}
		if r, err := parseResponse(frame); err == nil && r.status == statusOK {
			var resp raft.AppendEntriesResponse
			decode(h, r.body, &resp)
		}
	})
}

// A request survives encoding and decoding whole, InstallSnapshot's bytes included.
func TestRequestRoundTrip(t *testing.T) {
	h := newHandle()
	in := &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 7, LeaderCommitIndex: 7,
		Entries: []*raft.Log{{Index: 8, Term: 3, Type: raft.LogCommand, Data: []byte("record"), Extensions: []byte("x")}}}
	b, err := appendRequest(h, 42, kindAppendEntries, "t/1", in, nil)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := readFrame(bytes.NewReader(b), len(b))
	if err != nil {
		t.Fatal(err)
	}
	q, err := parseRequest(frame)
	if err != nil || q.id != 42 || q.group != "t/1" || q.kind != kindAppendEntries {
		t.Fatalf("parsed %+v, %v", q, err)
	}
	cmd, _, err := decodeCommand(h, q)
	if err != nil {
		t.Fatal(err)
	}
	out := cmd.(*raft.AppendEntriesRequest)
	if out.Term != 3 || out.PrevLogEntry != 7 || len(out.Entries) != 1 || string(out.Entries[0].Data) != "record" || string(out.Entries[0].Extensions) != "x" {
		t.Fatalf("decoded %+v, want %+v", out, in)
	}
	if _, err := readFrame(bytes.NewReader(b), len(b)-5); err == nil {
		t.Fatal("a frame over the limit was read")
	}
	snap, err := appendRequest(h, 1, kindInstallSnap, "g", &raft.InstallSnapshotRequest{Size: 4}, []byte("snap"))
	if err != nil {
		t.Fatal(err)
	}
	frame, _ = readFrame(bytes.NewReader(snap), len(snap))
	q, _ = parseRequest(frame)
	if _, data, err := decodeCommand(h, q); err != nil || string(data) != "snap" {
		t.Fatalf("snapshot bytes %q, %v", data, err)
	}
	bad, _ := appendRequest(h, 1, kindInstallSnap, "g", &raft.InstallSnapshotRequest{Size: 5}, []byte("snap"))
	frame, _ = readFrame(bytes.NewReader(bad), len(bad))
	q, _ = parseRequest(frame)
	if _, _, err := decodeCommand(h, q); err == nil {
		t.Fatal("a snapshot shorter than its header says was accepted")
	}
}

package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"

	"github.com/dislog/dislog/server/internal/topics"
	"github.com/dislog/dislog/storelog"
)

// The state format, in both the metadata file (<dir>/fsm.json) and every snapshot: JSON of State.
// Snapshots hold metadata, never records, so their size does not grow with the data. Version is part
// of the format: DecodeState refuses any other. Version 2 keeps every topic's offsets in the metadata
// file too (version 1, never released, kept them in snapshots only).
//
// The metadata file adds a checksum: the JSON, then one line with the CRC-32C (Castagnoli) of the
// JSON in eight lower-case hex digits,
//
//	{"version":2,"index":9,"topics":{...}}\n
//	crc32c 1a2b3c4d\n
//
// so that a flipped bit or a cut anywhere is found, not read as other numbers. (Raft's snapshot
// store checksums its own files.) These constants are part of the format.
const (
	stateVersion  = 2
	stateFileName = "fsm.json"
	crcPrefix     = "crc32c "
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrMalformedState is returned by DecodeState for bytes that are not a state of a version it knows.
var ErrMalformedState = errors.New("fsm: malformed state")

// State is everything a server holds apart from the records themselves.
type State struct {
	Version int `json:"version"`
	// Index is the Raft index of the last command applied to this state.
	Index  uint64                `json:"index"`
	Topics map[string]TopicState `json:"topics"`
	// Offsets are consumer groups' next offsets: group → topic → offset.
	Offsets map[string]map[string]uint64 `json:"offsets,omitempty"`
	// Producers is the deduplication table: topic → producer id → its last batch.
	Producers map[string]map[uint64]Producer `json:"producers,omitempty"`
}

// TopicState is one topic's configuration and, in a snapshot, the offsets it held.
type TopicState struct {
	// Created is the Raft index of the command that created the topic: a topic deleted and created
	// again under its name is another topic.
	Created        uint64 `json:"created"`
	RetentionBytes int64  `json:"retention_bytes,omitempty"`
	RetentionAge   int64  `json:"retention_age_ns,omitempty"`
	// Lowest and Next are the topic's offsets at the state's index: a replay from a checkpoint
	// counts offsets on from Next, and a snapshot's restore copies the records [Lowest, Next).
	Lowest uint64 `json:"lowest,omitempty"`
	Next   uint64 `json:"next,omitempty"`
}

// Producer is what the cluster remembers of an idempotent producer on one topic.
type Producer struct {
	// Next is the sequence number the producer's next batch must carry.
	Next uint64 `json:"next"`
	// Base is the base offset of the producer's last batch, returned again for a retry of it.
	Base uint64 `json:"base"`
}

func newState() State {
	return State{Version: stateVersion, Topics: map[string]TopicState{}}
}

// DecodeState decodes and checks a state.
func DecodeState(b []byte) (State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("%w: %v", ErrMalformedState, err)
	}
	if s.Version != stateVersion {
		return State{}, fmt.Errorf("%w: version %d, this build reads %d", ErrMalformedState, s.Version, stateVersion)
	}
	if s.Topics == nil {
		s.Topics = map[string]TopicState{}
	}
	for name, t := range s.Topics {
		if err := topics.ValidateName(name); err != nil {
			return State{}, fmt.Errorf("%w: %v", ErrMalformedState, err)
		}
		if t.Lowest > t.Next || t.RetentionBytes < 0 || t.RetentionAge < 0 {
			return State{}, fmt.Errorf("%w: topic %q has offsets [%d, %d) and retention %d bytes, %d ns",
				ErrMalformedState, name, t.Lowest, t.Next, t.RetentionBytes, t.RetentionAge)
		}
	}
	for group, offs := range s.Offsets {
		if err := topics.ValidateName(group); err != nil {
			return State{}, fmt.Errorf("%w: group: %v", ErrMalformedState, err)
		}
		for topic := range offs {
			if _, ok := s.Topics[topic]; !ok {
				return State{}, fmt.Errorf("%w: group %q has an offset on unknown topic %q", ErrMalformedState, group, topic)
			}
		}
	}
	for topic := range s.Producers {
		if _, ok := s.Topics[topic]; !ok {
			return State{}, fmt.Errorf("%w: producers on unknown topic %q", ErrMalformedState, topic)
		}
	}
	return s, nil
}

// encodeStateFile is the metadata file of a state.
func encodeStateFile(s *State) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(append(b, '\n'), "%s%08x\n", crcPrefix, crc32.Checksum(b, castagnoli)), nil
}

// DecodeStateFile checks the checksum of a metadata file and decodes the state in it.
func DecodeStateFile(b []byte) (State, error) {
	body, trailer, ok := bytes.Cut(b, []byte{'\n'})
	if !ok || !bytes.HasPrefix(trailer, []byte(crcPrefix)) {
		return State{}, fmt.Errorf("%w: no checksum line after the state (the file is cut short or damaged)", ErrMalformedState)
	}
	if want := fmt.Appendf(nil, "%s%08x\n", crcPrefix, crc32.Checksum(body, castagnoli)); !bytes.Equal(trailer, want) {
		return State{}, fmt.Errorf("%w: the checksum line is %q, the state's is %q (the file is damaged)",
			ErrMalformedState, bytes.TrimSpace(trailer), bytes.TrimSpace(want))
	}
	return DecodeState(body)
}

// writeState replaces the metadata file durably (storelog.WriteFileAtomic), so a crash leaves the
// old state or the new one and a state once written is never lost. The caller must have fsynced
// every topic log the state describes first.
func writeState(fs storelog.FS, dir string, s *State) error {
	b, err := encodeStateFile(s)
	if err != nil {
		return err
	}
	if err := storelog.WriteFileAtomic(fs, filepath.Join(dir, stateFileName), b, 0o644); err != nil {
		return fmt.Errorf("fsm: write state: %w", err)
	}
	return nil
}

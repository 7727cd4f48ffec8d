package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

var _ raft.StableStore = (*StableStore)(nil)

// StableStore is a raft.StableStore on pebble: raft's current term, its vote and the like. Every Set
// is a synced pebble write, durable when it returns. Set and SetUint64 share one key space; a uint64
// is stored as 8 bytes, big-endian. Every method is safe to call from any goroutine.
//
// One StableStore can also serve many raft groups (a server's partitions) through Group views,
// whose keys live under a prefix of their own in the same database; keys that start with byte 0 are
// theirs, and are not to be used through the StableStore itself.
type StableStore struct {
	db *pebble.DB
}

// stableCacheBytes sizes pebble's block cache: raft keeps a handful of small keys here.
const stableCacheBytes = 1 << 20

// OpenStableStore opens the pebble database in dir, creating it if need be. Only opts.Logger is used.
func OpenStableStore(dir string, opts Options) (*StableStore, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cache := pebble.NewCache(stableCacheBytes)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{Cache: cache, Logger: pebbleLogger{logger}})
	if err != nil {
		return nil, fmt.Errorf("raftlog: open stable store: %w", err)
	}
	return &StableStore{db: db}, nil
}

// Set stores val under key, durably.
func (s *StableStore) Set(key, val []byte) error { return s.set(nil, key, val) }

// Get returns the value under key, or nil, nil if there is none (raft's contract: a missing key is
// not an error).
func (s *StableStore) Get(key []byte) ([]byte, error) { return s.get(nil, key) }

// SetUint64 stores val under key, durably.
func (s *StableStore) SetUint64(key []byte, val uint64) error { return s.setUint64(nil, key, val) }

// GetUint64 returns the uint64 under key, or 0, nil if there is none. A value that is not 8 bytes
// returns ErrBadUint64.
func (s *StableStore) GetUint64(key []byte) (uint64, error) { return s.getUint64(nil, key) }

// The methods below serve the StableStore (prefix nil) and its groups (prefix groupPrefix(id)).

func (s *StableStore) set(prefix, key, val []byte) error {
	if err := s.db.Set(append(prefix[:len(prefix):len(prefix)], key...), val, pebble.Sync); err != nil {
		return fmt.Errorf("raftlog: stable set %s%q: %w", describe(prefix), key, err)
	}
	return nil
}

func (s *StableStore) get(prefix, key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(append(prefix[:len(prefix):len(prefix)], key...))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raftlog: stable get %s%q: %w", describe(prefix), key, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

func (s *StableStore) setUint64(prefix, key []byte, val uint64) error {
	return s.set(prefix, key, binary.BigEndian.AppendUint64(nil, val))
}

func (s *StableStore) getUint64(prefix, key []byte) (uint64, error) {
	v, err := s.get(prefix, key)
	switch {
	case err != nil:
		return 0, err
	case v == nil:
		return 0, nil
	case len(v) != 8:
		return 0, fmt.Errorf("%w: key %s%q holds %d bytes", ErrBadUint64, describe(prefix), key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Group returns the StableStore of the raft group id: a view of this store whose keys are kept
// under the group's own prefix (byte 0, the length of id as a uvarint, then id), so that groups
// never see each other's keys, whatever their ids. Every group shares the one database and its
// synced writes. The view needs no closing; it fails once the StableStore is closed.
func (s *StableStore) Group(id string) *GroupStableStore {
	return &GroupStableStore{store: s, id: id, prefix: groupPrefix(id)}
}

// DeleteGroup deletes every key of the raft group id, durably: for a replica removed from this
// server. A later Group(id) starts empty.
func (s *StableStore) DeleteGroup(id string) error {
	start := groupPrefix(id)
	// Every key of the group starts with start; the end is the first key past them: start with its
	// last byte raised (id's bytes can be 0xff, so carry as a counter would).
	end := slices.Clone(start)
	for len(end) > 0 && end[len(end)-1] == 0xff {
		end = end[:len(end)-1]
	}
	end[len(end)-1]++ // never empty: the prefix starts with byte 0
	if err := s.db.DeleteRange(start, end, pebble.Sync); err != nil {
		return fmt.Errorf("raftlog: delete stable group %q: %w", id, err)
	}
	return nil
}

// groupMarker starts every group's keys. raft's own keys are names ("CurrentTerm", ...), never
// starting with byte 0.
const groupMarker = 0

// groupPrefix is the prefix of group id's keys: the marker, len(id) as a uvarint, id. The length
// makes the prefixes prefix-free: no group's prefix starts another's.
func groupPrefix(id string) []byte {
	b := binary.AppendUvarint([]byte{groupMarker}, uint64(len(id)))
	return append(b, id...)
}

// describe names the group a prefix belongs to, for error messages.
func describe(prefix []byte) string {
	if prefix == nil {
		return ""
	}
	n, size := binary.Uvarint(prefix[1:])
	return fmt.Sprintf("(group %q) ", prefix[1+size:1+size+int(n)])
}

var _ raft.StableStore = (*GroupStableStore)(nil)

// GroupStableStore is one raft group's raft.StableStore inside a shared StableStore (see
// StableStore.Group). Its methods behave as the StableStore's do, on the group's keys only.
type GroupStableStore struct {
	store  *StableStore
	id     string
	prefix []byte
}

// ID is the group's id.
func (g *GroupStableStore) ID() string { return g.id }

// Set stores val under the group's key, durably.
func (g *GroupStableStore) Set(key, val []byte) error { return g.store.set(g.prefix, key, val) }

// Get returns the value under the group's key, or nil, nil if there is none.
func (g *GroupStableStore) Get(key []byte) ([]byte, error) { return g.store.get(g.prefix, key) }

// SetUint64 stores val under the group's key, durably.
func (g *GroupStableStore) SetUint64(key []byte, val uint64) error {
	return g.store.setUint64(g.prefix, key, val)
}

// GetUint64 returns the uint64 under the group's key, or 0, nil if there is none; ErrBadUint64 for
// a value that is not 8 bytes.
func (g *GroupStableStore) GetUint64(key []byte) (uint64, error) {
	return g.store.getUint64(g.prefix, key)
}

// Close closes the database. Calls after Close fail.
func (s *StableStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("raftlog: close stable store: %w", err)
	}
	return nil
}

// pebbleLogger sends pebble's log lines to a slog.Logger.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf panics where pebble's default logger would exit the process: pebble calls it only when it
// cannot go on.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic(msg)
}

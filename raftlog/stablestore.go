package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

var _ raft.StableStore = (*StableStore)(nil)

// StableStore is a raft.StableStore on pebble: raft's current term, its vote and the like. Every Set
// is a synced pebble write, durable when it returns. Set and SetUint64 share one key space; a uint64
// is stored as 8 bytes, big-endian. Every method is safe to call from any goroutine.
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
func (s *StableStore) Set(key, val []byte) error {
	if err := s.db.Set(key, val, pebble.Sync); err != nil {
		return fmt.Errorf("raftlog: stable set %q: %w", key, err)
	}
	return nil
}

// Get returns the value under key, or nil, nil if there is none (raft's contract: a missing key is
// not an error).
func (s *StableStore) Get(key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raftlog: stable get %q: %w", key, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// SetUint64 stores val under key, durably.
func (s *StableStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the uint64 under key, or 0, nil if there is none. A value that is not 8 bytes
// returns ErrBadUint64.
func (s *StableStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	switch {
	case err != nil:
		return 0, err
	case v == nil:
		return 0, nil
	case len(v) != 8:
		return 0, fmt.Errorf("%w: key %q holds %d bytes", ErrBadUint64, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
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

package raftlog

import (
	"errors"
	"path/filepath"
)

// Store is a LogStore and a StableStore side by side in one directory: pass it to raft.NewRaft as
// both.
type Store struct {
	*LogStore
	*StableStore
}

// Open opens the store in dir, creating it if need be: the log in dir/log, the stable store in
// dir/stable.
func Open(dir string, opts Options) (*Store, error) {
	logs, err := OpenLogStore(filepath.Join(dir, "log"), opts)
	if err != nil {
		return nil, err
	}
	stable, err := OpenStableStore(filepath.Join(dir, "stable"), opts)
	if err != nil {
		logs.Close()
		return nil, err
	}
	return &Store{LogStore: logs, StableStore: stable}, nil
}

// Close closes both stores.
func (s *Store) Close() error {
	return errors.Join(s.LogStore.Close(), s.StableStore.Close())
}

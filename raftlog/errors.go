package raftlog

import "errors"

var (
	// ErrCorrupt is returned when an entry read from the log fails its checks: a bad encoding, or an
	// index other than the one it was stored at. storelog.ErrCorrupt, for damage below the entry, is
	// passed on as it is.
	ErrCorrupt = errors.New("raftlog: corrupt entry")
	// ErrNonContiguous is returned by StoreLogs for a batch whose indexes do not run on, one by one,
	// from the store's last index (or from its first entry, on an empty store). Nothing of the batch is
	// stored and the store stays usable.
	ErrNonContiguous = errors.New("raftlog: non-contiguous log indexes")
	// ErrMiddleRange is returned by DeleteRange for a range that touches neither end of the log:
	// deleting it would leave a gap, which raft never asks for.
	ErrMiddleRange = errors.New("raftlog: delete range inside the log")
	// ErrOffsetNotFound is returned by LogStore.EntryOf for a partition offset the store does not
	// hold: below FirstOffset or at or past NextOffset.
	ErrOffsetNotFound = errors.New("raftlog: offset not in the log")
	// ErrNoTranslation is returned by LogStore.EntryOf on a store opened without Options.Records.
	ErrNoTranslation = errors.New("raftlog: the log store keeps no offset translation (Options.Records is nil)")
	// ErrBadUint64 is returned by StableStore.GetUint64 for a key whose value is not 8 bytes.
	ErrBadUint64 = errors.New("raftlog: stored value is not a uint64")
)

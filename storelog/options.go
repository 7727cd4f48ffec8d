package storelog

import (
	"fmt"
	"log/slog"
	"time"
)

// SyncPolicy says when appended records are fsynced.
type SyncPolicy int

const (
	// SyncEveryBatch fsyncs before an append returns: a returned append survives a crash. Concurrent
	// appends share fsyncs (group commit). Records become readable once durable. The default.
	SyncEveryBatch SyncPolicy = iota
	// SyncInterval fsyncs in the background every Options.SyncInterval. A crash loses at most the
	// records of the last interval; records are readable as soon as they are written.
	SyncInterval
	// SyncNever leaves fsync to the caller (Sync) and to segment rolls. For a log whose durability
	// lives elsewhere, such as a state machine fed from a Raft log.
	SyncNever
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncEveryBatch:
		return "every-batch"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Options configure a Log. The zero value is valid: every zero field takes the default named in its
// comment.
type Options struct {
	// FS is the file system the log lives on. Default: the operating system's. Tests pass a
	// fault-injecting one (package faultfs).
	FS FS
	// MaxRecordBytes is the largest value one record may hold. Default 4 MiB, or less if a segment
	// cannot hold that (RecordCapacity).
	MaxRecordBytes uint32
	// MaxSegmentBytes rolls the active segment before an append would make its store file larger.
	// Default 64 MiB; at most 4 GiB - 1, since index positions are 32-bit.
	MaxSegmentBytes uint32
	// MaxSegmentRecords rolls the active segment when it holds this many records; it sizes the index
	// file (16 bytes a record, allocated sparsely). Default 1,048,576.
	MaxSegmentRecords uint32
	// MaxSegmentAge rolls the active segment once its first record is this old, so retention by age
	// can drop it. Default 0: no roll by age.
	MaxSegmentAge time.Duration
	// Sync is the fsync policy. Default SyncEveryBatch.
	Sync SyncPolicy
	// NoPreallocate turns off the preallocation of store files (the package doc's Preallocation):
	// nothing writes zeros ahead of the appends, so every byte of the log is written to the disk
	// once, and each append's fdatasync also commits the store file's new size, which costs a
	// journal commit (slower small appends). For logs whose disk bandwidth and CPU matter more than
	// the latency of a small append. SyncNever logs never preallocate.
	NoPreallocate bool
	// SyncInterval is the period of background fsyncs under SyncInterval. Default 100 ms.
	SyncInterval time.Duration
	// RetentionBytes deletes the oldest sealed segments while the log's store files add up to more.
	// Default 0: no limit.
	RetentionBytes int64
	// RetentionAge deletes sealed segments whose newest record is older. Default 0: no limit.
	RetentionAge time.Duration
	// RetentionCheckInterval is how often retention and age rolls run in the background. Default 1 min.
	RetentionCheckInterval time.Duration
	// Clock gives record times and drives age-based rolls and retention. Default time.Now.
	Clock func() time.Time
	// Logger receives recovery and retention events. Default: discard.
	Logger *slog.Logger
}

const (
	defaultMaxRecordBytes         = 4 << 20
	defaultMaxSegmentBytes        = 64 << 20
	defaultMaxSegmentRecords      = 1 << 20
	defaultSyncInterval           = 100 * time.Millisecond
	defaultRetentionCheckInterval = time.Minute
)

// withDefaults returns o with every zero field set to its default, and an error wrapping
// ErrInvalidOptions if the result is inconsistent.
func (o Options) withDefaults() (Options, error) {
	if o.FS == nil {
		o.FS = OSFS()
	}
	if o.MaxSegmentBytes == 0 {
		o.MaxSegmentBytes = defaultMaxSegmentBytes
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = min(defaultMaxRecordBytes, RecordCapacity(o.MaxSegmentBytes))
	}
	if o.MaxSegmentRecords == 0 {
		o.MaxSegmentRecords = defaultMaxSegmentRecords
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = defaultSyncInterval
	}
	if o.RetentionCheckInterval == 0 {
		o.RetentionCheckInterval = defaultRetentionCheckInterval
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.MaxRecordBytes == 0:
		return o, fmt.Errorf("%w: MaxSegmentBytes %d leaves no room for a record", ErrInvalidOptions, o.MaxSegmentBytes)
	case o.MaxRecordBytes > RecordCapacity(o.MaxSegmentBytes):
		return o, fmt.Errorf("%w: MaxRecordBytes %d does not fit in MaxSegmentBytes %d with the store and frame headers (at most %d)",
			ErrInvalidOptions, o.MaxRecordBytes, o.MaxSegmentBytes, RecordCapacity(o.MaxSegmentBytes))
	case o.Sync < SyncEveryBatch || o.Sync > SyncNever:
		return o, fmt.Errorf("%w: unknown sync policy %d", ErrInvalidOptions, o.Sync)
	case o.SyncInterval < 0 || o.MaxSegmentAge < 0 || o.RetentionAge < 0 || o.RetentionCheckInterval < 0:
		return o, fmt.Errorf("%w: durations must not be negative", ErrInvalidOptions)
	case o.RetentionBytes < 0:
		return o, fmt.Errorf("%w: RetentionBytes must not be negative", ErrInvalidOptions)
	}
	return o, nil
}

package storelog

import (
	"errors"
	"fmt"
)

var (
	// ErrOffsetOutOfRange is returned for a read below the lowest offset the log holds or at or past
	// its next offset, for a truncation point outside the log, and by SearchKey when no record the log
	// holds has a key at or below the one asked for (the log is empty, or every key is larger).
	ErrOffsetOutOfRange = errors.New("storelog: offset out of range")
	// ErrCorrupt is returned when bytes on disk fail their checks: a checksum mismatch, a frame that
	// does not belong at its offset, a truncated sealed segment, a gap between segments. Data that fails
	// a check is never returned.
	ErrCorrupt = errors.New("storelog: corrupt data")
	// ErrRecordTooLarge is returned when a record is longer than Options.MaxRecordBytes; nothing of
	// its batch is written.
	ErrRecordTooLarge = errors.New("storelog: record too large")
	// ErrUnsupportedVersion is returned by Open for a directory written by a newer format.
	ErrUnsupportedVersion = errors.New("storelog: unsupported format version")
	// ErrKeyOrder is returned by AppendBatchKeyed for a batch whose keys would make the log's keys
	// decrease (within the batch, or below the last record's key), or whose number of keys is not its
	// number of records. Nothing of the batch is written and the log stays usable.
	ErrKeyOrder = errors.New("storelog: keys out of order")
	// ErrClosed is returned by calls on a closed log.
	ErrClosed = errors.New("storelog: log closed")
	// ErrInvalidOptions is returned by Open when Options fail validation.
	ErrInvalidOptions = errors.New("storelog: invalid options")
	// ErrFailed wraps the first write or fsync error the log met. The log takes no write after it (a
	// failed fsync leaves the page cache in an unknown state, so retrying could acknowledge lost data);
	// reopen the log to go on. Reads of acknowledged records keep working.
	ErrFailed = errors.New("storelog: log failed")
)

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

func versionErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupportedVersion}, args...)...)
}

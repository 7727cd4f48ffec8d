package partition

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// ApplyRetention deletes the oldest whole segments of the partition's Raft log while the log is
// over Retention.Bytes or their newest entry is older than Retention.Age (as this replica stored
// it), never the active segment, never an entry not yet applied, and never past the last snapshot:
// when the cut passes the last snapshot it takes one first (it holds the state machine, no
// records). A replica that needs deleted entries later installs that snapshot (see the package
// documentation). The server calls it periodically on every replica.
func (r *Replica) ApplyRetention() error {
	if r.closed.Load() {
		return ErrClosed
	}
	ret := r.cfg.Retention
	if ret.Bytes <= 0 && ret.Age <= 0 {
		return nil
	}
	segs, err := r.logs.Segments()
	if err != nil {
		return fmt.Errorf("partition %s: retention: %w", r.group(), err)
	}
	var total int64
	for _, s := range segs {
		total += s.Bytes
	}
	now := time.Now().UnixNano()
	var drop int // the segments to delete: segs[:drop]
	for drop < len(segs)-1 {
		s := segs[drop]
		overBytes := ret.Bytes > 0 && total > ret.Bytes
		overAge := ret.Age > 0 && s.NewestTime < now-int64(ret.Age)
		if !overBytes && !overAge {
			break
		}
		total -= s.Bytes
		drop++
	}
	applied := r.raft.AppliedIndex()
	// The last segment wholly applied.
	for drop > 0 && segs[drop-1].Next-1 > applied {
		drop--
	}
	if drop == 0 {
		return nil
	}
	snapshot, err := r.lastSnapshotIndex()
	if err != nil {
		return err
	}
	if cut := segs[drop-1].Next - 1; cut > snapshot {
		err := r.raft.Snapshot().Error()
		if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return r.raftError("retention snapshot", err)
		}
		if snapshot, err = r.lastSnapshotIndex(); err != nil {
			return err
		}
	}
	for drop > 0 && segs[drop-1].Next-1 > snapshot {
		drop--
	}
	if drop == 0 {
		return nil
	}
	first, err := r.logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("partition %s: retention: %w", r.group(), err)
	}
	cut := segs[drop-1].Next - 1
	if first == 0 || cut < first {
		return nil
	}
	if err := r.logs.DeleteRange(first, cut); err != nil {
		return fmt.Errorf("partition %s: retention: %w", r.group(), err)
	}
	lowest, _ := r.Offsets()
	r.log.Info("partition: retention deleted segments", slog.Int("segments", drop), slog.Uint64("through_index", cut),
		slog.Uint64("snapshot_index", snapshot), slog.Uint64("lowest_offset", lowest))
	return nil
}

// lastSnapshotIndex is the index of the newest snapshot in the store, 0 if there is none.
func (r *Replica) lastSnapshotIndex() (uint64, error) {
	metas, err := r.snapshots.List()
	if err != nil {
		return 0, fmt.Errorf("partition %s: snapshots: %w", r.group(), err)
	}
	if len(metas) == 0 {
		return 0, nil
	}
	return metas[0].Index, nil
}

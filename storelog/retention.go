package storelog

import (
	"log/slog"
	"time"
)

// startBackground runs retention, age rolls and interval syncs, for the options that ask for them.
func (l *Log) startBackground() {
	var retention, sync <-chan time.Time
	var tickers []*time.Ticker
	if l.opts.RetentionBytes > 0 || l.opts.RetentionAge > 0 || l.opts.MaxSegmentAge > 0 {
		t := time.NewTicker(l.opts.RetentionCheckInterval)
		tickers, retention = append(tickers, t), t.C
	}
	if l.opts.Sync == SyncInterval {
		t := time.NewTicker(l.opts.SyncInterval)
		tickers, sync = append(tickers, t), t.C
	}
	if l.grow != nil {
		l.wg.Go(l.preallocate)
		l.wmu.Lock()
		l.wakePreallocatorLocked()
		l.wmu.Unlock()
	}
	if len(tickers) == 0 {
		return
	}
	l.wg.Go(func() {
		defer func() {
			for _, t := range tickers {
				t.Stop()
			}
		}()
		for {
			select {
			case <-l.done:
				return
			case <-retention:
				if err := l.ApplyRetention(); err != nil && !l.closed.Load() {
					l.opts.Logger.Error("storelog: retention", slog.String("dir", l.dir), slog.Any("error", err))
				}
			case <-sync:
				if err := l.Sync(); err != nil && !l.closed.Load() {
					l.opts.Logger.Error("storelog: interval sync", slog.String("dir", l.dir), slog.Any("error", err))
				}
			}
		}
	})
}

// ApplyRetention rolls the active segment if it is older than MaxSegmentAge, then deletes the oldest
// sealed segments while the log is over RetentionBytes or their newest record is older than
// RetentionAge. It runs in the background every RetentionCheckInterval; call it to apply retention
// now. Only whole sealed segments go, never the active one. A read in progress in a segment finishes
// before the segment is unmapped; a later read of its offsets gets ErrOffsetOutOfRange.
func (l *Log) ApplyRetention() error {
	l.removeMu.Lock()
	defer l.removeMu.Unlock()
	drop, err := l.detachExpired()
	if err != nil {
		return err
	}
	return l.removeDetached(drop)
}

// detachExpired rolls an aged active segment and takes expired sealed segments out of the list,
// under the writer locks; their files are left for removeDetached.
func (l *Log) detachExpired() ([]*segment, error) {
	unlock, err := l.lockWriters()
	if err != nil {
		return nil, err
	}
	defer unlock()
	now := l.opts.Clock().UnixNano()
	if s := l.active; s.count > 0 && l.opts.MaxSegmentAge > 0 && now-s.firstTime >= int64(l.opts.MaxSegmentAge) {
		if err := l.rollLocked(); err != nil {
			return nil, l.failLocked(err)
		}
	}
	if l.opts.RetentionBytes == 0 && l.opts.RetentionAge == 0 {
		return nil, nil
	}

	l.mu.Lock()
	total := int64(l.active.size)
	for _, s := range l.segments[:len(l.segments)-1] {
		total += s.sealedSize()
	}
	var drop []*segment
	for len(l.segments) > 1 {
		s := l.segments[0]
		overBytes := l.opts.RetentionBytes > 0 && total > l.opts.RetentionBytes
		overAge := false
		if l.opts.RetentionAge > 0 && !overBytes {
			newest, err := l.newestTimeLocked(s)
			if err != nil {
				l.mu.Unlock()
				return nil, err
			}
			overAge = newest < now-int64(l.opts.RetentionAge)
		}
		if !overBytes && !overAge {
			break
		}
		drop = append(drop, s)
		total -= s.sealedSize()
		l.segments = l.segments[1:]
	}
	if len(drop) > 0 {
		l.low.Store(max(l.low.Load(), l.segments[0].base))
		l.opts.Logger.Info("storelog: retention deleted segments", slog.String("dir", l.dir),
			slog.Int("segments", len(drop)), slog.Uint64("lowest_offset", l.low.Load()))
	}
	l.mu.Unlock()
	return drop, nil
}

// newestTimeLocked is the time of a sealed segment's last record. The caller holds mu and wmu.
func (l *Log) newestTimeLocked(s *segment) (int64, error) {
	if s.lastTime != 0 {
		return s.lastTime, nil
	}
	if err := s.openSealed(l.opts.FS); err != nil {
		return 0, err
	}
	e, err := s.entry(s.count - 1)
	if err != nil {
		return 0, err
	}
	s.lastTime = e.time
	return e.time, nil
}

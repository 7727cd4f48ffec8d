// Package fsm is the Raft state machine of a Dislog server: it applies committed commands (produce
// batches, topic creations and deletions, consumer offset commits) to the server's topics.
//
// It is persistent and idempotent. Topic logs are not fsynced as records are appended (the Raft log
// is the truth), and every stored record carries the Raft index of the batch that wrote it (codec
// version 2). The metadata file (fsm.json: topics, consumer offsets, the idempotent producers'
// table) is a checkpoint: it is written, fsynced, only when a snapshot is persisted or restored and
// at a graceful stop (Checkpoint), after every topic log it describes is fsynced, so everything up
// to its index is durable.
//
// Raft replays the log after its last snapshot on every start (raft.Config.NoSnapshotRestoreOnStart
// is set: the FSM's state is on disk already). A command at or below the checkpoint's index changes
// nothing. Every later command is applied again in order against the checkpoint's state, so each
// deduplication decision is made again exactly as it was made the first time, and each produce
// gets the base offset it got the first time: the checkpoint holds every topic's next offset at its
// index, and the FSM counts on from there. Only the append of a produce whose offsets the topic has
// passed already is skipped. A topic whose unsynced tail was lost to a power failure so gets that
// tail again, a topic whose records retention deleted meanwhile does not get them again, and a
// restart never appends a record twice.
//
// Snapshots hold the metadata and each topic's offsets, never records. Restoring one on a server
// that lacks records copies them from a peer (Config.Fetch).
package fsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dislog/dislog/server/internal/codec"
	"github.com/dislog/dislog/server/internal/topics"
	"github.com/dislog/dislog/storelog"
	"github.com/hashicorp/raft"
)

var (
	// ErrTopicNotFound is the result of a command on a topic that does not exist.
	ErrTopicNotFound = errors.New("fsm: topic not found")
	// ErrTopicExists is the result of creating a topic that exists.
	ErrTopicExists = errors.New("fsm: topic exists")
	// ErrSequence is the result of an idempotent produce whose sequence number is neither the next
	// one nor a retry of the last one. A producer's first batch to a topic may carry any sequence.
	ErrSequence = errors.New("fsm: out of sequence")
	// ErrOffsetPastEnd is the result of committing an offset past a topic's end.
	ErrOffsetPastEnd = errors.New("fsm: offset past the end of the topic")
)

// Result is what applying a command returns, through raft.ApplyFuture.Response.
type Result struct {
	// BaseOffset is the offset of a produce's first record.
	BaseOffset uint64
	// Duplicate is true for a retry of an idempotent producer's last batch, which wrote nothing.
	Duplicate bool
	// Err is why the command changed nothing.
	Err error
}

// Records is a run of stored records copied from a peer, in offset order.
type Records []storelog.Record

// Config is what an FSM works on.
type Config struct {
	// Dir holds the metadata file.
	Dir string
	// FS is the file system the metadata file is written through. Default: the operating system's.
	// Tests pass a fault-injecting one (storelog/faultfs).
	FS     storelog.FS
	Topics *topics.Registry
	// Fetch calls fn with the records [from, to) of topic, read from a peer, in runs. Restore uses
	// it for the records a snapshot names and this server lacks.
	Fetch  func(ctx context.Context, topic string, from, to uint64, fn func(Records) error) error
	Logger *slog.Logger
}

// FSM is a raft.BatchingFSM over a server's topics.
type FSM struct {
	cfg Config

	// mu guards state against readers; only Apply, ApplyBatch and Restore change it, one at a time,
	// on Raft's FSM goroutine.
	mu    sync.RWMutex
	state State
	// next is each topic's next offset as the commands applied so far made it: during a replay,
	// a produce whose offsets are below the topic's own next offset is stored already. Only the
	// FSM goroutine uses it.
	next map[string]uint64
	// checkpoint is the index of the metadata file the FSM was opened from (or of the snapshot it
	// restored): every command up to it is in the state and, fsynced, in the topics. Only the FSM
	// goroutine uses it.
	checkpoint uint64
	// applied is the index of the last log entry applied.
	applied atomic.Uint64
}

var _ raft.BatchingFSM = (*FSM)(nil)

// Open loads the metadata file in cfg.Dir. A data directory from before replication, with topics
// and no metadata file, has its topics adopted, and the metadata file is written at once: topics a
// later start finds that the file does not name were created by commands Raft replays.
func Open(cfg Config) (*FSM, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FS == nil {
		cfg.FS = storelog.OSFS()
	}
	f := &FSM{cfg: cfg, state: newState(), next: map[string]uint64{}}
	b, err := os.ReadFile(filepath.Join(cfg.Dir, stateFileName))
	switch {
	case errors.Is(err, os.ErrNotExist):
		for _, t := range cfg.Topics.List() {
			f.state.Topics[t.Name] = TopicState{
				RetentionBytes: t.Config.RetentionBytes, RetentionAge: int64(t.Config.RetentionAge),
				Lowest: t.Log.LowestOffset(), Next: t.Log.NextOffset(),
			}
			if err := t.Log.Sync(); err != nil {
				return nil, fmt.Errorf("fsm: adopt topic %q: %w", t.Name, err)
			}
		}
		if err := writeState(cfg.FS, cfg.Dir, &f.state); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("fsm: %w", err)
	default:
		if f.state, err = DecodeStateFile(b); err != nil {
			return nil, fmt.Errorf("fsm: %s: %w; if it is damaged, remove this server's data directory and start it again: it rejoins and copies the cluster's state from its peers",
				filepath.Join(cfg.Dir, stateFileName), err)
		}
	}
	for name := range f.state.Topics {
		t, err := cfg.Topics.Get(name)
		if err != nil {
			// Deleted by a command after the checkpoint, which Raft replays, or removed by hand.
			cfg.Logger.Warn("fsm: a topic in the metadata file has no directory; dropping it", slog.String("topic", name))
			f.forget(name)
			continue
		}
		want := f.state.Topics[name].Next
		if have := t.Log.NextOffset(); have < want {
			return nil, fmt.Errorf("fsm: topic %q ends at offset %d, before the %d of the checkpoint at index %d: records that were fsynced are gone",
				name, have, want, f.state.Index)
		}
		f.next[name] = want
	}
	f.checkpoint = f.state.Index
	f.applied.Store(f.state.Index)
	return f, nil
}

// Checkpoint fsyncs every topic and writes the metadata file at the last index applied, so that a
// restart finds the state it left without replaying the log. Raft must be shut down: no command may
// be applied meanwhile.
func (f *FSM) Checkpoint() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name := range f.state.Topics {
		t, err := f.cfg.Topics.Get(name)
		if err != nil {
			return fmt.Errorf("fsm: checkpoint: %w", err)
		}
		if err := t.Log.Sync(); err != nil {
			return fmt.Errorf("fsm: checkpoint: topic %q: %w", name, err)
		}
	}
	s := cloneState(&f.state)
	s.Index = f.applied.Load()
	for name, ts := range s.Topics {
		t, err := f.cfg.Topics.Get(name)
		if err != nil {
			return fmt.Errorf("fsm: checkpoint: %w", err)
		}
		ts.Lowest, ts.Next = t.Log.LowestOffset(), f.next[name]
		s.Topics[name] = ts
	}
	if err := writeState(f.cfg.FS, f.cfg.Dir, &s); err != nil {
		return err
	}
	f.checkpoint = s.Index
	return nil
}

// Applied returns the Raft index of the last log entry applied.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

// Offset returns the offset group committed on topic, and whether it committed one.
func (f *FSM) Offset(group, topic string) (uint64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	off, ok := f.state.Offsets[group][topic]
	return off, ok
}

// Apply applies one log entry.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed log entries in order. It writes no file but the topics': the
// metadata file waits for the next snapshot (see the package comment).
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, len(logs))
	f.mu.Lock()
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			results[i] = &Result{}
			continue
		}
		c, err := DecodeCommand(l.Data)
		if err != nil {
			f.cfg.Logger.Error("fsm: skipping an entry that is not a command", slog.Uint64("index", l.Index), slog.Any("error", err))
			results[i] = &Result{Err: err}
			continue
		}
		results[i] = f.apply(l.Index, &c)
	}
	last := logs[len(logs)-1].Index
	f.state.Index = last
	f.mu.Unlock()
	f.applied.Store(last)
	return results
}

// apply applies one command at index. A command the checkpoint holds changes nothing: its effects
// are in the state and, fsynced, in the topics. Any later one is applied in full, and only the
// append of a produce is skipped when the topic holds it.
func (f *FSM) apply(index uint64, c *Command) *Result {
	if index <= f.checkpoint {
		return &Result{}
	}
	switch c.Kind {
	case KindProduce:
		return f.produce(index, c)
	case KindCreateTopic:
		return f.createTopic(index, c)
	case KindDeleteTopic:
		return f.deleteTopic(c)
	case KindCommitOffset:
		return f.commitOffset(c)
	}
	return &Result{Err: fmt.Errorf("%w: kind %d", ErrMalformedCommand, c.Kind)}
}

// produce decides first, from the producers' table alone, whether the batch is new, a retry or out
// of sequence: on a replay the table is the checkpoint's, brought forward by the same commands, so
// the decision is the one first made whatever the topic lost. Only then does the topic's data say
// whether a new batch is stored already.
func (f *FSM) produce(index uint64, c *Command) *Result {
	if _, ok := f.state.Topics[c.Topic]; !ok {
		return &Result{Err: fmt.Errorf("%w: topic %q does not exist", ErrTopicNotFound, c.Topic)}
	}
	t, err := f.cfg.Topics.Get(c.Topic)
	if err != nil {
		return &Result{Err: err}
	}
	idempotent := c.ProducerID != 0
	if idempotent {
		p, ok := f.state.Producers[c.Topic][c.ProducerID]
		switch {
		case ok && c.Sequence+1 == p.Next:
			return &Result{BaseOffset: p.Base, Duplicate: true}
		case ok && c.Sequence != p.Next:
			return &Result{Err: fmt.Errorf("%w: producer %d sent sequence %d to topic %q, want %d (or %d again for a retry)",
				ErrSequence, c.ProducerID, c.Sequence, c.Topic, p.Next, p.Next-1)}
		}
	}
	base := f.next[c.Topic]
	switch have := t.Log.NextOffset(); {
	case base < have:
		// A replay of a batch the topic holds (or held, before retention deleted it).
		if err := checkStored(t, base, index); err != nil {
			return &Result{Err: err}
		}
	case base == have:
		values := make([][]byte, len(c.Records))
		for i, r := range c.Records {
			values[i] = codec.Stored(index, r)
		}
		if _, err = t.AppendAt(values, c.Time); err != nil {
			f.cfg.Logger.Error("fsm: append", slog.String("topic", c.Topic), slog.Uint64("index", index), slog.Any("error", err))
			return &Result{Err: err}
		}
	default:
		err := fmt.Errorf("fsm: topic %q ends at offset %d, but the command at index %d writes at %d", c.Topic, have, index, base)
		f.cfg.Logger.Error("fsm: append", slog.Any("error", err))
		return &Result{Err: err}
	}
	f.next[c.Topic] = base + uint64(len(c.Records))
	if !idempotent {
		return &Result{BaseOffset: base}
	}
	if f.state.Producers == nil {
		f.state.Producers = map[string]map[uint64]Producer{}
	}
	if f.state.Producers[c.Topic] == nil {
		f.state.Producers[c.Topic] = map[uint64]Producer{}
	}
	f.state.Producers[c.Topic][c.ProducerID] = Producer{Next: c.Sequence + 1, Base: base}
	return &Result{BaseOffset: base}
}

// checkStored checks that the record at offset of a topic, if retention has not deleted it, was
// written by the command at index: a replay that found another record there would otherwise
// answer with offsets of someone else's records.
func checkStored(t *topics.Topic, offset, index uint64) error {
	if offset < t.Log.LowestOffset() {
		return nil
	}
	rec, err := t.Log.Read(offset)
	if err != nil {
		return fmt.Errorf("fsm: topic %q: %w", t.Name, err)
	}
	got, err := codec.Index(rec.Value)
	if err != nil {
		return fmt.Errorf("fsm: topic %q: offset %d: %w", t.Name, offset, err)
	}
	if got != index {
		return fmt.Errorf("fsm: topic %q: offset %d holds a record of the command at index %d, not %d", t.Name, offset, got, index)
	}
	return nil
}

func (f *FSM) createTopic(index uint64, c *Command) *Result {
	if _, ok := f.state.Topics[c.Topic]; ok {
		return &Result{Err: fmt.Errorf("%w: topic %q already exists", ErrTopicExists, c.Topic)}
	}
	conf := topics.Config{RetentionBytes: c.RetentionBytes, RetentionAge: time.Duration(c.RetentionAge)}
	// A topic this very command created before a crash that the metadata file did not see exists
	// already, perhaps with records; the produces replayed after it say which they are.
	if _, err := f.cfg.Topics.Create(c.Topic, conf); err != nil && !errors.Is(err, topics.ErrExists) {
		return &Result{Err: err}
	}
	f.next[c.Topic] = 0
	f.state.Topics[c.Topic] = TopicState{Created: index, RetentionBytes: c.RetentionBytes, RetentionAge: c.RetentionAge}
	return &Result{}
}

func (f *FSM) deleteTopic(c *Command) *Result {
	if _, ok := f.state.Topics[c.Topic]; !ok {
		return &Result{Err: fmt.Errorf("%w: topic %q does not exist", ErrTopicNotFound, c.Topic)}
	}
	if err := f.cfg.Topics.Delete(c.Topic); err != nil && !errors.Is(err, topics.ErrNotFound) {
		return &Result{Err: err}
	}
	f.forget(c.Topic)
	return &Result{}
}

// forget drops a topic from the state.
func (f *FSM) forget(topic string) {
	delete(f.state.Topics, topic)
	delete(f.state.Producers, topic)
	delete(f.next, topic)
	for group, offs := range f.state.Offsets {
		delete(offs, topic)
		if len(offs) == 0 {
			delete(f.state.Offsets, group)
		}
	}
}

func (f *FSM) commitOffset(c *Command) *Result {
	if _, ok := f.state.Topics[c.Topic]; !ok {
		return &Result{Err: fmt.Errorf("%w: topic %q does not exist", ErrTopicNotFound, c.Topic)}
	}
	if err := topics.ValidateName(c.Group); err != nil {
		return &Result{Err: err}
	}
	t, err := f.cfg.Topics.Get(c.Topic)
	if err != nil {
		return &Result{Err: err}
	}
	if next := t.Log.NextOffset(); c.Offset > next {
		return &Result{Err: fmt.Errorf("%w: offset %d is past the end of topic %q, whose next offset is %d", ErrOffsetPastEnd, c.Offset, c.Topic, next)}
	}
	if f.state.Offsets == nil {
		f.state.Offsets = map[string]map[string]uint64{}
	}
	if f.state.Offsets[c.Group] == nil {
		f.state.Offsets[c.Group] = map[string]uint64{}
	}
	f.state.Offsets[c.Group][c.Topic] = c.Offset
	return &Result{}
}

// Snapshot captures the metadata and each topic's offsets. Raft calls it on the FSM goroutine, so
// no command is being applied.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := cloneState(&f.state)
	s.Index = f.applied.Load()
	var logs []*storelog.Log
	for name, ts := range s.Topics {
		t, err := f.cfg.Topics.Get(name)
		if err != nil {
			return nil, fmt.Errorf("fsm: snapshot: %w", err)
		}
		ts.Lowest, ts.Next = t.Log.LowestOffset(), t.Log.NextOffset()
		s.Topics[name] = ts
		logs = append(logs, t.Log)
	}
	return &snapshot{state: s, logs: logs, fs: f.cfg.FS, dir: f.cfg.Dir}, nil
}

func cloneState(s *State) State {
	c := State{Version: s.Version, Index: s.Index, Topics: make(map[string]TopicState, len(s.Topics))}
	for k, v := range s.Topics {
		c.Topics[k] = v
	}
	if s.Offsets != nil {
		c.Offsets = make(map[string]map[string]uint64, len(s.Offsets))
		for g, offs := range s.Offsets {
			c.Offsets[g] = make(map[string]uint64, len(offs))
			for t, o := range offs {
				c.Offsets[g][t] = o
			}
		}
	}
	if s.Producers != nil {
		c.Producers = make(map[string]map[uint64]Producer, len(s.Producers))
		for t, ps := range s.Producers {
			c.Producers[t] = make(map[uint64]Producer, len(ps))
			for id, p := range ps {
				c.Producers[t][id] = p
			}
		}
	}
	return c
}

type snapshot struct {
	state State
	logs  []*storelog.Log
	fs    storelog.FS
	dir   string
}

// Persist makes the records the snapshot covers durable, then the metadata file (the checkpoint a
// restart replays from, which must never name more than the topics hold: see the package comment),
// since Raft drops its log up to the snapshot once it is stored; then it writes the metadata to the
// sink.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	err := func() error {
		for _, l := range s.logs {
			if err := l.Sync(); err != nil && !errors.Is(err, storelog.ErrClosed) {
				return fmt.Errorf("fsm: snapshot: sync topic: %w", err)
			}
		}
		if err := writeState(s.fs, s.dir, &s.state); err != nil {
			return err
		}
		b, err := json.Marshal(&s.state)
		if err != nil {
			return err
		}
		_, err = sink.Write(b)
		return err
	}()
	if err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// Restore replaces the state with a snapshot's, taken by another server: topics it does not name
// are deleted, topics it names are created, and each gets the records it lacks from a peer. Raft
// calls it on the FSM goroutine.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	s, err := DecodeState(b)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.cfg.Topics.List() {
		want, ok := s.Topics[t.Name]
		if have, known := f.state.Topics[t.Name]; ok && known && have.Created == want.Created {
			continue
		}
		if err := f.cfg.Topics.Delete(t.Name); err != nil && !errors.Is(err, topics.ErrNotFound) {
			return fmt.Errorf("fsm: restore: %w", err)
		}
		f.forget(t.Name)
	}
	for name, want := range s.Topics {
		t, err := f.cfg.Topics.Get(name)
		if err != nil {
			conf := topics.Config{RetentionBytes: want.RetentionBytes, RetentionAge: time.Duration(want.RetentionAge)}
			if t, err = f.cfg.Topics.Create(name, conf); err != nil {
				return fmt.Errorf("fsm: restore: %w", err)
			}
		}
		if err := f.catchUp(t, want); err != nil {
			return err
		}
		// The metadata file written below is a checkpoint: what it names must be durable first.
		if err := t.Log.Sync(); err != nil {
			return fmt.Errorf("fsm: restore %q: %w", name, err)
		}
		f.next[name] = want.Next
	}
	if err := writeState(f.cfg.FS, f.cfg.Dir, &s); err != nil {
		return err
	}
	f.state = s
	f.checkpoint = s.Index
	f.applied.Store(s.Index)
	f.cfg.Logger.Info("fsm: restored a snapshot", slog.Uint64("index", s.Index), slog.Int("topics", len(s.Topics)))
	return nil
}

// catchUp makes a topic hold the offsets a snapshot names: records past them are cut, a log that
// ends before the snapshot's lowest offset starts again there, and missing records are copied.
func (f *FSM) catchUp(t *topics.Topic, want TopicState) error {
	next := t.Log.NextOffset()
	switch {
	case next > want.Next && want.Next > t.Log.LowestOffset():
		if err := t.Log.TruncateAfter(want.Next - 1); err != nil {
			return fmt.Errorf("fsm: restore %q: %w", t.Name, err)
		}
		return nil
	case next > want.Next || next < want.Lowest:
		if err := t.Log.Reset(want.Lowest); err != nil {
			return fmt.Errorf("fsm: restore %q: %w", t.Name, err)
		}
		next = want.Lowest
	}
	if next == want.Next {
		return nil
	}
	if f.cfg.Fetch == nil {
		return fmt.Errorf("fsm: restore %q: records [%d, %d) are missing and there is no peer to copy them from", t.Name, next, want.Next)
	}
	err := f.cfg.Fetch(context.Background(), t.Name, next, want.Next, func(recs Records) error {
		for len(recs) > 0 {
			if recs[0].Offset != t.Log.NextOffset() {
				return fmt.Errorf("fsm: restore %q: peer sent offset %d, want %d", t.Name, recs[0].Offset, t.Log.NextOffset())
			}
			// One append per run of records of one time: one produce batch, as the peer wrote it.
			n := 1
			for n < len(recs) && recs[n].Time == recs[0].Time {
				n++
			}
			values := make([][]byte, n)
			for i := range values {
				values[i] = recs[i].Value
			}
			if _, err := t.AppendAt(values, recs[0].Time); err != nil {
				return err
			}
			recs = recs[n:]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fsm: restore %q: copy [%d, %d) from a peer: %w", t.Name, next, want.Next, err)
	}
	f.cfg.Logger.Info("fsm: copied records from a peer", slog.String("topic", t.Name), slog.Uint64("from", next), slog.Uint64("to", want.Next))
	return nil
}

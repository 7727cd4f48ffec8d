// Package topics is the registry of a server's topics: one storelog.Log per topic, in
// <dir>/<name>/log, with the topic's configuration beside it in <dir>/<name>/topic.json.
//
// Creating a topic writes its directory under a temporary name and renames it into place, and
// deleting one renames it away before removing it, so a crash leaves a topic wholly there or wholly
// gone; Open sweeps up what a crash left behind.
package topics

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dislog/dislog/storelog"
)

var (
	// ErrNotFound is returned for a topic that does not exist.
	ErrNotFound = errors.New("topics: topic not found")
	// ErrExists is returned by Create for a topic that exists.
	ErrExists = errors.New("topics: topic exists")
	// ErrInvalidName is returned for a name that breaks the naming rules (see ValidateName).
	ErrInvalidName = errors.New("topics: invalid name")
	// ErrInvalidConfig is returned by Create for a negative retention.
	ErrInvalidConfig = errors.New("topics: invalid config")
)

// MaxNameLength is the longest topic (and consumer group) name.
const MaxNameLength = 249

// ValidateName checks a topic or consumer group name: 1 to 249 characters of ASCII letters, digits,
// '.', '_' and '-', and not "." or "..". Names are directory names, so the rules keep them safe as
// paths on every file system; they are Kafka's.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > MaxNameLength:
		return fmt.Errorf("%w: %d characters, at most %d", ErrInvalidName, len(name), MaxNameLength)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	// By rune, so that the error quotes the character given ('é'), not its first byte ('Ã'), at
	// its position in characters.
	for i, c := range []rune(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has %q at character %d; use ASCII letters, digits, '.', '_' and '-'", ErrInvalidName, name, c, i+1)
		}
	}
	return nil
}

// Config is a topic's retention. Zero keeps everything.
type Config struct {
	RetentionBytes int64         `json:"retention_bytes"`
	RetentionAge   time.Duration `json:"retention_age_ns"`
}

// configFile is the JSON in topic.json.
type configFile struct {
	Version int `json:"version"`
	Config
}

const (
	configFileName = "topic.json"
	logDirName     = "log"
	configVersion  = 1
	// Temporary names start with '.', which ValidateName allows only as part of longer names; the
	// suffixes below make them impossible topic names all the same ('+' is not allowed).
	creatingPrefix = ".creating+"
	deletingPrefix = ".deleting+"
)

// Topic is an open topic.
type Topic struct {
	Name   string
	Config Config
	Log    *storelog.Log

	deleted atomic.Bool
	// at, when not 0, is the time (Unix nanoseconds) the log's clock reads: AppendAt sets it so that
	// every replica stamps a batch with the time its leader gave it.
	at atomic.Int64
}

func (t *Topic) now() time.Time {
	if ns := t.at.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Now()
}

// AppendAt appends values as one batch stamped with at (Unix nanoseconds; storelog never lets times
// go backwards, so a later time of an earlier batch wins). It must not run concurrently with another
// append to the topic: a replicated server appends from its FSM alone.
func (t *Topic) AppendAt(values [][]byte, at int64) (uint64, error) {
	t.at.Store(at)
	defer t.at.Store(0)
	return t.Log.AppendBatch(values)
}

// Deleted reports whether the topic was deleted: its log is closed, and calls that got ErrClosed
// from it should say the topic is gone.
func (t *Topic) Deleted() bool { return t.deleted.Load() }

// Options configure the logs of every topic.
type Options struct {
	// Log is the template of every topic's storelog options; the registry fills in the retention
	// and the logger.
	Log storelog.Options
	// Logger receives topic creations and deletions, and each log's recovery and retention events.
	Logger *slog.Logger
}

// Registry holds a server's topics. It is safe for concurrent use.
type Registry struct {
	dir  string
	opts Options

	// adminMu serializes Create and Delete, which do file work, so that mu is held only to change
	// the map and lookups never wait for an fsync.
	adminMu sync.Mutex
	mu      sync.RWMutex
	topics  map[string]*Topic
}

// Open opens every topic under dir, creating dir if need be.
func Open(dir string, opts Options) (*Registry, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Log.FS == nil {
		opts.Log.FS = storelog.OSFS()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("topics: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("topics: %w", err)
	}
	r := &Registry{dir: dir, opts: opts, topics: make(map[string]*Topic)}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, creatingPrefix) || strings.HasPrefix(name, deletingPrefix) {
			opts.Logger.Info("topics: removing what an interrupted create or delete left", slog.String("dir", name))
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				r.Close()
				return nil, fmt.Errorf("topics: %w", err)
			}
			continue
		}
		if !e.IsDir() || ValidateName(name) != nil {
			opts.Logger.Warn("topics: ignoring a stray file in the topics directory", slog.String("name", name))
			continue
		}
		t, err := r.openTopic(name)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.topics[name] = t
	}
	return r, nil
}

func (r *Registry) openTopic(name string) (*Topic, error) {
	dir := filepath.Join(r.dir, name)
	b, err := os.ReadFile(filepath.Join(dir, configFileName))
	if err != nil {
		return nil, fmt.Errorf("topics: topic %q: %w", name, err)
	}
	var cf configFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return nil, fmt.Errorf("topics: topic %q: %s: %w", name, configFileName, err)
	}
	if cf.Version != configVersion {
		return nil, fmt.Errorf("topics: topic %q: %s has version %d, this build reads %d", name, configFileName, cf.Version, configVersion)
	}
	lopts := r.opts.Log
	lopts.RetentionBytes = cf.RetentionBytes
	lopts.RetentionAge = cf.RetentionAge
	if cf.RetentionAge > 0 {
		// Retention drops whole sealed segments: rolling at an eighth of the age keeps records for
		// between the retention age and 1⅛ of it.
		lopts.MaxSegmentAge = max(cf.RetentionAge/8, time.Second)
	}
	lopts.Logger = r.opts.Logger.With(slog.String("topic", name))
	t := &Topic{Name: name, Config: cf.Config}
	lopts.Clock = t.now
	l, err := storelog.Open(filepath.Join(dir, logDirName), lopts)
	if err != nil {
		return nil, fmt.Errorf("topics: topic %q: %w", name, err)
	}
	t.Log = l
	return t, nil
}

// Get returns the topic called name.
func (r *Registry) Get(name string) (*Topic, error) {
	r.mu.RLock()
	t, ok := r.topics[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return t, nil
}

// List returns the topics sorted by name.
func (r *Registry) List() []*Topic {
	r.mu.RLock()
	ts := make([]*Topic, 0, len(r.topics))
	for _, t := range r.topics {
		ts = append(ts, t)
	}
	r.mu.RUnlock()
	slices.SortFunc(ts, func(a, b *Topic) int { return strings.Compare(a.Name, b.Name) })
	return ts
}

// Create makes an empty topic, durably, and opens it.
func (r *Registry) Create(name string, c Config) (*Topic, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if c.RetentionBytes < 0 || c.RetentionAge < 0 {
		return nil, fmt.Errorf("%w: retention must not be negative", ErrInvalidConfig)
	}
	r.adminMu.Lock()
	defer r.adminMu.Unlock()
	if _, err := r.Get(name); err == nil {
		return nil, fmt.Errorf("%w: %q", ErrExists, name)
	}
	tmp := filepath.Join(r.dir, creatingPrefix+name)
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("topics: create %q: %w", name, err)
	}
	fs := r.opts.Log.FS
	if err := fs.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("topics: create %q: %w", name, err)
	}
	b, err := json.Marshal(configFile{Version: configVersion, Config: c})
	if err != nil {
		return nil, err
	}
	final := filepath.Join(r.dir, name)
	// The topic appears whole or not at all: its directory is made under a temporary name, with the
	// configuration durable in it, then renamed into place and the rename made durable.
	err = storelog.WriteFileAtomic(fs, filepath.Join(tmp, configFileName), b, 0o644)
	if err == nil {
		err = fs.Rename(tmp, final)
	}
	if err == nil {
		err = fs.SyncDir(r.dir)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("topics: create %q: %w", name, err)
	}
	t, err := r.openTopic(name)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.topics[name] = t
	r.mu.Unlock()
	r.opts.Logger.Info("topic created", slog.String("topic", name),
		slog.Int64("retention_bytes", c.RetentionBytes), slog.Duration("retention_age", c.RetentionAge))
	return t, nil
}

// Delete closes a topic and removes it from disk. Calls on it in progress finish first (appends) or
// fail with storelog.ErrClosed (reads, waits), after which Topic.Deleted is true.
func (r *Registry) Delete(name string) error {
	r.adminMu.Lock()
	defer r.adminMu.Unlock()
	r.mu.Lock()
	t, ok := r.topics[name]
	if ok {
		delete(r.topics, name)
		t.deleted.Store(true)
	}
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if err := t.Log.Close(); err != nil && !errors.Is(err, storelog.ErrClosed) {
		r.opts.Logger.Warn("topics: closing a deleted topic's log", slog.String("topic", name), slog.Any("error", err))
	}
	gone := filepath.Join(r.dir, fmt.Sprintf("%s%s+%d", deletingPrefix, name, time.Now().UnixNano()))
	if err := r.opts.Log.FS.Rename(filepath.Join(r.dir, name), gone); err != nil {
		return fmt.Errorf("topics: delete %q: %w", name, err)
	}
	if err := r.opts.Log.FS.SyncDir(r.dir); err != nil {
		return fmt.Errorf("topics: delete %q: %w", name, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		// The topic is gone for good: the next Open sweeps the rest.
		r.opts.Logger.Warn("topics: removing a deleted topic's files", slog.String("topic", name), slog.Any("error", err))
	}
	r.opts.Logger.Info("topic deleted", slog.String("topic", name))
	return nil
}

// Close closes every topic's log.
func (r *Registry) Close() error {
	r.adminMu.Lock()
	defer r.adminMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for name, t := range r.topics {
		if err := t.Log.Close(); err != nil && !errors.Is(err, storelog.ErrClosed) {
			errs = append(errs, fmt.Errorf("topics: close %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

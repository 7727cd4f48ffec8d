// Package offsets keeps the offsets consumer groups commit: per group, the offset it will read next
// on each topic. Each group is one small JSON file, <dir>/<group>.json, replaced whole and durably
// on every commit (temporary file, fsync, rename, directory fsync), so a crash leaves the last
// committed state or the one before it, never a mix.
package offsets

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

const (
	fileSuffix  = ".json"
	tmpSuffix   = ".tmp"
	fileVersion = 1
)

// file is the JSON of one group's file.
type file struct {
	Version int               `json:"version"`
	Offsets map[string]uint64 `json:"offsets"`
}

// Store holds every group's offsets. It is safe for concurrent use; commits of different groups
// run in parallel, commits of one group one after the other.
type Store struct {
	dir string

	mu     sync.Mutex // guards groups
	groups map[string]*group
}

type group struct {
	name string
	mu   sync.Mutex // serializes writes of the group's file
	// offsets is replaced, never changed in place, so a reader may use a map it loaded.
	offsets map[string]uint64
}

// Open loads the groups in dir, creating dir if need be. Group names are the caller's to validate:
// they become file names.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("offsets: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("offsets: %w", err)
	}
	s := &Store{dir: dir, groups: make(map[string]*group)}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), tmpSuffix) {
			// A commit that crashed before its rename: the file it would have replaced is intact.
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return nil, fmt.Errorf("offsets: %w", err)
			}
			continue
		}
		name, ok := strings.CutSuffix(e.Name(), fileSuffix)
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("offsets: %w", err)
		}
		var f file
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("offsets: group %q: %w", name, err)
		}
		if f.Version != fileVersion {
			return nil, fmt.Errorf("offsets: group %q: version %d, this build reads %d", name, f.Version, fileVersion)
		}
		if f.Offsets == nil {
			f.Offsets = map[string]uint64{}
		}
		s.groups[name] = &group{name: name, offsets: f.Offsets}
	}
	return s, nil
}

func (s *Store) group(name string, create bool) *group {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[name]
	if g == nil && create {
		g = &group{name: name, offsets: map[string]uint64{}}
		s.groups[name] = g
	}
	return g
}

// Commit records, durably, that group will read offset next on topic.
func (s *Store) Commit(groupName, topic string, offset uint64) error {
	g := s.group(groupName, true)
	g.mu.Lock()
	defer g.mu.Unlock()
	next := maps.Clone(g.offsets)
	next[topic] = offset
	if err := s.write(g.name, next); err != nil {
		return err
	}
	s.mu.Lock()
	g.offsets = next
	s.mu.Unlock()
	return nil
}

// Fetch returns the offset group committed on topic, and whether it committed one.
func (s *Store) Fetch(groupName, topic string) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[groupName]
	if g == nil {
		return 0, false
	}
	off, ok := g.offsets[topic]
	return off, ok
}

// DeleteTopic forgets every group's offset on topic, so that a topic created again under the same
// name starts with none.
func (s *Store) DeleteTopic(topic string) error {
	s.mu.Lock()
	var groups []*group
	for _, g := range s.groups {
		if _, ok := g.offsets[topic]; ok {
			groups = append(groups, g)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, g := range groups {
		g.mu.Lock()
		next := maps.Clone(g.offsets)
		delete(next, topic)
		err := s.write(g.name, next)
		if err == nil {
			s.mu.Lock()
			g.offsets = next
			s.mu.Unlock()
		}
		g.mu.Unlock()
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// write replaces a group's file durably.
func (s *Store) write(name string, offsets map[string]uint64) error {
	b, err := json.Marshal(file{Version: fileVersion, Offsets: offsets})
	if err != nil {
		return err
	}
	path := filepath.Join(s.dir, name+fileSuffix)
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("offsets: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("offsets: commit group %q: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dislog/dislog/server/internal/fsm"
	"github.com/dislog/dislog/storelog"
)

// layoutFileName names the file at the top of a data directory that holds its layout version
// (docs/ARCHITECTURE.md, "Data directory").
const layoutFileName = "LAYOUT"

// layout1Marks are what a data directory of layout 1 (one Raft group for every topic, before
// partitions) holds at its top.
var layout1Marks = []string{"raft", "topics", "fsm.json"}

// checkLayout makes sure dir is a data directory of this build's layout: it writes the layout file
// into a directory that holds no data yet, and refuses one of another layout with an error that
// names it. (No migration from layout 1 exists: it predates the first release.)
func checkLayout(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("server: data directory: %w", err)
	}
	path := filepath.Join(dir, layoutFileName)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		for _, m := range layout1Marks {
			if _, err := os.Stat(filepath.Join(dir, m)); err == nil {
				return fmt.Errorf("server: the data directory %s has layout 1 (it holds %s and no %s file), from a build before partitions; this build reads layout %d only, and there is no migration: move the directory aside and start on an empty one (the server copies the cluster's metadata from its peers; records of layout 1 are not carried over)",
					dir, m, layoutFileName, fsm.Layout)
			}
		}
		content := []byte(strconv.Itoa(fsm.Layout) + "\n")
		if err := storelog.WriteFileAtomic(storelog.OSFS(), path, content, 0o644); err != nil {
			return fmt.Errorf("server: data directory: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("server: data directory: %w", err)
	}
	v, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil {
		return fmt.Errorf("server: the layout file %s holds %q, not a layout version", path, b)
	}
	if v != fsm.Layout {
		return fmt.Errorf("server: the data directory %s has layout %d; this build reads layout %d only", dir, v, fsm.Layout)
	}
	return nil
}

package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestLayout(t *testing.T) {
	t.Run("an empty directory gets the layout file, and opens again", func(t *testing.T) {
		is := is.New(t)
		dir := t.TempDir()
		is.NoErr(checkLayout(dir))
		b, err := os.ReadFile(filepath.Join(dir, layoutFileName))
		is.NoErr(err)
		is.Equal(string(b), "2\n")
		is.NoErr(checkLayout(dir))
	})
	t.Run("a directory of layout 1 is refused, with its layout named", func(t *testing.T) {
		is := is.New(t)
		dir := t.TempDir()
		is.NoErr(os.MkdirAll(filepath.Join(dir, "raft", "log"), 0o755))
		err := checkLayout(dir)
		is.True(err != nil)
		is.True(strings.Contains(err.Error(), "layout 1"))
		_, err = os.Stat(filepath.Join(dir, layoutFileName))
		is.True(os.IsNotExist(err)) // nothing written
	})
	t.Run("another layout version is refused", func(t *testing.T) {
		is := is.New(t)
		dir := t.TempDir()
		is.NoErr(os.WriteFile(filepath.Join(dir, layoutFileName), []byte("3\n"), 0o644))
		err := checkLayout(dir)
		is.True(err != nil)
		is.True(strings.Contains(err.Error(), "layout 3"))
	})
}

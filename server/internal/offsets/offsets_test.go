package offsets

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/matryer/is"
)

func TestOffsetsAreKeptPerGroupAndTopicAcrossReopens(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	s, err := Open(dir)
	is.NoErr(err)
	_, ok := s.Fetch("g", "t")
	is.True(!ok)
	is.NoErr(s.Commit("g", "t", 5))
	is.NoErr(s.Commit("g", "t", 7))
	is.NoErr(s.Commit("g", "u", 1))
	is.NoErr(s.Commit("h", "t", 0))
	is.NoErr(s.DeleteTopic("u"))
	// A commit that crashed before its rename leaves a temporary file and the old file intact.
	is.NoErr(os.WriteFile(filepath.Join(dir, "g.json.tmp"), []byte("{half"), 0o644))

	s, err = Open(dir)
	is.NoErr(err)
	for _, tc := range []struct {
		group, topic string
		want         uint64
		ok           bool
	}{
		{"g", "t", 7, true},
		{"g", "u", 0, false},
		{"h", "t", 0, true},
		{"x", "t", 0, false},
	} {
		off, ok := s.Fetch(tc.group, tc.topic)
		is.Equal(ok, tc.ok)
		is.Equal(off, tc.want)
	}
	_, err = os.Stat(filepath.Join(dir, "g.json.tmp"))
	is.True(os.IsNotExist(err))
}

func TestACorruptGroupFileIsAnError(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	is.NoErr(os.WriteFile(filepath.Join(dir, "g.json"), []byte("{not json"), 0o644))
	_, err := Open(dir)
	is.True(err != nil)
}

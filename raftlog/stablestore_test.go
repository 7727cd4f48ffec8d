package raftlog

import (
	"errors"
	"testing"

	"github.com/matryer/is"
)

func TestStableStore(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	s, err := OpenStableStore(dir, Options{})
	is.NoErr(err)

	v, err := s.Get([]byte("missing"))
	is.NoErr(err)
	is.True(v == nil) // a missing key is nil, nil
	n, err := s.GetUint64([]byte("missing"))
	is.NoErr(err)
	is.Equal(n, uint64(0)) // and 0, nil as a uint64

	is.NoErr(s.Set([]byte("LastVoteCand"), []byte("node-2")))
	is.NoErr(s.SetUint64([]byte("CurrentTerm"), 42))
	is.NoErr(s.Set([]byte("empty"), nil))
	is.NoErr(s.Close())

	s, err = OpenStableStore(dir, Options{})
	is.NoErr(err)
	defer s.Close()
	v, err = s.Get([]byte("LastVoteCand"))
	is.NoErr(err)
	is.Equal(string(v), "node-2")
	n, err = s.GetUint64([]byte("CurrentTerm"))
	is.NoErr(err)
	is.Equal(n, uint64(42))
	_, err = s.GetUint64([]byte("LastVoteCand"))
	is.True(errors.Is(err, ErrBadUint64))

	is.NoErr(s.SetUint64([]byte("CurrentTerm"), 43)) // overwrites
	n, err = s.GetUint64([]byte("CurrentTerm"))
	is.NoErr(err)
	is.Equal(n, uint64(43))
}

func TestOpenPutsBothStoresInOneDirectory(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	is.NoErr(err)
	store(t, s, 1, 3)
	is.NoErr(s.SetUint64([]byte("CurrentTerm"), 2))
	is.NoErr(s.Close())

	s, err = Open(dir, Options{})
	is.NoErr(err)
	defer s.Close()
	checkRange(t, s, 1, 3)
	n, err := s.GetUint64([]byte("CurrentTerm"))
	is.NoErr(err)
	is.Equal(n, uint64(2))
}

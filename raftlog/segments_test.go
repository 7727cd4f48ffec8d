package raftlog

import (
	"testing"

	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

func TestSegmentsGiveHeadCutsOnFileBoundaries(t *testing.T) {
	is := is.New(t)
	s, err := OpenLogStore(t.TempDir(), Options{MaxSegmentRecords: 4})
	is.NoErr(err)
	defer s.Close()
	for i := uint64(1); i <= 10; i++ {
		is.NoErr(s.StoreLog(&raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte("x")}))
	}
	segs, err := s.Segments()
	is.NoErr(err)
	is.Equal(len(segs), 3) // [1,5) [5,9) [9,11)
	is.Equal(segs[0].Base, uint64(1))
	is.Equal(segs[1].Next, uint64(9))
	is.True(segs[2].Active)
	is.Equal(s.Stats().Segments, 3)

	is.NoErr(s.DeleteRange(1, segs[1].Next-1))
	first, _ := s.FirstIndex()
	is.Equal(first, uint64(9))
	is.Equal(s.Stats().Segments, 1)
	segs, err = s.Segments()
	is.NoErr(err)
	is.Equal(len(segs), 1)
}

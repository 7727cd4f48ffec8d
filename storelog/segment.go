package storelog

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tysonmote/gommap"
)

// segment is one store file and its index. The active segment (the log's last) takes appends through
// a read-write index mapping sized for MaxSegmentRecords; sealed segments are read-only and are opened
// on first use, so that Open costs a directory listing and a stat per segment.
//
// Readers hold Log.mu for reading while they use a segment's mappings; anything that unmaps holds it
// for writing. Fields below openMu are set once by open; count, size and the times are the writer's
// (they change only under Log.wmu), and readers never read them: they bound their reads by the log's
// published next offset instead.
type segment struct {
	base      uint64
	storePath string
	indexPath string

	openMu   sync.Mutex
	ready    atomic.Bool // opened, for readers' lock-free check
	opened   bool
	active   bool
	store    File
	index    File
	storeMap gommap.MMap
	indexMap gommap.MMap

	// id and seed come from the store header (set by open): every frame's checksum starts from seed.
	id   uint64
	seed uint32

	count uint64
	size  uint32 // where the next frame goes: the end of the last record
	// synced is how far the store is known to be fsynced; frames record it (the torn-tail rule in
	// doc.go). allocated is the store file's size: bytes in [size, allocated) are zeros written
	// ahead of need, so that an append's fdatasync does not commit a size change.
	synced    uint32
	allocated int64
	storeSize int64 // a sealed segment's store size, set by Open or by seal
	firstTime int64
	lastTime  int64
	// firstKey is the key of the segment's first record (its index entry 0, which head truncation
	// does not remove), for SearchKey's choice of segment. It is set before that record is published
	// (by Open, or by the write of the record) and never changes after, but readers load it without
	// the writer's lock.
	firstKey atomic.Uint64
}

func segmentPaths(dir string, base uint64) (store, index string) {
	name := fmt.Sprintf("%0*d", baseDigits, base)
	return filepath.Join(dir, name+storeSuffix), filepath.Join(dir, name+indexSuffix)
}

func newSegment(dir string, base uint64) *segment {
	store, index := segmentPaths(dir, base)
	return &segment{base: base, storePath: store, indexPath: index}
}

// parseSegmentName returns the base offset and suffix of a segment file name.
func parseSegmentName(name string) (base uint64, suffix string, ok bool) {
	for _, suffix := range []string{storeSuffix, indexSuffix} {
		digits, found := strings.CutSuffix(name, suffix)
		if !found || len(digits) != baseDigits {
			continue
		}
		for _, c := range digits {
			if c < '0' || c > '9' {
				return 0, "", false
			}
		}
		base, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			return 0, "", false
		}
		return base, suffix, true
	}
	return 0, "", false
}

// openSealed maps a sealed segment read-only. Safe to call concurrently; only the first call works.
func (s *segment) openSealed(fs FS) error {
	if s.ready.Load() {
		return nil
	}
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if s.opened {
		return nil
	}
	store, err := fs.OpenFile(s.storePath, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("storelog: open segment %d: %w", s.base, err)
	}
	index, err := fs.OpenFile(s.indexPath, os.O_RDONLY, 0)
	if err != nil {
		store.Close()
		return fmt.Errorf("storelog: open segment %d: %w", s.base, err)
	}
	storeMap, err := mapFile(store, gommap.PROT_READ)
	if err == nil {
		s.indexMap, err = mapFile(index, gommap.PROT_READ)
		if err != nil {
			unmap(storeMap)
		}
	}
	if err != nil {
		store.Close()
		index.Close()
		return fmt.Errorf("storelog: map segment %d: %w", s.base, err)
	}
	if err := s.readHeader(storeMap); err != nil {
		unmap(storeMap)
		unmap(s.indexMap)
		s.indexMap = nil
		store.Close()
		index.Close()
		return err
	}
	s.store, s.index, s.storeMap = store, index, storeMap
	s.opened = true
	s.ready.Store(true)
	return nil
}

// mapFile maps a whole file, or returns a nil mapping for an empty one (mmap refuses length 0).
func mapFile(f File, prot gommap.ProtFlags) (gommap.MMap, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() == 0 {
		return nil, nil
	}
	return gommap.MapRegion(f.Fd(), 0, fi.Size(), prot, gommap.MAP_SHARED)
}

func unmap(m gommap.MMap) error {
	if m == nil {
		return nil
	}
	return m.UnsafeUnmap()
}

// readHeader checks the store header at the start of m and takes the segment's id from it.
func (s *segment) readHeader(m []byte) error {
	h, err := decodeStoreHeader(m)
	if err == nil && h.base != s.base {
		err = corruptf("store header names segment %d", h.base)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.storePath, err)
	}
	s.id, s.seed = h.id, frameSeed(h.id)
	return nil
}

// openActive opens (creating if need be) the segment's files for appending: the index is grown to
// hold capacity entries and mapped read-write, the store mapped read-only at maxBytes so that records
// appended later are readable through the same mapping. A store file without a header, or whose
// header and all other bytes are zeros (made, but never synced before a crash), gets a new header,
// fsynced. count and size are what the caller has established the files hold.
func (s *segment) openActive(fs FS, capacity, maxBytes uint32) error {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if s.opened {
		if err := s.closeFilesLocked(); err != nil {
			return err
		}
	}
	store, err := fs.OpenFile(s.storePath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("storelog: open segment %d: %w", s.base, err)
	}
	index, err := fs.OpenFile(s.indexPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		store.Close()
		return fmt.Errorf("storelog: open segment %d: %w", s.base, err)
	}
	fail := func(err error) error {
		store.Close()
		index.Close()
		return fmt.Errorf("storelog: open segment %d: %w", s.base, err)
	}
	ifi, err := index.Stat()
	if err != nil {
		return fail(err)
	}
	indexBytes := max(int64(capacity)*indexEntrySize, ifi.Size()/indexEntrySize*indexEntrySize)
	if ifi.Size() != indexBytes {
		if err := index.Truncate(indexBytes); err != nil {
			return fail(err)
		}
	}
	sfi, err := store.Stat()
	if err != nil {
		return fail(err)
	}
	storeBytes := max(int64(maxBytes), sfi.Size())
	indexMap, err := gommap.MapRegion(index.Fd(), 0, indexBytes, gommap.PROT_READ|gommap.PROT_WRITE, gommap.MAP_SHARED)
	if err != nil {
		return fail(err)
	}
	storeMap, err := gommap.MapRegion(store.Fd(), 0, storeBytes, gommap.PROT_READ, gommap.MAP_SHARED)
	if err != nil {
		unmap(indexMap)
		return fail(err)
	}
	size := sfi.Size()
	if size < storeHeaderSize || allZero(storeMap[:size]) {
		h := storeHeader{base: s.base, id: newSegmentID()}
		err := store.Truncate(0)
		if err == nil {
			_, err = store.WriteAt(encodeStoreHeader(h), 0)
		}
		if err == nil {
			err = store.Sync()
		}
		if err != nil {
			unmap(indexMap)
			unmap(storeMap)
			return fail(err)
		}
		size = storeHeaderSize
		s.size, s.synced = storeHeaderSize, storeHeaderSize
	}
	if err := s.readHeader(storeMap); err != nil {
		unmap(indexMap)
		unmap(storeMap)
		store.Close()
		index.Close()
		return err
	}
	s.store, s.index, s.storeMap, s.indexMap = store, index, storeMap, indexMap
	s.allocated = size
	s.opened, s.active = true, true
	s.ready.Store(true)
	return nil
}

// capacity is how many entries the active index mapping holds.
func (s *segment) capacity() uint64 { return uint64(len(s.indexMap) / indexEntrySize) }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// trim cuts the zeros written ahead of need from the store, so that a sealed or closed store ends
// at its last record. The caller syncs.
func (s *segment) trim() error {
	if s.allocated > int64(s.size) {
		if err := s.store.Truncate(int64(s.size)); err != nil {
			return err
		}
		s.allocated = int64(s.size)
	}
	return nil
}

// seal makes the active segment read-only on disk: store and index fsynced, the store cut to its
// last record and the index to exactly one entry per record. After seal the segment is trusted by
// Open.
func (s *segment) seal() error {
	if err := s.trim(); err != nil {
		return err
	}
	if err := s.store.Sync(); err != nil {
		return err
	}
	if err := s.indexMap.Sync(gommap.MS_SYNC); err != nil {
		return err
	}
	if err := s.index.Truncate(int64(s.count) * indexEntrySize); err != nil {
		return err
	}
	if err := s.index.Sync(); err != nil {
		return err
	}
	s.active = false
	s.storeSize = int64(s.size)
	return nil
}

// sealedSize is a sealed segment's store size in bytes.
func (s *segment) sealedSize() int64 { return s.storeSize }

// syncActive makes the active segment's store and index durable without sealing it, for a clean
// close. The zeros written ahead stay, for the next Open to append over.
func (s *segment) syncActive() error {
	if err := s.store.Sync(); err != nil {
		return err
	}
	if err := s.indexMap.Sync(gommap.MS_SYNC); err != nil {
		return err
	}
	return s.index.Sync()
}

// entry returns index entry i, or ErrCorrupt if the index does not reach it.
func (s *segment) entry(i uint64) (indexEntry, error) {
	at := i * indexEntrySize
	if at+indexEntrySize > uint64(len(s.indexMap)) {
		return indexEntry{}, corruptf("segment %d: index holds %d entries, entry %d wanted", s.base, len(s.indexMap)/indexEntrySize, i)
	}
	return decodeIndexEntry(s.indexMap[at:]), nil
}

// frame returns the checked header and value (aliasing the mapping) of the record at offset.
func (s *segment) frame(offset uint64) (frameHeader, []byte, error) {
	e, err := s.entry(offset - s.base)
	if err != nil {
		return frameHeader{}, nil, err
	}
	end := uint64(e.position) + frameHeaderSize + uint64(e.length)
	if end > uint64(len(s.storeMap)) {
		return frameHeader{}, nil, corruptf("segment %d: offset %d points past the store (%d > %d bytes)", s.base, offset, end, len(s.storeMap))
	}
	h, value, err := decodeFrame(s.storeMap[e.position:end], s.seed, e.length)
	if err != nil {
		return frameHeader{}, nil, fmt.Errorf("%s, offset %d: %w", s.storePath, offset, err)
	}
	if h.offset != offset || h.length != e.length {
		return frameHeader{}, nil, corruptf("segment %d: frame at position %d holds offset %d, want %d", s.base, e.position, h.offset, offset)
	}
	return h, value, nil
}

// closeFiles unmaps and closes the segment's files; the segment may be opened again later.
func (s *segment) closeFiles() error {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	return s.closeFilesLocked()
}

func (s *segment) closeFilesLocked() error {
	if !s.opened {
		return nil
	}
	var errs []error
	for _, m := range []gommap.MMap{s.storeMap, s.indexMap} {
		errs = append(errs, unmap(m))
	}
	errs = append(errs, s.store.Close(), s.index.Close())
	s.store, s.index, s.storeMap, s.indexMap = nil, nil, nil, nil
	s.opened, s.active = false, false
	s.ready.Store(false)
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("storelog: close segment %d: %w", s.base, err)
		}
	}
	return nil
}

// remove deletes the segment's files; the caller syncs the directory.
func (s *segment) remove(fs FS) error {
	if err := s.closeFiles(); err != nil {
		return err
	}
	for _, p := range []string{s.storePath, s.indexPath} {
		if err := fs.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("storelog: remove segment %d: %w", s.base, err)
		}
	}
	return nil
}

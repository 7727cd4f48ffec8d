package storelog

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
)

// The constants, headers, frames and entries below are the on-disk format drawn in the package
// documentation (doc.go). Changing one makes existing logs unreadable: a change needs a new
// formatVersion (and, once a release has shipped, a migration).
const (
	formatVersion = 3

	storeHeaderSize = 32
	frameHeaderSize = 36
	indexEntrySize  = 24
	metaSize        = 44

	// Where the fields that recovery reads before a frame's checksum sit in a frame header.
	frameOffsetAt = 8
	frameSyncedAt = 32

	metaFileName = "storelog.meta"
	storeSuffix  = ".store"
	indexSuffix  = ".index"
	tmpSuffix    = ".tmp"
	baseDigits   = 20

	metaFlagClean = 1 << 0
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	metaMagic  = [4]byte{'D', 'S', 'L', 'G'}
	storeMagic = [4]byte{'D', 'S', 'L', 'S'}
)

// RecordCapacity is the largest record value a segment of maxSegmentBytes can hold: the segment less
// its store header and one frame header. It is 0 when not even an empty record fits.
func RecordCapacity(maxSegmentBytes uint32) uint32 {
	if maxSegmentBytes <= storeHeaderSize+frameHeaderSize {
		return 0
	}
	return maxSegmentBytes - storeHeaderSize - frameHeaderSize
}

// storeHeader is the decoded header at the start of every store file.
type storeHeader struct {
	base uint64
	// id is drawn at random when the file is made. It seeds every frame's checksum, so bytes left in
	// the file by anything else (another segment, an earlier incarnation, a recycled file) never pass
	// for a record of this one.
	id uint64
}

// newSegmentID gives each new segment its id. It is a variable only so that the golden test
// (golden_test.go) can write a log whose bytes are reproducible; nothing else changes it.
var newSegmentID = randomSegmentID

// randomSegmentID draws a segment id; 0 is skipped so that an all-zero header never matches.
func randomSegmentID() uint64 {
	for {
		if id := rand.Uint64(); id != 0 {
			return id
		}
	}
}

func encodeStoreHeader(h storeHeader) []byte {
	b := make([]byte, 0, storeHeaderSize)
	b = append(b, storeMagic[:]...)
	b = binary.LittleEndian.AppendUint32(b, formatVersion)
	b = binary.LittleEndian.AppendUint64(b, h.base)
	b = binary.LittleEndian.AppendUint64(b, h.id)
	b = binary.LittleEndian.AppendUint32(b, 0) // reserved
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeStoreHeader parses a store file's header: ErrUnsupportedVersion for another format version,
// ErrCorrupt for any other damage.
func decodeStoreHeader(b []byte) (storeHeader, error) {
	if len(b) < storeHeaderSize {
		return storeHeader{}, corruptf("store header truncated: %d of %d bytes", len(b), storeHeaderSize)
	}
	if [4]byte(b[0:4]) != storeMagic {
		return storeHeader{}, corruptf("not a storelog store file")
	}
	if got, want := crc32.Checksum(b[:28], castagnoli), binary.LittleEndian.Uint32(b[28:]); got != want {
		return storeHeader{}, corruptf("store header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != formatVersion {
		return storeHeader{}, versionErrorf("store file format version %d, this build reads only version %d (no migration: write the log again with this version)", v, formatVersion)
	}
	if binary.LittleEndian.Uint32(b[24:]) != 0 {
		return storeHeader{}, corruptf("store header reserved field is not zero")
	}
	return storeHeader{base: binary.LittleEndian.Uint64(b[8:]), id: binary.LittleEndian.Uint64(b[16:])}, nil
}

// frameSeed is the checksum state every frame of the segment with this id starts from.
func frameSeed(id uint64) uint32 {
	return crc32.Update(0, castagnoli, binary.LittleEndian.AppendUint64(nil, id))
}

// frameHeader is a decoded store frame header.
type frameHeader struct {
	length uint32
	crc    uint32
	offset uint64
	time   int64
	key    uint64
	// synced is the store position up to which the file was fsynced when this frame was written.
	synced uint32
}

// appendFrame appends the frame of one record to dst. seed is the segment's frameSeed.
func appendFrame(dst []byte, seed uint32, offset uint64, timeNanos int64, key uint64, synced uint32, value []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(value)))
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint64(dst, offset)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(timeNanos))
	dst = binary.LittleEndian.AppendUint64(dst, key)
	dst = binary.LittleEndian.AppendUint32(dst, synced)
	dst = append(dst, value...)
	binary.LittleEndian.PutUint32(dst[start+4:], frameCRC(seed, dst[start:]))
	return dst
}

// frameCRC is the checksum of a whole frame, skipping its crc field, started from the segment's seed.
func frameCRC(seed uint32, frame []byte) uint32 {
	c := crc32.Update(seed, castagnoli, frame[0:4])
	return crc32.Update(c, castagnoli, frame[8:])
}

// decodeFrameHeader reads a frame header from b, which must hold at least frameHeaderSize bytes.
func decodeFrameHeader(b []byte) frameHeader {
	return frameHeader{
		length: binary.LittleEndian.Uint32(b[0:]),
		crc:    binary.LittleEndian.Uint32(b[4:]),
		offset: binary.LittleEndian.Uint64(b[frameOffsetAt:]),
		time:   int64(binary.LittleEndian.Uint64(b[16:])),
		key:    binary.LittleEndian.Uint64(b[24:]),
		synced: binary.LittleEndian.Uint32(b[frameSyncedAt:]),
	}
}

// decodeFrame checks the frame at the start of b against the segment's seed and returns its header
// and value (aliasing b). It fails with ErrCorrupt when b is too short for the header or the value,
// when the value is longer than maxValue (so a corrupt length never sizes an allocation), or when the
// checksum does not match.
func decodeFrame(b []byte, seed uint32, maxValue uint32) (frameHeader, []byte, error) {
	if len(b) < frameHeaderSize {
		return frameHeader{}, nil, corruptf("frame header truncated: %d of %d bytes", len(b), frameHeaderSize)
	}
	h := decodeFrameHeader(b)
	if h.length > maxValue {
		return frameHeader{}, nil, corruptf("frame length %d exceeds the maximum record size %d", h.length, maxValue)
	}
	end := frameHeaderSize + int(h.length)
	if len(b) < end {
		return frameHeader{}, nil, corruptf("frame value truncated: %d of %d bytes", len(b)-frameHeaderSize, h.length)
	}
	if got := frameCRC(seed, b[:end]); got != h.crc {
		return frameHeader{}, nil, corruptf("frame checksum mismatch at offset field %d: stored %#x, computed %#x", h.offset, h.crc, got)
	}
	return h, b[frameHeaderSize:end], nil
}

// indexEntry is one decoded index entry.
type indexEntry struct {
	position uint32
	length   uint32
	time     int64
	key      uint64
}

func putIndexEntry(b []byte, e indexEntry) {
	binary.LittleEndian.PutUint32(b[0:], e.position)
	binary.LittleEndian.PutUint32(b[4:], e.length)
	binary.LittleEndian.PutUint64(b[8:], uint64(e.time))
	binary.LittleEndian.PutUint64(b[16:], e.key)
}

func decodeIndexEntry(b []byte) indexEntry {
	return indexEntry{
		position: binary.LittleEndian.Uint32(b[0:]),
		length:   binary.LittleEndian.Uint32(b[4:]),
		time:     int64(binary.LittleEndian.Uint64(b[8:])),
		key:      binary.LittleEndian.Uint64(b[16:]),
	}
}

// indexKey reads only the key of the index entry at the start of b, for the binary search of
// SearchKey.
func indexKey(b []byte) uint64 { return binary.LittleEndian.Uint64(b[16:]) }

// meta is the decoded meta file.
type meta struct {
	version      uint32
	lowWatermark uint64
	clean        bool
	// storeSize is how far the store of the segment at activeBase is known to be fsynced: its whole
	// size after a clean close, a floor below which recovery never cuts otherwise.
	storeSize   uint32
	activeBase  uint64
	activeCount uint64
}

func encodeMeta(m meta) []byte {
	b := make([]byte, 0, metaSize)
	b = append(b, metaMagic[:]...)
	b = binary.LittleEndian.AppendUint32(b, m.version)
	b = binary.LittleEndian.AppendUint64(b, m.lowWatermark)
	var flags uint32
	if m.clean {
		flags |= metaFlagClean
	}
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint32(b, m.storeSize)
	b = binary.LittleEndian.AppendUint64(b, m.activeBase)
	b = binary.LittleEndian.AppendUint64(b, m.activeCount)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeMeta parses a meta file. A file written by another format version gives
// ErrUnsupportedVersion; any other damage gives ErrCorrupt.
func decodeMeta(b []byte) (meta, error) {
	if len(b) < 8 || [4]byte(b[0:4]) != metaMagic {
		return meta{}, corruptf("%s: not a storelog meta file", metaFileName)
	}
	version := binary.LittleEndian.Uint32(b[4:])
	if version != formatVersion {
		return meta{}, versionErrorf("%s: format version %d, this build reads only version %d (no migration: write the log again with this version)",
			metaFileName, version, formatVersion)
	}
	if len(b) != metaSize {
		return meta{}, corruptf("%s: %d bytes, want %d", metaFileName, len(b), metaSize)
	}
	if got, want := crc32.Checksum(b[:40], castagnoli), binary.LittleEndian.Uint32(b[40:]); got != want {
		return meta{}, corruptf("%s: checksum mismatch", metaFileName)
	}
	return meta{
		version:      version,
		lowWatermark: binary.LittleEndian.Uint64(b[8:]),
		clean:        binary.LittleEndian.Uint32(b[16:])&metaFlagClean != 0,
		storeSize:    binary.LittleEndian.Uint32(b[20:]),
		activeBase:   binary.LittleEndian.Uint64(b[24:]),
		activeCount:  binary.LittleEndian.Uint64(b[32:]),
	}, nil
}

package partition

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
)

// Index entry sizes on disk.
const (
	offsetEntrySize = 8  // relative offset uint32, file position uint32
	timeEntrySize   = 12 // max timestamp int64, relative offset uint32
)

// offsetEntry maps the base offset of a batch (relative to the segment base)
// to its byte position in the segment file.
type offsetEntry struct {
	rel uint32
	pos uint32
}

// timeEntry records that every batch up to and including the batch at rel
// has MaxTimestamp <= ts. Entries are only added when ts grows, so ts is
// strictly increasing and binary search works even though record
// timestamps are not monotonic.
type timeEntry struct {
	ts  int64
	rel uint32
}

// lookup returns the file position and base offset of the last indexed
// batch whose base offset is <= base+rel, or the segment start if none is.
func lookup(idx []offsetEntry, base int64, rel uint32) (pos, offset int64) {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].rel > rel })
	if i == 0 {
		return 0, base
	}
	return int64(idx[i-1].pos), base + int64(idx[i-1].rel)
}

// boundPos returns the position of the first indexed batch whose base offset
// is >= rel: every batch starting at or after rel starts at or before it.
func boundPos(idx []offsetEntry, rel uint32, size int64) int64 {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].rel >= rel })
	if i == len(idx) {
		return size
	}
	return int64(idx[i].pos)
}

// lookupTime returns the relative offset of the last entry with ts < target:
// all batches before it are too old, so a scan may start there.
func lookupTime(idx []timeEntry, target int64) (uint32, bool) {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].ts >= target })
	if i == 0 {
		return 0, false
	}
	return idx[i-1].rel, true
}

func appendOffsetEntries(dst []byte, es []offsetEntry) []byte {
	for _, e := range es {
		dst = binary.BigEndian.AppendUint32(dst, e.rel)
		dst = binary.BigEndian.AppendUint32(dst, e.pos)
	}
	return dst
}

func appendTimeEntries(dst []byte, es []timeEntry) []byte {
	for _, e := range es {
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.ts))
		dst = binary.BigEndian.AppendUint32(dst, e.rel)
	}
	return dst
}

// readOffsetIndex loads an offset index file and checks that it is usable
// for a segment file of the given size.
func readOffsetIndex(path string, segSize int64) ([]offsetEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b)%offsetEntrySize != 0 {
		return nil, fmt.Errorf("size %d not a multiple of %d", len(b), offsetEntrySize)
	}
	es := make([]offsetEntry, 0, len(b)/offsetEntrySize)
	for i := 0; i < len(b); i += offsetEntrySize {
		e := offsetEntry{
			rel: binary.BigEndian.Uint32(b[i:]),
			pos: binary.BigEndian.Uint32(b[i+4:]),
		}
		if int64(e.pos) >= segSize || e.pos == 0 {
			return nil, fmt.Errorf("entry %d: position %d outside (0, %d)", len(es), e.pos, segSize)
		}
		if n := len(es); n > 0 && (e.rel <= es[n-1].rel || e.pos <= es[n-1].pos) {
			return nil, fmt.Errorf("entry %d not increasing", n)
		}
		es = append(es, e)
	}
	return es, nil
}

// readTimeIndex loads a time index file and checks that it is consistent
// with the already loaded offset index.
func readTimeIndex(path string, offIdx []offsetEntry) ([]timeEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b)%timeEntrySize != 0 {
		return nil, fmt.Errorf("size %d not a multiple of %d", len(b), timeEntrySize)
	}
	es := make([]timeEntry, 0, len(b)/timeEntrySize)
	for i := 0; i < len(b); i += timeEntrySize {
		e := timeEntry{
			ts:  int64(binary.BigEndian.Uint64(b[i:])),
			rel: binary.BigEndian.Uint32(b[i+8:]),
		}
		if n := len(es); n > 0 && (e.ts <= es[n-1].ts || e.rel <= es[n-1].rel) {
			return nil, fmt.Errorf("entry %d not increasing", n)
		}
		// Time entries are written together with offset entries, and
		// truncation and recovery rely on that pairing.
		if j := sort.Search(len(offIdx), func(j int) bool { return offIdx[j].rel >= e.rel }); j == len(offIdx) || offIdx[j].rel != e.rel {
			return nil, fmt.Errorf("entry %d: relative offset %d not in offset index", len(es), e.rel)
		}
		es = append(es, e)
	}
	return es, nil
}

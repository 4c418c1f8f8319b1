package partition

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// scanWindow is how much recovery reads per syscall while validating.
const scanWindow = 1 << 20

// batchReader reads a file sequentially through a window so that scanning
// many small batches does not cost a syscall each.
type batchReader struct {
	f      *os.File
	size   int64 // never read at or past this position
	buf    []byte
	off    int64 // file position of buf[0]
	window int   // bytes per read; 0 means scanWindow
}

// bytes returns file[pos:pos+n]; the caller guarantees pos+n <= size.
func (r *batchReader) bytes(pos int64, n int) ([]byte, error) {
	if pos >= r.off && pos+int64(n) <= r.off+int64(len(r.buf)) {
		return r.buf[pos-r.off : pos-r.off+int64(n)], nil
	}
	window := r.window
	if window == 0 {
		window = scanWindow
	}
	want := int(min(int64(max(n, window)), r.size-pos))
	if cap(r.buf) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	m, err := r.f.ReadAt(r.buf, pos)
	if m < want {
		r.buf = r.buf[:0]
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	r.off = pos
	return r.buf[:n], nil
}

// scanResult says how far a segment file holds a valid chain of batches.
type scanResult struct {
	end    int64  // position after the last valid batch
	next   int64  // offset after the last valid batch
	reason string // why the scan stopped before the end of the file, or ""
}

// scanBatches validates the batches of a segment file from pos, where the
// batch with base offset expect must start, calling fn for each valid one.
// Content problems end the scan with a reason; only I/O fails it.
func scanBatches(s *segment, fileSize, pos, expect int64, maxBatch int, fn func(BatchHeader, int64)) (scanResult, error) {
	r := batchReader{f: s.f, size: fileSize}
	res := scanResult{end: pos, next: expect}
	for res.end < fileSize {
		if fileSize-res.end < BatchHeaderSize {
			res.reason = "partial batch header"
			return res, nil
		}
		hb, err := r.bytes(res.end, BatchHeaderSize)
		if err != nil {
			return res, err
		}
		h, err := ParseBatchHeader(hb)
		if err != nil {
			res.reason = err.Error()
			return res, nil
		}
		if res.reason = checkScanned(h, s.base, s.compacted.Load(), res, fileSize, maxBatch); res.reason != "" {
			return res, nil
		}
		b, err := r.bytes(res.end, h.Size())
		if err != nil {
			return res, err
		}
		if _, err := ValidateBatch(b); err != nil {
			res.reason = err.Error()
			return res, nil
		}
		if fn != nil {
			fn(h, res.end)
		}
		res.end += int64(h.Size())
		res.next = h.LastOffset() + 1
	}
	return res, nil
}

// checkScanned applies the structural checks that a stored batch header
// must pass before its bytes are even read.
func checkScanned(h BatchHeader, base int64, gaps bool, res scanResult, fileSize int64, maxBatch int) string {
	switch size := int64(h.Size()); {
	case size > int64(maxBatch):
		return fmt.Sprintf("batch of %d bytes exceeds limit %d", size, maxBatch)
	case size > fileSize-res.end:
		return fmt.Sprintf("batch of %d bytes extends past end of file", size)
	case res.end+size > math.MaxUint32:
		return "batch ends beyond 4 GiB"
	case h.BaseOffset < res.next || !gaps && h.BaseOffset != res.next:
		return fmt.Sprintf("base offset %d, want %d", h.BaseOffset, res.next)
	case h.LastOffset()-base > math.MaxUint32:
		return fmt.Sprintf("last offset %d too far from segment base %d", h.LastOffset(), base)
	}
	return ""
}

// recoverBatchLimit is the largest batch recovery accepts. It never goes
// below the default so that lowering MaxBatchBytes cannot make recovery
// throw away batches that were accepted under the old limit.
func (l *Log) recoverBatchLimit() int {
	return max(l.config().MaxBatchBytes, DefaultConfig().MaxBatchBytes)
}

// listSegments returns the base offsets of the segment files in dir.
func listSegments(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, e := range ents {
		if base, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)
	return bases, nil
}

// load opens the segments in l.dir and repairs the tail after a crash: the
// last segment is fully validated, closed segments are trusted up to their
// last index entry, and anything that does not chain is dropped.
func (l *Log) load() error {
	// A compaction that did not reach its swap leaves its output behind.
	if err := removeCleanedFiles(l.dir); err != nil {
		return err
	}
	bases, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	if len(bases) == 0 {
		seg, err := createSegment(l.dir, 0)
		if err != nil {
			return err
		}
		l.installLoaded([]*segment{seg})
		l.dirDirty = true
		return nil
	}
	segs, err := l.loadSegments(bases)
	if err == nil {
		err = activateLoaded(segs)
	}
	if err != nil {
		for _, s := range segs {
			s.closeFiles()
		}
		return err
	}
	l.installLoaded(segs)
	return nil
}

// activateLoaded trims the active segment's index files to what it has
// flushed; every segment's index files are left closed.
func activateLoaded(segs []*segment) error {
	for _, s := range segs[:len(segs)-1] {
		if err := s.closeIndexFiles(); err != nil {
			return err
		}
	}
	active := segs[len(segs)-1]
	if err := active.readFirstTimestamp(); err != nil {
		return fmt.Errorf("segment %s: %w", active.path(), err)
	}
	return active.trimIndexFiles()
}

func (l *Log) loadSegments(bases []int64) ([]*segment, error) {
	var segs []*segment
	for i, base := range bases {
		// A compacted segment may end before the next one's base.
		if n := len(segs); n > 0 && (segs[n-1].next > base || !segs[n-1].compacted.Load() && segs[n-1].next != base) {
			l.logger.Warn("segment does not continue the previous one, dropping it and later segments",
				"segment", segmentPath(l.dir, base, logSuffix), "base_offset", base, "expected", segs[n-1].next)
			return segs, l.dropSegmentFiles(bases[i:])
		}
		seg, err := openSegment(l.dir, base)
		if err != nil {
			return segs, err
		}
		segs = append(segs, seg)
		var clean bool
		if i == len(bases)-1 {
			clean, err = l.rebuildSegment(seg)
		} else {
			clean, err = l.loadClosedSegment(seg)
		}
		if err != nil {
			return segs, fmt.Errorf("segment %s: %w", seg.path(), err)
		}
		if !clean && i+1 < len(bases) {
			l.logger.Warn("dropping segments after damaged segment",
				"segment", seg.path(), "dropped", len(bases)-i-1)
			return segs, l.dropSegmentFiles(bases[i+1:])
		}
	}
	return segs, nil
}

func (l *Log) dropSegmentFiles(bases []int64) error {
	// Newest first, so a crash part way leaves a log that still chains.
	for i := len(bases) - 1; i >= 0; i-- {
		if err := removeSegmentFiles(l.dir, bases[i]); err != nil {
			return err
		}
	}
	l.dirDirty = true
	return nil
}

func (l *Log) installLoaded(segs []*segment) {
	l.segs = segs
	l.start.Store(segs[0].base)
	l.next.Store(segs[len(segs)-1].next)
}

// rebuildSegment validates a whole segment, truncates it at the first bad
// batch and rebuilds its indexes. It reports whether nothing was cut.
func (l *Log) rebuildSegment(s *segment) (bool, error) {
	fi, err := s.f.Stat()
	if err != nil {
		return false, err
	}
	s.resetIndexes()
	interval := l.config().IndexIntervalBytes
	res, err := scanBatches(s, fi.Size(), 0, s.base, l.recoverBatchLimit(), func(h BatchHeader, pos int64) {
		s.observe(h, pos, interval)
	})
	if err != nil {
		return false, err
	}
	clean := res.reason == ""
	if !clean {
		if err := l.cutTail(s, res, fi.Size()); err != nil {
			return false, err
		}
	}
	if err := s.rewriteIndexes(); err != nil {
		return false, err
	}
	// Index files of a closed segment are trusted on the next open, so they
	// must be durable; the active one's are rebuilt every time anyway.
	return clean, s.sync()
}

func (l *Log) cutTail(s *segment, res scanResult, fileSize int64) error {
	l.logger.Warn("truncating damaged segment tail",
		"segment", s.path(), "position", res.end, "file_size", fileSize,
		"next_offset", res.next, "reason", res.reason)
	if err := s.f.Truncate(res.end); err != nil {
		return err
	}
	s.dirty = true
	return nil
}

// loadClosedSegment loads a closed segment's indexes from disk and checks
// the batches after the last index entry, which also yields the segment's
// next offset and max timestamp without reading the whole file.
func (l *Log) loadClosedSegment(s *segment) (bool, error) {
	fi, err := s.f.Stat()
	if err != nil {
		return false, err
	}
	size := fi.Size()
	offIdx, err := readOffsetIndex(segmentPath(l.dir, s.base, indexSuffix), size)
	var timeIdx []timeEntry
	if err == nil {
		timeIdx, err = readTimeIndex(segmentPath(l.dir, s.base, timeIndexSuffix), offIdx)
	}
	if err != nil {
		l.logger.Warn("rebuilding segment index", "segment", s.path(), "reason", err)
		return l.rebuildSegment(s)
	}
	s.offIdx, s.timeIdx = offIdx, timeIdx
	s.flushedOff, s.flushedTime = len(offIdx), len(timeIdx)
	pos, expect, maxTs := int64(0), s.base, int64(noTimestamp)
	if n := len(offIdx); n > 0 {
		pos, expect = int64(offIdx[n-1].pos), s.base+int64(offIdx[n-1].rel)
		s.lastIdxPos = pos
	}
	if n := len(timeIdx); n > 0 {
		maxTs = timeIdx[n-1].ts
	}
	res, err := scanBatches(s, size, pos, expect, l.recoverBatchLimit(), func(h BatchHeader, _ int64) {
		maxTs = max(maxTs, h.MaxTimestamp)
	})
	if err != nil {
		return false, err
	}
	if res.reason != "" && res.end == pos && pos > 0 {
		l.logger.Warn("segment index does not match segment, rebuilding", "segment", s.path(), "reason", res.reason)
		return l.rebuildSegment(s)
	}
	s.size, s.next, s.maxTs = res.end, res.next, maxTs
	if res.reason == "" {
		return true, nil
	}
	if err := l.cutTail(s, res, size); err != nil {
		return false, err
	}
	return false, s.f.Sync()
}

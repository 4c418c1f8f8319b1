package partition

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
)

const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	// compactedSuffix marks a segment whose batches may skip offsets
	// (compaction removed batches): an empty file beside it.
	compactedSuffix = ".compacted"

	// noTimestamp marks "no batch seen yet"; real batches may carry -1.
	noTimestamp = math.MinInt64
)

// segment is one segment file plus its in-memory indexes.
//
// Fields marked "mu" are written by the writer goroutine with Log.mu held
// for writing and read by readers with Log.mu held for reading. Fields
// marked "writer" are only touched by the writer goroutine.
type segment struct {
	base int64
	dir  string
	f    *os.File // opened read-write; readers use ReadAt only
	// compacted says offsets may skip inside the segment and between it
	// and the next; elsewhere a skip is damage. Set before any reader can
	// see the segment, or by the writer before the batch after a skip.
	compacted atomic.Bool
	// refs counts the Log's list plus in-flight readers, so a segment that
	// is deleted while being read keeps its descriptor until the read ends.
	refs atomic.Int32

	size    int64         // mu: bytes of valid batches
	next    int64         // mu: offset after the last batch
	maxTs   int64         // mu: largest MaxTimestamp, noTimestamp if empty
	offIdx  []offsetEntry // mu
	timeIdx []timeEntry   // mu

	firstTs     int64    // writer: MaxTimestamp of the first batch, or noTimestamp
	lastIdxPos  int64    // writer: position of the newest index entry (0 = segment start)
	idxF, timeF *os.File // writer: open only between an index flush and the sync after it
	flushedOff  int      // writer: offset entries already in the index file
	flushedTime int      // writer: time entries already in the time index file
	dirty       bool     // writer: log bytes written since the last fsync
	wbFrom      int64    // writer: where the next writeback request starts
	idxDirty    bool     // writer: index bytes written since the last fsync
	scratch     []byte   // writer: encoding buffer for index flushes
}

func segmentPath(dir string, base int64, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, suffix))
}

// parseSegmentName returns the base offset of a "<20 digits>.log" name.
func parseSegmentName(name string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, logSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	base, err := strconv.ParseInt(digits, 10, 64)
	return base, err == nil
}

func newSegment(dir string, base int64, f *os.File) *segment {
	s := &segment{base: base, dir: dir, f: f, next: base, maxTs: noTimestamp, firstTs: noTimestamp}
	s.refs.Store(1)
	return s
}

// createSegment creates an empty segment, discarding any stale files that
// carry the same base offset.
func createSegment(dir string, base int64) (*segment, error) {
	f, err := os.OpenFile(segmentPath(dir, base, logSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	s := newSegment(dir, base, f)
	if err := os.Remove(segmentPath(dir, base, compactedSuffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.closeFiles()
		return nil, err
	}
	if err := s.trimIndexFiles(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

// openSegment opens an existing segment file; the caller loads its state.
func openSegment(dir string, base int64) (*segment, error) {
	f, err := os.OpenFile(segmentPath(dir, base, logSuffix), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	s := newSegment(dir, base, f)
	if _, err := os.Stat(segmentPath(dir, base, compactedSuffix)); err == nil {
		s.compacted.Store(true)
	}
	return s, nil
}

// markCompacted records that the segment's offsets may skip. The mark is
// made durable before the batches that need it.
func (s *segment) markCompacted() error {
	if s.compacted.Load() {
		return nil
	}
	f, err := os.Create(segmentPath(s.dir, s.base, compactedSuffix))
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := SyncDir(s.dir); err != nil {
		return err
	}
	s.compacted.Store(true)
	return nil
}

func (s *segment) path() string { return segmentPath(s.dir, s.base, logSuffix) }

// observe accounts for a valid batch written at pos. Append and index
// rebuilds share it so that both produce identical indexes.
func (s *segment) observe(h BatchHeader, pos int64, interval int) {
	if pos == 0 {
		s.firstTs = h.MaxTimestamp
	}
	if h.MaxTimestamp > s.maxTs {
		s.maxTs = h.MaxTimestamp
	}
	if pos-s.lastIdxPos >= int64(interval) {
		rel := uint32(h.BaseOffset - s.base)
		s.offIdx = append(s.offIdx, offsetEntry{rel: rel, pos: uint32(pos)})
		s.lastIdxPos = pos
		if n := len(s.timeIdx); n == 0 || s.maxTs > s.timeIdx[n-1].ts {
			s.timeIdx = append(s.timeIdx, timeEntry{ts: s.maxTs, rel: rel})
		}
	}
	s.size = pos + int64(h.Size())
	s.next = h.LastOffset() + 1
}

// resetIndexes forgets all index entries, before a rebuild.
func (s *segment) resetIndexes() {
	s.offIdx, s.timeIdx = nil, nil
	s.lastIdxPos = 0
	s.flushedOff, s.flushedTime = 0, 0
	s.size, s.next = 0, s.base
	s.maxTs, s.firstTs = noTimestamp, noTimestamp
}

// openIndexFiles opens the index files for writing and cuts them to what
// has been flushed, so stale entries past that point can never be reread.
func (s *segment) openIndexFiles() error {
	if s.idxF != nil {
		return s.truncateIndexFiles()
	}
	idxF, err := os.OpenFile(segmentPath(s.dir, s.base, indexSuffix), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	timeF, err := os.OpenFile(segmentPath(s.dir, s.base, timeIndexSuffix), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		idxF.Close()
		return err
	}
	s.idxF, s.timeF = idxF, timeF
	return s.truncateIndexFiles()
}

// trimIndexFiles cuts the index files to what has been flushed and leaves
// them closed: a node hosts thousands of partitions, and index files held
// open for each would take three descriptors per partition, where one is
// enough. They are opened again only to be written (flushIndexes).
func (s *segment) trimIndexFiles() error {
	s.flushedOff = min(s.flushedOff, len(s.offIdx))
	s.flushedTime = min(s.flushedTime, len(s.timeIdx))
	if fileSizeIs(segmentPath(s.dir, s.base, indexSuffix), int64(s.flushedOff)*offsetEntrySize) &&
		fileSizeIs(segmentPath(s.dir, s.base, timeIndexSuffix), int64(s.flushedTime)*timeEntrySize) {
		return nil // nothing to cut: a new segment, or a clean one
	}
	if err := s.openIndexFiles(); err != nil {
		return err
	}
	if err := s.idxF.Sync(); err != nil {
		s.closeIndexFiles()
		return err
	}
	if err := s.timeF.Sync(); err != nil {
		s.closeIndexFiles()
		return err
	}
	s.idxDirty = false
	return s.closeIndexFiles()
}

// fileSizeIs reports whether the file at path has size bytes; a file that
// does not exist counts as empty.
func fileSizeIs(path string, size int64) bool {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return size == 0
	}
	return err == nil && fi.Size() == size
}

func (s *segment) truncateIndexFiles() error {
	s.flushedOff = min(s.flushedOff, len(s.offIdx))
	s.flushedTime = min(s.flushedTime, len(s.timeIdx))
	if err := s.idxF.Truncate(int64(s.flushedOff) * offsetEntrySize); err != nil {
		return err
	}
	s.idxDirty = true
	return s.timeF.Truncate(int64(s.flushedTime) * timeEntrySize)
}

// flushIndexes writes index entries not yet in the files. Index writes are
// batched here rather than done per append to keep Append at one syscall.
func (s *segment) flushIndexes() error {
	if s.idxF == nil && (len(s.offIdx) > s.flushedOff || len(s.timeIdx) > s.flushedTime) {
		if err := s.openIndexFiles(); err != nil {
			return err
		}
	}
	if n := len(s.offIdx); n > s.flushedOff {
		s.scratch = appendOffsetEntries(s.scratch[:0], s.offIdx[s.flushedOff:n])
		if _, err := s.idxF.WriteAt(s.scratch, int64(s.flushedOff)*offsetEntrySize); err != nil {
			return err
		}
		s.flushedOff, s.idxDirty = n, true
	}
	if n := len(s.timeIdx); n > s.flushedTime {
		s.scratch = appendTimeEntries(s.scratch[:0], s.timeIdx[s.flushedTime:n])
		if _, err := s.timeF.WriteAt(s.scratch, int64(s.flushedTime)*timeEntrySize); err != nil {
			return err
		}
		s.flushedTime, s.idxDirty = n, true
	}
	return nil
}

// rewriteIndexes replaces the index files with the in-memory indexes.
func (s *segment) rewriteIndexes() error {
	s.flushedOff, s.flushedTime = 0, 0
	if s.idxF != nil {
		if err := s.truncateIndexFiles(); err != nil {
			return err
		}
	}
	return s.flushIndexes()
}

// writebackBytes is how much a segment accumulates before its writeback
// is started: the kernel otherwise leaves a busy partition's pages dirty
// until the fsync at the next snapshot, which then flushes hundreds of
// megabytes at once and holds up the Raft log's fdatasync, in the path of
// every acknowledgement, behind it (latency spikes of 1-2 s).
const writebackBytes = 4 << 20

// startWritebackFn is startWriteback; tests watch it.
var startWritebackFn = startWriteback

// writeback starts the writeback of what was appended up to end, once
// writebackBytes have gathered since the last one.
func (s *segment) writeback(end int64) {
	if s.wbFrom > end { // truncated since
		s.wbFrom = 0
	}
	if end-s.wbFrom >= writebackBytes {
		startWritebackFn(s.f, s.wbFrom, end-s.wbFrom)
		s.wbFrom = end
	}
}

// sync makes the segment and its indexes durable.
func (s *segment) sync() error {
	if err := s.flushIndexes(); err != nil {
		return err
	}
	if s.dirty {
		if err := s.f.Sync(); err != nil {
			return err
		}
		s.dirty = false
	}
	if s.idxDirty && s.idxF != nil {
		if err := s.idxF.Sync(); err != nil {
			return err
		}
		if err := s.timeF.Sync(); err != nil {
			return err
		}
		s.idxDirty = false
	}
	return s.closeIndexFiles()
}

// closeIndexFiles closes the index files of a segment that stops being
// active; closed segments never write their indexes again.
func (s *segment) closeIndexFiles() error {
	if s.idxF == nil {
		return nil
	}
	err := errors.Join(s.idxF.Close(), s.timeF.Close())
	s.idxF, s.timeF = nil, nil
	return err
}

func (s *segment) closeFiles() error {
	return errors.Join(s.closeIndexFiles(), s.f.Close())
}

// acquire must be called with Log.mu held while s is in the segment list.
func (s *segment) acquire() { s.refs.Add(1) }

// release drops a reference and closes the files after the last one.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		_ = s.closeFiles()
	}
}

// removeFiles deletes the segment's files. Open descriptors stay readable.
func (s *segment) removeFiles() error {
	return removeSegmentFiles(s.dir, s.base)
}

func removeSegmentFiles(dir string, base int64) error {
	var errs []error
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix, compactedSuffix} {
		if err := os.Remove(segmentPath(dir, base, suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// readFirstTimestamp loads firstTs for a segment that becomes active after
// being loaded as a closed segment.
func (s *segment) readFirstTimestamp() error {
	if s.size == 0 {
		s.firstTs = noTimestamp
		return nil
	}
	var b [BatchHeaderSize]byte
	if _, err := s.f.ReadAt(b[:], 0); err != nil {
		return err
	}
	h, err := ParseBatchHeader(b[:])
	if err != nil {
		return err
	}
	s.firstTs = h.MaxTimestamp
	return nil
}

// SyncDir fsyncs a directory, so that files created, renamed or removed in
// it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

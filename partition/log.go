package partition

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// Log is the segmented on-disk log of one partition.
type Log struct {
	dir    string
	cfg    atomic.Pointer[Config]
	logger hclog.Logger

	// mu guards the segment list and the mutable fields of its segments.
	// Readers hold it only to take a snapshot, never across file I/O.
	mu   sync.RWMutex
	segs []*segment // ordered by base offset; nil once closed

	start atomic.Int64 // written with mu held
	next  atomic.Int64 // written with mu held
	// gen moves whenever bytes readers may have located can be replaced
	// (Truncate, Reset). Readers do their I/O unlocked and retry if it moved.
	gen    atomic.Uint64
	closed atomic.Bool
	// segMu keeps compaction from replacing segment files while a
	// snapshot links or copies them; compactions counts replacements.
	segMu       sync.RWMutex
	compactions atomic.Uint64

	dirDirty bool // writer: directory entries changed since the last fsync

	// wmu serialises the writer methods (Append, Sync, Truncate, Reset,
	// AdvanceStart, SetConfig, Close). One goroutine appends, but Sync also
	// comes from snapshot persistence on another, and both touch the
	// active segment's file state.
	wmu sync.Mutex
}

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	BaseOffset int64
	Path       string
	Size       int64 // bytes of valid batches in the file
	// MaxTimestamp is the largest batch MaxTimestamp in it (MinInt64 if
	// empty).
	MaxTimestamp int64
}

// Open opens or creates the log in dir, repairing a damaged tail left by a
// crash. A nil logger discards log output.
func Open(dir string, cfg Config, logger hclog.Logger) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("partition: open %s: %w", dir, err)
	}
	l := &Log{dir: dir, logger: logger}
	l.cfg.Store(&cfg)
	if err := l.load(); err != nil {
		return nil, fmt.Errorf("partition: open %s: %w", dir, err)
	}
	if l.dirDirty {
		if err := SyncDir(dir); err != nil {
			l.Close()
			return nil, fmt.Errorf("partition: open %s: %w", dir, err)
		}
		l.dirDirty = false
	}
	return l, nil
}

func (l *Log) config() *Config { return l.cfg.Load() }

// SetConfig changes the segment settings of an open log, for the appends
// that follow: segments already written keep their size. PowerLossJournal
// stays as the log was opened.
func (l *Log) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	cfg.PowerLossJournal = l.config().PowerLossJournal
	l.cfg.Store(&cfg)
	return nil
}

// active returns the segment appends go to. Writer only.
func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// Append writes one complete record batch v2, whose base offset must be
// NextOffset(), exactly as given. It issues one write and no fsync.
func (l *Log) Append(batch []byte) error { return l.append(batch, true) }

// AppendCompacted is Append for a batch copied from a compacted log (a
// snapshot), whose base offset may skip past NextOffset().
func (l *Log) AppendCompacted(batch []byte) error { return l.append(batch, false) }

func (l *Log) append(batch []byte, exact bool) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	cfg := l.config()
	if len(batch) > cfg.MaxBatchBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrBatchTooLarge, len(batch), cfg.MaxBatchBytes)
	}
	h, err := ValidateBatch(batch)
	if err != nil {
		return err
	}
	if next := l.next.Load(); h.BaseOffset < next || exact && h.BaseOffset != next {
		return fmt.Errorf("%w: base offset %d, next offset %d", ErrOffsetMismatch, h.BaseOffset, next)
	}
	s := l.active()
	if h.BaseOffset > l.next.Load() {
		// Copied from a compacted log: the segment the skip starts in
		// must allow it, before the batch after it is written.
		if err := s.markCompacted(); err != nil {
			return fmt.Errorf("partition: append at offset %d: %w", h.BaseOffset, err)
		}
	}
	if shouldRoll(cfg, s, h) {
		if err := l.roll(h.BaseOffset); err != nil {
			return fmt.Errorf("partition: roll at offset %d: %w", h.BaseOffset, err)
		}
		s = l.active()
	}
	pos := s.size
	if _, err := s.f.WriteAt(batch, pos); err != nil {
		// Readers never look past s.size, but a crash now would leave a
		// partial batch for recovery; cut it while we still can.
		_ = s.f.Truncate(pos)
		return fmt.Errorf("partition: append at offset %d: %w", h.BaseOffset, err)
	}
	s.dirty = true
	s.writeback(pos + int64(len(batch)))
	l.mu.Lock()
	s.observe(h, pos, cfg.IndexIntervalBytes)
	l.next.Store(s.next)
	l.mu.Unlock()
	return nil
}

func shouldRoll(cfg *Config, s *segment, h BatchHeader) bool {
	if s.size == 0 {
		return false
	}
	switch {
	case s.size+int64(h.Size()) > cfg.SegmentBytes:
		return true
	case h.LastOffset()-s.base > math.MaxUint32:
		// Relative offsets in the index are 32-bit.
		return true
	case cfg.SegmentMs > 0:
		return elapsedAtLeast(s.firstTs, h.MaxTimestamp, cfg.SegmentMs.Milliseconds())
	}
	return false
}

// elapsedAtLeast reports to-from >= d without overflowing on hostile
// timestamps.
func elapsedAtLeast(from, to, d int64) bool {
	if to < from {
		return false
	}
	return uint64(to)-uint64(from) >= uint64(d)
}

// roll closes the active segment and starts a new one at base. The old
// segment is fsynced now because recovery only re-validates the last one.
func (l *Log) roll(base int64) error {
	old := l.active()
	if err := old.sync(); err != nil {
		return err
	}
	if err := old.closeIndexFiles(); err != nil {
		return err
	}
	seg, err := createSegment(l.dir, base)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.segs = append(l.segs, seg)
	l.mu.Unlock()
	l.dirDirty = true
	return nil
}

// Sync makes everything appended so far durable: the active segment, its
// index files and, after segments were created or removed, the directory.
func (l *Log) Sync() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	return l.sync()
}

func (l *Log) sync() error {
	if err := l.active().sync(); err != nil {
		return fmt.Errorf("partition: sync %s: %w", l.active().path(), err)
	}
	if l.dirDirty {
		if err := SyncDir(l.dir); err != nil {
			return fmt.Errorf("partition: sync %s: %w", l.dir, err)
		}
		l.dirDirty = false
	}
	if l.config().PowerLossJournal {
		return writePowerLossJournal(l.dir)
	}
	return nil
}

// writePowerLossJournal records the size of every segment and index file,
// all durable at this point. It is not fsync'd: it only has to survive
// SIGKILL, after which the chaos runner reads it.
func writePowerLossJournal(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	sizes := map[string]int64{}
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, logSuffix) && !strings.HasSuffix(n, indexSuffix) && !strings.HasSuffix(n, timeIndexSuffix) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		sizes[n] = info.Size()
	}
	b, err := json.Marshal(sizes)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, PowerLossJournalFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, PowerLossJournalFile))
}

// notePowerLoss updates the power-loss journal, if the log keeps one, for
// files whose new sizes were made durable outside sync (a compaction's
// swap) or that were removed: the rest of the journal stays as the last
// sync left it, which is what is durable of them.
func (l *Log) notePowerLoss(sizes map[string]int64) error {
	if !l.config().PowerLossJournal {
		return nil
	}
	path := filepath.Join(l.dir, PowerLossJournalFile)
	durable := map[string]int64{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &durable); err != nil {
			return err
		}
	}
	for name, size := range sizes {
		if size < 0 {
			delete(durable, name)
		} else {
			durable[name] = size
		}
	}
	b, err := json.Marshal(durable)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// segmentSizes are a segment's files and their sizes on disk, or -1 for
// files it does not have, for notePowerLoss.
func segmentSizes(dir string, base int64) map[string]int64 {
	out := map[string]int64{}
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		p := segmentPath(dir, base, suffix)
		out[filepath.Base(p)] = -1
		if info, err := os.Stat(p); err == nil {
			out[filepath.Base(p)] = info.Size()
		}
	}
	return out
}

// Close syncs and closes the log. Reads in flight finish normally; every
// later call returns ErrClosed.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Swap(true) {
		return ErrClosed
	}
	err := l.sync()
	l.mu.Lock()
	segs := l.segs
	l.segs = nil
	l.mu.Unlock()
	for _, s := range segs {
		s.release()
	}
	return err
}

// StartOffset is the first offset still stored (the log start offset).
func (l *Log) StartOffset() int64 { return l.start.Load() }

// NextOffset is the offset the next appended batch must start at (the log
// end offset).
func (l *Log) NextOffset() int64 { return l.next.Load() }

// Size is the total number of bytes in all segments.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// Segments lists the segments in offset order. The active segment may grow
// after the call; Size is its valid length at the time of the call.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]SegmentInfo, len(l.segs))
	for i, s := range l.segs {
		out[i] = SegmentInfo{BaseOffset: s.base, Path: s.path(), Size: s.size, MaxTimestamp: s.maxTs}
	}
	return out
}

// segmentIndex returns the index of the segment that holds offset, which
// must be >= the first segment's base. Caller holds mu.
func (l *Log) segmentIndex(offset int64) int {
	lo, hi := 0, len(l.segs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if l.segs[m].base <= offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return max(lo-1, 0)
}

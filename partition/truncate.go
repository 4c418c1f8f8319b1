package partition

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// cutPoint describes where Truncate cuts a segment and what remains.
type cutPoint struct {
	pos      int64 // file position of the first removed batch
	end      int64 // offset after the last kept batch
	offEnts  int   // offset index entries kept
	timeEnts int   // time index entries kept
	maxTs    int64 // largest MaxTimestamp among kept batches
}

// Truncate removes every batch whose base offset is >= offset, which must
// be a batch boundary (or NextOffset, a no-op). Afterwards NextOffset() ==
// offset. The cut is fsynced before Truncate returns.
func (l *Log) Truncate(offset int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	start, next := l.start.Load(), l.next.Load()
	if offset == next {
		return nil
	}
	if offset < start || offset > next {
		return fmt.Errorf("%w: truncate to %d, log holds [%d, %d)", ErrOffsetOutOfRange, offset, start, next)
	}
	i := l.segmentIndex(offset)
	s := l.segs[i]
	cut, err := findCut(s, offset)
	if err != nil {
		return err
	}
	// Where compaction removed the batches just below offset, the file
	// ends before it; a segment started at offset records the end.
	end := min(cut.end, offset)
	l.mu.Lock()
	removed := slices.Clone(l.segs[i+1:])
	l.segs = slices.Delete(l.segs, i+1, len(l.segs))
	s.size, s.next, s.maxTs = cut.pos, end, cut.maxTs
	s.offIdx, s.timeIdx = s.offIdx[:cut.offEnts], s.timeIdx[:cut.timeEnts]
	l.next.Store(end)
	l.gen.Add(1)
	l.mu.Unlock()

	s.lastIdxPos = 0
	if n := len(s.offIdx); n > 0 {
		s.lastIdxPos = int64(s.offIdx[n-1].pos)
	}
	if err := l.removeSegments(removed, true); err != nil {
		return err
	}
	if err := l.cutSegmentFiles(s); err != nil {
		return fmt.Errorf("partition: truncate %s to %d: %w", s.path(), cut.pos, err)
	}
	if end < offset {
		if err := l.roll(offset); err != nil {
			return fmt.Errorf("partition: truncate to %d: %w", offset, err)
		}
		l.mu.Lock()
		l.next.Store(offset)
		l.mu.Unlock()
	}
	return l.sync()
}

// findCut locates the batch starting at offset in s and works out what the
// segment keeps: the index entries before it and their max timestamp.
func findCut(s *segment, offset int64) (cutPoint, error) {
	rel := uint32(offset - s.base)
	c := cutPoint{maxTs: noTimestamp}
	c.offEnts = sort.Search(len(s.offIdx), func(i int) bool { return s.offIdx[i].rel >= rel })
	c.timeEnts = sort.Search(len(s.timeIdx), func(i int) bool { return s.timeIdx[i].rel >= rel })
	// Max timestamp up to the last kept index entry is the last kept time
	// entry's; batches from there on are scanned below.
	if c.timeEnts > 0 {
		c.maxTs = s.timeIdx[c.timeEnts-1].ts
	}
	// In a compacted segment the batch at offset may be gone: the cut is
	// then before the first batch after it, or at the end, and the last
	// kept batch may end before offset. Such a segment is read from its
	// start, to know where that batch ends.
	gaps := s.compacted.Load()
	from, at := int64(0), s.base
	if c.offEnts > 0 && !gaps {
		e := s.offIdx[c.offEnts-1]
		from, at = int64(e.pos), s.base+int64(e.rel)
	}
	if gaps {
		c.maxTs = noTimestamp
	}
	c.end = at
	boundary := false
	found, err := headerScan(s, from, at, s.size, func(h BatchHeader, pos int64) bool {
		if h.BaseOffset >= offset || h.LastOffset() >= offset {
			boundary, c.pos = h.BaseOffset == offset || gaps && h.BaseOffset > offset, pos
			return true
		}
		c.maxTs = max(c.maxTs, h.MaxTimestamp)
		c.end = h.LastOffset() + 1
		return false
	})
	if err != nil {
		return c, err
	}
	if !found && gaps {
		boundary, c.pos = true, s.size
	}
	if !boundary {
		return c, fmt.Errorf("%w: offset %d", ErrNotBatchBoundary, offset)
	}
	return c, nil
}

// SkipTo moves the end of the log forward to offset with nothing in
// between, for a log copied from a compacted one whose last batches were
// removed: the next append starts there. A new segment is started at
// offset, so the end survives a restart.
func (l *Log) SkipTo(offset int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	next := l.next.Load()
	if offset <= next {
		if offset < next {
			return fmt.Errorf("%w: skip to %d, log ends at %d", ErrOffsetOutOfRange, offset, next)
		}
		return nil
	}
	if err := l.active().markCompacted(); err != nil {
		return err
	}
	if err := l.roll(offset); err != nil {
		return err
	}
	l.mu.Lock()
	l.next.Store(offset)
	l.mu.Unlock()
	return l.sync()
}

// cutSegmentFiles shortens s's files to its in-memory state and makes it
// the active segment.
func (l *Log) cutSegmentFiles(s *segment) error {
	if err := s.f.Truncate(s.size); err != nil {
		return err
	}
	s.dirty = true
	if s.size == 0 {
		s.firstTs = noTimestamp
	} else if err := s.readFirstTimestamp(); err != nil {
		return err
	}
	return s.trimIndexFiles()
}

// removeSegments deletes segments that were already taken out of the list.
// Newest first keeps the on-disk log a chain if we crash part way.
func (l *Log) removeSegments(segs []*segment, newestFirst bool) error {
	if len(segs) == 0 {
		return nil
	}
	l.dirDirty = true
	for k := range segs {
		s := segs[k]
		if newestFirst {
			s = segs[len(segs)-1-k]
		}
		if err := s.removeFiles(); err != nil {
			return fmt.Errorf("partition: remove segment %s: %w", s.path(), err)
		}
		s.release()
	}
	return nil
}

// Reset deletes every segment and leaves an empty log whose StartOffset and
// NextOffset are startOffset, persisted as an empty segment file named after
// it. A crash during Reset leaves a prefix of the old log (possibly empty,
// at offset 0) or the new empty log, so the caller must redo the Reset.
func (l *Log) Reset(startOffset int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	if startOffset < 0 {
		return fmt.Errorf("%w: reset to negative offset %d", ErrOffsetOutOfRange, startOffset)
	}
	old := l.segs
	for k := len(old) - 1; k >= 0; k-- {
		if err := old[k].removeFiles(); err != nil {
			return fmt.Errorf("partition: reset: remove segment %s: %w", old[k].path(), err)
		}
	}
	seg, err := createSegment(l.dir, startOffset)
	if err != nil {
		return fmt.Errorf("partition: reset: %w", err)
	}
	l.mu.Lock()
	l.segs = []*segment{seg}
	l.start.Store(startOffset)
	l.next.Store(startOffset)
	l.gen.Add(1)
	l.mu.Unlock()
	for _, s := range old {
		s.release()
	}
	l.dirDirty = true
	return l.sync()
}

// AdvanceStart moves the log start offset forward to offset, which may
// fall inside a segment or a batch: reads below it fail with
// ErrOffsetOutOfRange from then on. The closed segments whose every offset
// is below it are deleted; the active segment never is. Offsets at or
// below the current start change nothing. It returns how many segments
// were deleted.
func (l *Log) AdvanceStart(offset int64) (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	if next := l.next.Load(); offset > next {
		return 0, fmt.Errorf("%w: start %d beyond the log end %d", ErrOffsetOutOfRange, offset, next)
	}
	if offset <= l.start.Load() {
		return 0, nil
	}
	n := 0
	for n < len(l.segs)-1 && l.segs[n+1].base <= offset {
		n++
	}
	l.mu.Lock()
	removed := l.segs[:n]
	l.segs = slices.Clone(l.segs[n:])
	l.start.Store(offset)
	l.mu.Unlock()
	if n == 0 {
		return 0, nil
	}
	// Oldest first: a crash part way leaves a suffix, which still chains.
	if err := l.removeSegments(removed, false); err != nil {
		return n, err
	}
	if err := SyncDir(l.dir); err != nil {
		return n, fmt.Errorf("partition: sync %s: %w", l.dir, err)
	}
	l.dirDirty = false
	return n, nil
}

// RetentionPoint is where retention would move the log start offset: the
// base of the first segment to keep when closed segments whose newest
// timestamp is older than nowMs-retentionMs, or which push the log past
// retentionBytes, are deleted, oldest first. A negative limit is off. It
// returns the current start when nothing is due. The active segment is
// always kept.
func (l *Log) RetentionPoint(nowMs, retentionMs, retentionBytes int64) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	start := l.start.Load()
	if l.segs == nil {
		return start
	}
	var total int64
	for _, s := range l.segs {
		total += s.size
	}
	keep := 0
	for keep < len(l.segs)-1 {
		s := l.segs[keep]
		// A segment compaction emptied holds nothing to keep.
		expired := s.size == 0 || retentionMs >= 0 && retentionMs < math.MaxInt64 && s.maxTs != noTimestamp && elapsedAtLeast(s.maxTs, nowMs, retentionMs+1)
		tooBig := retentionBytes >= 0 && total-s.size >= retentionBytes
		if !expired && !tooBig {
			break
		}
		total -= s.size
		keep++
	}
	if keep == 0 {
		return start
	}
	return max(start, l.segs[keep].base)
}

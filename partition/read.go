package partition

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
)

// headerWindow is the read size used when hopping over batch headers.
const headerWindow = 16 << 10

var headerBufPool = sync.Pool{New: func() any { b := make([]byte, 0, headerWindow); return &b }}

// view is a snapshot, taken under Log.mu, of what may be read from one
// segment. The segment is acquired and must be released.
type view struct {
	s     *segment
	pos   int64  // file position to start reading at
	at    int64  // base offset of the batch at pos
	end   int64  // readable data ends here: segment size or the limit bound
	whole bool   // end is the segment's size, so a read may go on to the next segment
	next  int64  // the segment's next offset
	avail int64  // bytes from pos up to the limit, summed across segments, capped
	gen   uint64 // Log.gen at snapshot time
}

// snapshot fills v for segment i from pos. want caps the avail estimate.
// Caller holds mu for reading.
func (l *Log) snapshot(i int, pos, at, limit, want int64) view {
	v := view{s: l.segs[i], pos: pos, at: at, gen: l.gen.Load()}
	v.end, v.whole = segmentEnd(v.s, limit)
	v.next = v.s.next
	v.avail = v.end - pos
	whole, next := v.whole, v.next
	for j := i + 1; j < len(l.segs) && whole && next < limit && v.avail < want; j++ {
		var end int64
		end, whole = segmentEnd(l.segs[j], limit)
		next = l.segs[j].next
		v.avail += end
	}
	v.s.acquire()
	return v
}

// segmentEnd bounds the bytes of s worth reading when batches at or past
// limit are excluded.
func segmentEnd(s *segment, limit int64) (int64, bool) {
	if limit >= s.next {
		return s.size, true
	}
	return boundPos(s.offIdx, uint32(limit-s.base), s.size), false
}

// Read returns whole batches starting with the one that contains offset,
// stopping before any batch whose base offset is >= maxOffset and before
// the total would exceed maxBytes. The first batch is returned even if it
// is larger than maxBytes. It returns nil if offset >= min(NextOffset(),
// maxOffset) and ErrOffsetOutOfRange outside [StartOffset(), NextOffset()].
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	for {
		// Kafka sizes are int32; clamping keeps the arithmetic below safe.
		out, gen, err := l.readOnce(offset, min(max(maxBytes, 0), math.MaxInt32), maxOffset)
		// A Truncate or Reset during the unlocked I/O may have replaced
		// the bytes we read; the answer is only good if nothing moved.
		if gen == l.gen.Load() {
			return out, err
		}
	}
}

func (l *Log) readOnce(offset int64, maxBytes int, maxOffset int64) ([]byte, uint64, error) {
	l.mu.RLock()
	gen := l.gen.Load()
	if l.segs == nil {
		l.mu.RUnlock()
		return nil, gen, ErrClosed
	}
	start, next := l.start.Load(), l.next.Load()
	if offset < start || offset > next {
		l.mu.RUnlock()
		return nil, gen, fmt.Errorf("%w: offset %d, log holds [%d, %d)", ErrOffsetOutOfRange, offset, start, next)
	}
	limit := min(next, maxOffset)
	if offset >= limit {
		l.mu.RUnlock()
		return nil, gen, nil
	}
	i := l.segmentIndex(offset)
	s := l.segs[i]
	want := int64(maxBytes) + int64(l.config().IndexIntervalBytes)
	pos, at := lookup(s.offIdx, s.base, uint32(offset-s.base))
	v := l.snapshot(i, pos, at, limit, want)
	l.mu.RUnlock()

	out, done, err := readFirst(v, offset, maxBytes, limit, want)
	v.s.release()
	for err == nil && !done {
		var ok bool
		if v, ok = l.snapshotAfter(v.s, limit, int64(maxBytes-len(out))); !ok {
			break
		}
		if len(out) == 0 {
			// Compaction left nothing at or after offset in the
			// segments before: the first batch of this one is the
			// answer, as in readFirst.
			out, done, err = readFirst(v, v.at, maxBytes, limit, want)
		} else {
			out, done, err = readMore(v, out, maxBytes, limit)
		}
		v.s.release()
	}
	return out, gen, err
}

// snapshotAfter takes a view of the segment that follows s, from its
// start. Compaction can leave a gap between a segment's last batch and
// the next segment's base, so the next segment is found by position in
// the list, not by offset.
func (l *Log) snapshotAfter(s *segment, limit, want int64) (view, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i := slices.Index(l.segs, s)
	if i < 0 || i+1 >= len(l.segs) || l.segs[i+1].base >= limit {
		return view{}, false
	}
	return l.snapshot(i+1, 0, l.segs[i+1].base, limit, want), true
}

// readFirst reads from the indexed position, skips to the batch holding
// offset and returns it plus whatever following batches fit. done is false
// when the read may continue into the next segment.
func readFirst(v view, offset int64, maxBytes int, limit, want int64) ([]byte, bool, error) {
	n := min(v.end-v.pos, want)
	buf := make([]byte, n, max(n, min(v.avail, want)))
	if err := readFull(v.s, buf, v.pos); err != nil {
		return nil, true, err
	}
	j := 0
	var h BatchHeader
	for expect := v.at; ; expect = h.LastOffset() + 1 {
		if v.pos+int64(j) >= v.end {
			// Nothing here at or after offset (compaction removed the
			// segment's last batches): the next segment may go on.
			return nil, !v.whole || v.next >= limit, nil
		}
		var err error
		if buf, err = v.ensure(buf, j, BatchHeaderSize); err != nil {
			return nil, true, err
		}
		if h, err = parseChained(buf[j:], expect, v.s.compacted.Load()); err != nil {
			return nil, true, v.corrupt(int64(j), err)
		}
		if h.LastOffset() >= offset {
			break
		}
		j += h.Size()
	}
	if h.BaseOffset >= limit {
		// Past a gap, the first batch may already be beyond the bound.
		return nil, true, nil
	}
	buf, err := v.ensure(buf, j, h.Size())
	if err != nil {
		return nil, true, err
	}
	// The result aliases the read buffer: the skipped prefix is shorter
	// than one index interval, so copying would cost more than it saves.
	out := buf[j:]
	used, done, err := walk(v, out, v.pos+int64(j), h.Size(), h.Size(), maxBytes, h.LastOffset()+1, limit)
	return out[:used], done, err
}

// readMore appends batches from the start of the segment in v to out.
func readMore(v view, out []byte, maxBytes int, limit int64) ([]byte, bool, error) {
	if v.end == 0 && v.whole {
		// Compaction emptied the segment: the next one may go on.
		return out, v.next >= limit, nil
	}
	n := int(min(v.end, int64(maxBytes-len(out))))
	if n < BatchHeaderSize {
		return out, true, nil
	}
	have := len(out)
	out = slices.Grow(out, n)[:have+n]
	if err := readFull(v.s, out[have:], 0); err != nil {
		return out[:have], true, err
	}
	used, done, err := walk(v, out[have:], 0, 0, have, maxBytes, v.at, limit)
	return out[:have+used], done, err
}

// walk accepts batches in b, which holds the file from position at, from
// b[j:] on (where base offset expect starts) while they are complete, below
// limit and within maxBytes (total already counts accepted bytes). It
// returns how much of b is accepted and whether reading should stop.
func walk(v view, b []byte, at int64, j, total, maxBytes int, expect, limit int64) (int, bool, error) {
	for j+BatchHeaderSize <= len(b) {
		h, err := parseChained(b[j:], expect, v.s.compacted.Load())
		if err != nil {
			return j, true, v.corrupt(at-v.pos+int64(j), err)
		}
		size := h.Size()
		if h.BaseOffset >= limit || total+size > maxBytes || j+size > len(b) {
			return j, true, nil
		}
		j += size
		total += size
		expect = h.LastOffset() + 1
	}
	// Only a read that consumed its segment up to the end may go on.
	done := at+int64(j) != v.end || !v.whole || v.next >= limit || total+BatchHeaderSize > maxBytes
	return j, done, nil
}

// parseChained parses a stored header and checks that it starts at
// expect, or after it where gaps are allowed (a compacted segment), which
// catches a stale index or misaligned data before bytes go out.
func parseChained(b []byte, expect int64, gaps bool) (BatchHeader, error) {
	h, err := ParseBatchHeader(b)
	if err == nil && (h.BaseOffset < expect || !gaps && h.BaseOffset != expect) {
		err = fmt.Errorf("%w: base offset %d, want %d", ErrCorruptBatch, h.BaseOffset, expect)
	}
	return h, err
}

// ensure extends buf, which holds the file from v.pos, to cover [j, j+n).
func (v view) ensure(buf []byte, j, n int) ([]byte, error) {
	if j+n <= len(buf) {
		return buf, nil
	}
	if v.pos+int64(j+n) > v.end {
		return nil, v.corrupt(int64(j), fmt.Errorf("%w: batch crosses end of readable data", ErrCorruptBatch))
	}
	newLen := int(min(v.end-v.pos, int64(j+n+headerWindow)))
	grown := slices.Grow(buf[:0:0], newLen)[:newLen]
	copy(grown, buf)
	if err := readFull(v.s, grown[len(buf):], v.pos+int64(len(buf))); err != nil {
		return nil, err
	}
	return grown, nil
}

// corrupt reports bad stored data at v.pos+j.
func (v view) corrupt(j int64, err error) error {
	return fmt.Errorf("partition: segment %s position %d: %w", v.s.path(), v.pos+j, err)
}

// readFull reads len(b) bytes at pos. Running into EOF means the data was
// cut under us, which Read's generation check turns into a retry.
func readFull(s *segment, b []byte, pos int64) error {
	if _, err := s.f.ReadAt(b, pos); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("partition: read %s at %d: %w", s.path(), pos, err)
	}
	return nil
}

// headerScan walks the batch headers of s from pos, where base offset
// expect starts, to end through a pooled window, calling fn until it
// returns true. It reports whether fn did.
func headerScan(s *segment, pos, expect, end int64, fn func(BatchHeader, int64) bool) (bool, error) {
	bp := headerBufPool.Get().(*[]byte)
	r := batchReader{f: s.f, size: end, buf: (*bp)[:0], window: headerWindow}
	defer func() {
		if cap(r.buf) == headerWindow {
			*bp = r.buf[:0]
		}
		headerBufPool.Put(bp)
	}()
	for pos+BatchHeaderSize <= end {
		b, err := r.bytes(pos, BatchHeaderSize)
		if err != nil {
			return false, fmt.Errorf("partition: read %s at %d: %w", s.path(), pos, err)
		}
		h, err := parseChained(b, expect, s.compacted.Load())
		if err != nil {
			return false, fmt.Errorf("partition: segment %s position %d: %w", s.path(), pos, err)
		}
		if fn(h, pos) {
			return true, nil
		}
		pos += int64(h.Size())
		expect = h.LastOffset() + 1
	}
	return false, nil
}

// OffsetForTimestamp finds the earliest batch whose MaxTimestamp >= ts and
// returns its base offset and MaxTimestamp (Kafka ListOffsets by time).
func (l *Log) OffsetForTimestamp(ts int64) (offset int64, batchTs int64, found bool, err error) {
	for {
		var gen uint64
		offset, batchTs, found, gen, err = l.offsetForTimestampOnce(ts)
		if gen == l.gen.Load() {
			return offset, batchTs, found, err
		}
	}
}

func (l *Log) offsetForTimestampOnce(ts int64) (int64, int64, bool, uint64, error) {
	l.mu.RLock()
	gen := l.gen.Load()
	if l.segs == nil {
		l.mu.RUnlock()
		return 0, 0, false, gen, ErrClosed
	}
	i := slices.IndexFunc(l.segs, func(s *segment) bool { return s.maxTs != noTimestamp && s.maxTs >= ts })
	if i < 0 {
		l.mu.RUnlock()
		return 0, 0, false, gen, nil
	}
	s := l.segs[i]
	pos, at := int64(0), s.base
	if rel, ok := lookupTime(s.timeIdx, ts); ok {
		pos, at = lookup(s.offIdx, s.base, rel)
	}
	end := s.size
	s.acquire()
	l.mu.RUnlock()
	defer s.release()

	var hit BatchHeader
	found, err := headerScan(s, pos, at, end, func(h BatchHeader, _ int64) bool {
		hit = h
		return h.MaxTimestamp >= ts
	})
	if err != nil || !found {
		return 0, 0, false, gen, err
	}
	return hit.BaseOffset, hit.MaxTimestamp, true, gen, nil
}

// MaxTimestampOffset finds, below offset end, the record with the largest
// timestamp (the first of them, where several share it) and returns its
// offset and timestamp: Kafka's ListOffsets for timestamp -3 (KIP-734).
// The record is found inside its batch, which is decompressed for it.
func (l *Log) MaxTimestampOffset(end int64) (offset int64, ts int64, found bool, err error) {
	for {
		var gen uint64
		offset, ts, found, gen, err = l.maxTimestampOnce(end)
		if gen == l.gen.Load() {
			return offset, ts, found, err
		}
	}
}

func (l *Log) maxTimestampOnce(end int64) (int64, int64, bool, uint64, error) {
	l.mu.RLock()
	gen := l.gen.Load()
	if l.segs == nil {
		l.mu.RUnlock()
		return 0, 0, false, gen, ErrClosed
	}
	type seg struct {
		s     *segment
		size  int64
		maxTs int64
		whole bool // every batch is below end: maxTs holds
	}
	var segs []seg
	for _, s := range l.segs {
		if s.base >= end || s.maxTs == noTimestamp {
			continue
		}
		s.acquire()
		segs = append(segs, seg{s: s, size: s.size, maxTs: s.maxTs, whole: s.next <= end})
	}
	l.mu.RUnlock()
	defer func() {
		for _, sg := range segs {
			sg.s.release()
		}
	}()
	// scan goes over a segment's batches under end for the largest
	// timestamp, or, when want is one, for the first batch that has it.
	scan := func(sg seg, want int64) (BatchHeader, int64, int64, error) {
		max, hitPos := int64(noTimestamp), int64(-1)
		var hit BatchHeader
		_, err := headerScan(sg.s, 0, sg.s.base, sg.size, func(h BatchHeader, pos int64) bool {
			if h.BaseOffset >= end {
				return true
			}
			if want != noTimestamp && h.MaxTimestamp == want {
				hit, hitPos = h, pos
				return true
			}
			max = maxTimestamp(max, h.MaxTimestamp)
			return false
		})
		return hit, hitPos, max, err
	}
	best, at := int64(noTimestamp), -1
	for i, sg := range segs {
		m := sg.maxTs
		if !sg.whole {
			var err error
			if _, _, m, err = scan(sg, noTimestamp); err != nil {
				return 0, 0, false, gen, err
			}
		}
		if m != noTimestamp && (best == noTimestamp || m > best) {
			best, at = m, i
		}
	}
	if at < 0 {
		return 0, 0, false, gen, nil
	}
	h, pos, _, err := scan(segs[at], best)
	if err != nil || pos < 0 {
		return 0, 0, false, gen, err
	}
	b := make([]byte, h.Size())
	if _, err := segs[at].s.f.ReadAt(b, pos); err != nil {
		return 0, 0, false, gen, fmt.Errorf("partition: read %s at %d: %w", segs[at].s.path(), pos, err)
	}
	// A client wrote the batch: a record the header does not account
	// for, or one that does not decode, leaves the answer at the batch.
	last := min(h.LastOffset(), end-1)
	recs, offs, err := DecodeRecords(b)
	if err != nil {
		return h.BaseOffset, best, true, gen, nil
	}
	for i, r := range recs {
		if r.Timestamp == best || h.IsControl() || h.LogAppendTime() {
			return max(h.BaseOffset, min(offs[i], last)), best, true, gen, nil
		}
	}
	return last, best, true, gen, nil
}

func maxTimestamp(a, b int64) int64 {
	if a == noTimestamp || b > a {
		return b
	}
	return a
}

package partition

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CompactRecord is one record of a stored data batch, as compaction sees
// it.
type CompactRecord struct {
	Offset    int64
	Timestamp int64
	// Key is nil for a null key; it aliases a buffer only valid during
	// the callback.
	Key []byte
	// Tombstone is a null value.
	Tombstone bool
}

// BatchAction is what compaction does with a whole batch.
type BatchAction int

const (
	// FilterRecords asks Compaction.Record about each record.
	FilterRecords BatchAction = iota
	// KeepBatch keeps the batch as it is (transaction markers).
	KeepBatch
	// DropBatch removes the batch (an aborted transaction's records).
	DropBatch
)

// Compaction says which records of the batches wholly below UpTo a
// compaction keeps. A batch whose records are all removed is dropped:
// the log then skips its offsets (readers are given the next batch).
// Producer state lives in the partition's snapshots, not in its batches,
// so nothing needs a producer's last batch kept, as Kafka does.
type Compaction struct {
	UpTo   int64
	Batch  func(h BatchHeader) BatchAction
	Record func(h BatchHeader, r CompactRecord) bool
	// Marker, if set, says whether a transaction marker below UpTo stays;
	// without it every marker stays.
	Marker func(h BatchHeader, commit bool) bool
	// Pace, if set, is told of every batch's bytes as they are read, and
	// may sleep to hold the pass to a rate.
	Pace func(bytes int)
}

// CompactStats counts what a compaction pass did.
type CompactStats struct {
	// CleanedTo is the offset below which every closed segment was
	// compacted: UpTo, or the active segment's base where that is lower.
	CleanedTo int64
	// Skipped counts segments that changed during the pass and were left.
	Skipped                 int
	Segments                int   // segments rewritten
	BytesBefore, BytesAfter int64 // of the rewritten segments
	// BytesRead is the bytes of every closed segment the pass went
	// through, changed or not.
	BytesRead      int64
	RecordsRemoved int64
}

// eachRecord calls fn with every record of a data batch: its bytes as
// stored in the (decompressed) records section, and what compaction
// looks at. body is the decompressed records section.
func eachRecord(b []byte, h BatchHeader, fn func(raw []byte, r CompactRecord)) (body []byte, err error) {
	body, err = decompress(h.Compression(), b[BatchHeaderSize:h.Size()])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptBatch, err)
	}
	rest := body
	for i := int32(0); i < h.NumRecords; i++ {
		length, n := binary.Varint(rest)
		if n <= 0 || length < 0 || int64(len(rest)-n) < length {
			return nil, fmt.Errorf("%w: record %d truncated", ErrCorruptBatch, i)
		}
		raw := rest[:n+int(length)]
		var rec kmsg.Record
		if err := rec.ReadFrom(raw); err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrCorruptBatch, i, err)
		}
		if rec.OffsetDelta < 0 || rec.OffsetDelta > h.LastOffsetDelta {
			return nil, fmt.Errorf("%w: record %d at offset delta %d", ErrCorruptBatch, i, rec.OffsetDelta)
		}
		fn(raw, CompactRecord{Offset: h.BaseOffset + int64(rec.OffsetDelta), Timestamp: h.FirstTimestamp + rec.TimestampDelta64,
			Key: rec.Key, Tombstone: rec.Value == nil})
		rest = rest[n+int(length):]
	}
	return body, nil
}

// ScanRecords calls fn for every record of the data batches in [from,
// upTo), in offset order; skip leaves whole batches out.
func (l *Log) ScanRecords(from, upTo int64, skip func(BatchHeader) bool, pace func(int), fn func(BatchHeader, CompactRecord)) error {
	for off := max(from, l.StartOffset()); off < upTo; {
		data, err := l.Read(off, 1<<20, upTo)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			return nil // compaction removed everything up to upTo
		}
		batches, err := SplitBatches(data)
		if err != nil || len(batches) == 0 {
			return fmt.Errorf("partition: scan at offset %d: %v", off, err)
		}
		if pace != nil {
			pace(len(data))
		}
		for _, b := range batches {
			h, err := ValidateBatch(b)
			if err != nil {
				return err
			}
			off = h.LastOffset() + 1
			if h.IsControl() || skip(h) {
				continue
			}
			if _, err := eachRecord(b, h, func(_ []byte, r CompactRecord) { fn(h, r) }); err != nil {
				return err
			}
		}
	}
	return nil
}

// filterBatch rewrites one batch with only the records keep accepts,
// recompressed with the batch's codec. The header keeps everything but
// the record count, length and CRC, so filtering a filtered batch again
// with the same or a stricter keep gives the same bytes. It returns b
// itself when nothing is removed, and nil when everything is.
func filterBatch(b []byte, h BatchHeader, action BatchAction, keep func(CompactRecord) bool) ([]byte, int, error) {
	if action == KeepBatch || h.NumRecords == 0 {
		return b, 0, nil
	}
	var kept [][]byte
	_, err := eachRecord(b, h, func(raw []byte, r CompactRecord) {
		if action == FilterRecords && keep(r) {
			kept = append(kept, raw)
		}
	})
	if err != nil {
		return nil, 0, err
	}
	removed := int(h.NumRecords) - len(kept)
	switch {
	case removed == 0:
		return b, 0, nil
	case len(kept) == 0:
		return nil, removed, nil
	}
	records := bytes.Join(kept, nil)
	if h.Compression() != codecNone {
		if records, err = compress(h.Compression(), records); err != nil {
			return nil, 0, err
		}
	}
	return withRecords(b, h.Attributes, int32(len(kept)), records), removed, nil
}

// withRecords is batch b's header with a new records section, attributes
// and record count; length and CRC follow.
func withRecords(b []byte, attrs int16, count int32, records []byte) []byte {
	out := make([]byte, BatchHeaderSize, BatchHeaderSize+len(records))
	copy(out, b[:BatchHeaderSize])
	out = append(out, records...)
	binary.BigEndian.PutUint32(out[posLength:], uint32(len(out)-lengthPrefix))
	binary.BigEndian.PutUint16(out[posAttributes:], uint16(attrs))
	binary.BigEndian.PutUint32(out[posNumRecords:], uint32(count))
	binary.BigEndian.PutUint32(out[posCRC:], crc32.Checksum(out[posAttributes:], crcTable))
	return out
}

var zstdEncoders = sync.Pool{New: func() any {
	e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	return e
}}

// compress encodes a records section with codec, the same bytes for the
// same input on every replica.
func compress(codec int8, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch codec {
	case codecGzip:
		w, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case codecSnappy:
		return snappy.Encode(nil, data), nil
	case codecLZ4:
		w := lz4.NewWriter(&buf)
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case codecZstd:
		e := zstdEncoders.Get().(*zstd.Encoder)
		defer zstdEncoders.Put(e)
		return e.EncodeAll(data, nil), nil
	}
	return nil, fmt.Errorf("unknown compression codec %d", codec)
}

const cleanedSuffix = ".cleaned"

// errCompactionRaced means the segment changed under a compaction (a
// truncation, a reset, retention); the pass is given up and retried.
var errCompactionRaced = errors.New("segment changed during compaction")

// Compact rewrites the closed segments that hold batches below c.UpTo,
// one at a time, keeping the records c accepts; offsets do not change.
// The rewrite reads and writes without the writer lock, so appends and
// reads go on; each rewritten segment then replaces the old one in a
// short swap. A segment that changed meanwhile is left for a later pass.
func (l *Log) Compact(c Compaction) (CompactStats, error) {
	var st CompactStats
	l.mu.RLock()
	if l.segs == nil {
		l.mu.RUnlock()
		return st, ErrClosed
	}
	st.CleanedTo = min(c.UpTo, l.segs[len(l.segs)-1].base)
	var todo []*segment
	for i, s := range l.segs {
		if i < len(l.segs)-1 && s.base < c.UpTo {
			s.acquire()
			todo = append(todo, s)
		}
	}
	l.mu.RUnlock()
	defer func() {
		for _, s := range todo {
			s.release()
		}
	}()
	for _, s := range todo {
		if err := l.compactSegment(s, c, &st); err != nil {
			if errors.Is(err, errCompactionRaced) {
				st.Skipped++
				continue
			}
			return st, err
		}
	}
	return st, nil
}

func (l *Log) compactSegment(old *segment, c Compaction, st *CompactStats) error {
	l.mu.RLock()
	size := old.size
	l.mu.RUnlock()
	tmp := old.path() + cleanedSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	ns := newSegment(l.dir, old.base, f)
	swapped := false
	defer func() {
		if !swapped {
			ns.closeFiles()
			os.Remove(tmp)
		}
	}()
	removed, err := l.rewriteInto(old, size, ns, c)
	st.BytesRead += size
	if err != nil || removed == 0 {
		return err
	}
	if ns.size == 0 {
		if err := l.dropEmptied(old, size); err != errKeepEmpty {
			if err == nil {
				st.Segments++
				st.BytesBefore += size
				st.RecordsRemoved += int64(removed)
			}
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := l.swapSegment(old, size, ns, tmp); err != nil {
		return err
	}
	swapped = true
	st.Segments++
	st.BytesBefore += size
	st.BytesAfter += ns.size
	st.RecordsRemoved += int64(removed)
	return nil
}

// rewriteInto writes old's batches, filtered where wholly below c.UpTo,
// into ns and builds its indexes in memory. It returns the records
// removed.
func (l *Log) rewriteInto(old *segment, size int64, ns *segment, c Compaction) (int, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(old.f, 0, size), 1<<20)
	w := bufio.NewWriterSize(ns.f, 1<<20)
	interval := l.config().IndexIntervalBytes
	var head [lengthPrefix]byte
	var buf []byte
	var pos int64
	removed := 0
	for read := int64(0); read < size; {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return 0, fmt.Errorf("%w: segment %s at %d: %v", ErrCorruptBatch, old.path(), read, err)
		}
		n := int64(int32(binary.BigEndian.Uint32(head[posLength:])))
		if n < minBatchLength || read+lengthPrefix+n > size {
			return 0, fmt.Errorf("%w: segment %s at %d: length %d", ErrCorruptBatch, old.path(), read, n)
		}
		buf = append(append(buf[:0], head[:]...), make([]byte, n)...)
		if _, err := io.ReadFull(r, buf[lengthPrefix:]); err != nil {
			return 0, err
		}
		read += int64(len(buf))
		if c.Pace != nil {
			c.Pace(len(buf))
		}
		h, err := ValidateBatch(buf)
		if err != nil {
			return 0, fmt.Errorf("segment %s: %w", old.path(), err)
		}
		out := buf
		if h.LastOffset() < c.UpTo && h.IsControl() && c.Marker != nil {
			if commit, ok := ControlType(buf); ok && !c.Marker(h, commit) {
				removed += int(h.NumRecords)
				continue
			}
		}
		if h.LastOffset() < c.UpTo && !h.IsControl() {
			var k int
			out, k, err = filterBatch(buf, h, c.Batch(h), func(rec CompactRecord) bool { return c.Record(h, rec) })
			if err != nil {
				return 0, fmt.Errorf("segment %s: %w", old.path(), err)
			}
			removed += k
			if out == nil {
				continue
			}
			if k > 0 {
				h, _ = ParseBatchHeader(out)
			}
		}
		if _, err := w.Write(out); err != nil {
			return 0, err
		}
		ns.observe(h, pos, interval)
		pos += int64(len(out))
	}
	return removed, w.Flush()
}

// errKeepEmpty: the first segment stays, even empty, so the log keeps a
// segment at or below its start offset.
var errKeepEmpty = errors.New("first segment kept")

// dropEmptied removes a closed segment that compaction left without a
// batch, instead of keeping an empty file: nothing is lost if a crash
// comes at any point. The segment before it is marked first, so that the
// gap its removal leaves is allowed.
func (l *Log) dropEmptied(old *segment, size int64) error {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	l.mu.RLock()
	i := slices.Index(l.segs[:len(l.segs)-1], old)
	same := i >= 0 && old.size == size
	l.mu.RUnlock()
	switch {
	case !same:
		return errCompactionRaced
	case i == 0:
		return errKeepEmpty
	}
	if err := l.segs[i-1].markCompacted(); err != nil {
		return err
	}
	l.mu.Lock()
	l.segs = slices.Delete(slices.Clone(l.segs), i, i+1)
	l.gen.Add(1)
	l.compactions.Add(1)
	l.mu.Unlock()
	if err := old.removeFiles(); err != nil {
		return err
	}
	old.release()
	if err := SyncDir(l.dir); err != nil {
		return err
	}
	return l.notePowerLoss(segmentSizes(l.dir, old.base))
}

// swapSegment puts the rewritten segment in place of old, if old is still
// a closed segment of the log with the size it was read at. Index files
// go first: a crash before the new ones are written leaves none, and
// they are rebuilt from the segment on the next open.
func (l *Log) swapSegment(old *segment, size int64, ns *segment, tmp string) error {
	// segMu first: a snapshot copying segments holds it for a while, and
	// appends must not wait behind that for the writer lock.
	l.segMu.Lock()
	defer l.segMu.Unlock()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	l.mu.RLock()
	i := -1
	for k, s := range l.segs[:len(l.segs)-1] {
		if s == old {
			i = k
		}
	}
	same := i >= 0 && old.size == size
	l.mu.RUnlock()
	if !same {
		return errCompactionRaced
	}
	if err := ns.markCompacted(); err != nil {
		return err
	}
	for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
		if err := os.Remove(segmentPath(l.dir, old.base, suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	// The old index files must be gone for good before the new file takes
	// the name, or a crash could pair them with it.
	if err := SyncDir(l.dir); err != nil {
		return err
	}
	if err := os.Rename(tmp, old.path()); err != nil {
		return err
	}
	if err := SyncDir(l.dir); err != nil {
		return err
	}
	if err := ns.rewriteIndexes(); err != nil {
		return err
	}
	if err := ns.sync(); err != nil {
		return err
	}
	// The rewritten files are durable now, whatever the journal says.
	if err := l.notePowerLoss(segmentSizes(l.dir, ns.base)); err != nil {
		return err
	}
	l.mu.Lock()
	l.segs[i] = ns
	l.gen.Add(1)
	l.compactions.Add(1)
	l.mu.Unlock()
	old.release()
	return nil
}

// RollBefore closes the active segment, starting a new one at the end of
// the log, if the active one begins below offset and holds batches: a
// compaction to offset can then reach every batch below it. Replicas roll
// at different offsets; that changes files, not batches.
func (l *Log) RollBefore(offset int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	s := l.active()
	if s.base >= offset || s.size == 0 {
		return nil
	}
	if err := l.roll(l.next.Load()); err != nil {
		return err
	}
	return l.sync()
}

// ActiveBase is the base offset of the active segment: compaction
// reaches no further.
func (l *Log) ActiveBase() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.segs == nil {
		return l.next.Load()
	}
	return l.segs[len(l.segs)-1].base
}

// Compactions counts segments replaced by compaction; a snapshot that
// names segment sizes checks it did not move (StableSegments).
func (l *Log) Compactions() uint64 { return l.compactions.Load() }

// StableSegments runs fn while no compaction can replace a segment: a
// snapshot links or copies segment files under it.
func (l *Log) StableSegments(fn func() error) error {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return fn()
}

func removeCleanedFiles(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, cleanedSuffix) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// HasNullKey reports whether any record of a batch has a null key: a
// compacted topic refuses those.
func HasNullKey(b []byte) (bool, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return false, err
	}
	null := false
	_, err = eachRecord(b, h, func(_ []byte, r CompactRecord) { null = null || r.Key == nil })
	return null, err
}

// Recompress re-encodes a batch's records with codec (0 for none), for
// a topic whose compression.type names one. The header keeps its fields;
// a batch already in codec is returned as it is.
func Recompress(b []byte, codec int8) ([]byte, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return nil, err
	}
	if h.Compression() == codec {
		return b, nil
	}
	records, err := decompress(h.Compression(), b[BatchHeaderSize:h.Size()])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptBatch, err)
	}
	if codec != codecNone {
		if records, err = compress(codec, records); err != nil {
			return nil, err
		}
	}
	return withRecords(b, h.Attributes&^0x07|int16(codec), h.NumRecords, records), nil
}

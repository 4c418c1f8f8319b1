package partition

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// keyedLog appends n batches of three records each, keys cycling through
// keys, every fifth record a tombstone, batch i compressed with codec
// i%5; timestamps are the offsets.
func keyedLog(t *testing.T, l *Log, n, keys int) {
	t.Helper()
	off := l.NextOffset()
	for i := 0; i < n; i++ {
		var recs []Record
		for j := 0; j < 3; j++ {
			o := off + int64(j)
			r := Record{Key: []byte(fmt.Sprintf("k%03d", o%int64(keys))), Value: []byte(fmt.Sprintf("v%06d", o)), Timestamp: o}
			if o%5 == 4 {
				r.Value = nil
			}
			recs = append(recs, r)
		}
		b := EncodeBatch(off, -1, -1, -1, recs)
		if codec := int8(i % 5); codec != codecNone {
			b = compressBatch(t, b, codec, i%2 == 0)
		}
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		off += 3
	}
}

// latestCompaction keeps each key's latest record below upTo and drops
// tombstones older than horizon.
func latestCompaction(t *testing.T, l *Log, upTo, horizon int64) Compaction {
	t.Helper()
	latest := map[string]int64{}
	if err := l.ScanRecords(l.StartOffset(), upTo, func(BatchHeader) bool { return false }, nil, func(_ BatchHeader, r CompactRecord) {
		latest[string(r.Key)] = r.Offset
	}); err != nil {
		t.Fatal(err)
	}
	return Compaction{UpTo: upTo,
		Batch: func(BatchHeader) BatchAction { return FilterRecords },
		Record: func(_ BatchHeader, r CompactRecord) bool {
			return latest[string(r.Key)] == r.Offset && !(r.Tombstone && r.Timestamp < horizon)
		}}
}

// readAll decodes every record the log serves from its start.
func readAllRecords(t *testing.T, l *Log) map[int64]Record {
	t.Helper()
	out := map[int64]Record{}
	for off := l.StartOffset(); off < l.NextOffset(); {
		data, err := l.Read(off, 1<<20, l.NextOffset())
		if err != nil {
			t.Fatal(err)
		}
		batches, err := SplitBatches(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			recs, offs, err := DecodeRecords(b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range recs {
				out[offs[i]] = recs[i]
			}
			h, _ := ParseBatchHeader(b)
			off = h.LastOffset() + 1
		}
	}
	return out
}

func TestCompactKeepsLatestPerKey(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	l := openLog(t, dir, cfg)
	keyedLog(t, l, 200, 7)
	before := readAllRecords(t, l)
	upTo := l.Segments()[len(l.Segments())-1].BaseOffset
	st, err := l.Compact(latestCompaction(t, l, upTo, 300))
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments == 0 || st.BytesAfter >= st.BytesBefore || st.RecordsRemoved == 0 {
		t.Fatalf("stats %+v", st)
	}
	after := readAllRecords(t, l)
	latest := map[string]int64{}
	for off := int64(0); off < upTo; off++ {
		latest[string(before[off].Key)] = off
	}
	for off, r := range before {
		got, kept := after[off]
		want := off >= upTo || latest[string(r.Key)] == off && !(r.Value == nil && r.Timestamp < 300)
		if kept != want {
			t.Fatalf("offset %d (key %s, value %q): kept %v, want %v", off, r.Key, r.Value, kept, want)
		}
		if kept && (!bytes.Equal(got.Key, r.Key) || !bytes.Equal(got.Value, r.Value) || got.Timestamp != r.Timestamp) {
			t.Fatalf("offset %d changed: %+v, was %+v", off, got, r)
		}
	}
	if l.NextOffset() != 600 {
		t.Fatalf("next offset %d", l.NextOffset())
	}
	// Again with the same rule: nothing changes. Reopened: the same log.
	if st, err := l.Compact(latestCompaction(t, l, upTo, 300)); err != nil || st.Segments != 0 {
		t.Fatalf("second pass: %+v %v", st, err)
	}
	snapshot := logFiles(t, l)
	l.Close()
	l = openLog(t, dir, cfg)
	defer l.Close()
	if got := readAllRecords(t, l); len(got) != len(after) {
		t.Fatalf("reopened: %d records, want %d", len(got), len(after))
	}
	if !bytes.Equal(logFiles(t, l), snapshot) {
		t.Fatal("reopened log differs")
	}
	if err := l.Append(EncodeBatch(600, -1, -1, -1, []Record{{Key: []byte("k"), Value: []byte("v"), Timestamp: 600}})); err != nil {
		t.Fatal(err)
	}
}

// Compacting in two steps (a lower target first) gives the bytes a
// single compaction to the higher target gives, whatever the segments.
func TestCompactIsComposable(t *testing.T) {
	a := openLog(t, t.TempDir(), smallConfig())
	defer a.Close()
	cfgB := smallConfig()
	cfgB.SegmentBytes = 3000
	b := openLog(t, t.TempDir(), cfgB)
	defer b.Close()
	keyedLog(t, a, 300, 11)
	keyedLog(t, b, 300, 11)
	if _, err := a.Compact(latestCompaction(t, a, 300, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Compact(latestCompaction(t, a, 600, 200)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Compact(latestCompaction(t, b, 600, 200)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(batchStream(t, a, 600), batchStream(t, b, 600)) {
		t.Fatal("compacted batches differ")
	}
}

func batchStream(t *testing.T, l *Log, upTo int64) []byte {
	t.Helper()
	data, err := l.Read(l.StartOffset(), 1<<30, upTo)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func logFiles(t *testing.T, l *Log) []byte {
	t.Helper()
	var all []byte
	for _, s := range l.Segments() {
		b, err := os.ReadFile(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// A compaction's leftover output (a crash before its swap) is removed
// when the log opens.
func TestCompactLeftoverRemoved(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, smallConfig())
	keyedLog(t, l, 50, 3)
	l.Close()
	stale := filepath.Join(dir, fmt.Sprintf("%020d.log%s", 0, cleanedSuffix))
	if err := os.WriteFile(stale, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, smallConfig())
	defer l.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("leftover kept: %v", err)
	}
}

// After compaction removed whole batches (and whole segments),
// a read at any offset returns the first batch that still holds a record
// at or after it, across the gaps, and so does the reopened log; the gaps
// are allowed only in segments compaction marked.
func TestReadAcrossCompactionGaps(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	l := openLog(t, dir, cfg)
	keyedLog(t, l, 200, 4)
	segsBefore := len(l.Segments())
	upTo := l.Segments()[len(l.Segments())-1].BaseOffset
	if _, err := l.Compact(latestCompaction(t, l, upTo, 0)); err != nil {
		t.Fatal(err)
	}
	// Emptied segments are removed, but for the first.
	if n := len(l.Segments()); n >= segsBefore/2 {
		t.Fatalf("%d segments left of %d", n, segsBefore)
	}
	check := func(l *Log) {
		t.Helper()
		recs := readAllRecords(t, l)
		var kept []int64
		for off := range recs {
			kept = append(kept, off)
		}
		slices.Sort(kept)
		for o := l.StartOffset(); o < l.NextOffset(); o++ {
			data, err := l.Read(o, 1, l.NextOffset())
			if err != nil {
				t.Fatalf("read at %d: %v", o, err)
			}
			i, _ := slices.BinarySearch(kept, o)
			_, offs, err := DecodeRecords(data[:mustHeader(t, data).Size()])
			if err != nil || i == len(kept) || !slices.Contains(offs, kept[i]) {
				t.Fatalf("read at %d: records %v (%v), want the one at %d", o, offs, err, kept[i])
			}
		}
	}
	check(l)
	l.Close()
	l = openLog(t, dir, cfg)
	defer l.Close()
	check(l)
	if err := l.Verify(l.NextOffset()); err != nil {
		t.Fatal(err)
	}
	// A copy of the compacted batches appends with its gaps.
	c := openLog(t, t.TempDir(), cfg)
	defer c.Close()
	if err := c.Reset(l.StartOffset()); err != nil {
		t.Fatal(err)
	}
	data, err := l.Read(l.StartOffset(), 1<<30, l.NextOffset())
	if err != nil {
		t.Fatal(err)
	}
	batches, _ := SplitBatches(data)
	for _, b := range batches {
		if err := c.AppendCompacted(b); err != nil {
			t.Fatal(err)
		}
	}
	if c.NextOffset() != l.NextOffset() {
		t.Fatalf("copy ends at %d, want %d", c.NextOffset(), l.NextOffset())
	}
	c.Close()
	c = openLog(t, c.dir, cfg)
	defer c.Close()
	if err := c.Verify(c.NextOffset()); err != nil {
		t.Fatalf("reopened copy: %v", err)
	}
	check(c)
}

// Recovery truncates to a checkpoint's end offset, whose batch compaction
// may have removed since; SkipTo moves the end of a copied log past a
// removed tail. Both leave a log that appends and reopens.
func TestTruncateAndSkipInCompactedLog(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	l := openLog(t, dir, cfg)
	keyedLog(t, l, 200, 4)
	upTo := l.Segments()[len(l.Segments())-1].BaseOffset
	before := readAllRecords(t, l)
	if _, err := l.Compact(latestCompaction(t, l, upTo, 0)); err != nil {
		t.Fatal(err)
	}
	after := readAllRecords(t, l)
	// An offset whose batch is gone: every batch starts at a multiple of 3.
	cut := int64(-1)
	for off := upTo - 3; off > 0; off -= 3 {
		if _, kept := after[off]; !kept && before[off].Key != nil {
			cut = off
			break
		}
	}
	if cut < 0 {
		t.Fatal("no removed batch to cut at")
	}
	if err := l.Truncate(cut); err != nil {
		t.Fatalf("truncate to a removed batch: %v", err)
	}
	if l.NextOffset() != cut {
		t.Fatalf("next %d after truncating to %d", l.NextOffset(), cut)
	}
	// The end survives a restart with nothing appended after it.
	l.Close()
	l = openLog(t, dir, cfg)
	if l.NextOffset() != cut {
		t.Fatalf("next %d after truncating to %d and reopening", l.NextOffset(), cut)
	}
	if err := l.Verify(l.NextOffset()); err != nil {
		t.Fatal(err)
	}
	if err := l.SkipTo(cut + 30); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(EncodeBatch(cut+30, -1, -1, -1, []Record{{Key: []byte("k"), Value: []byte("v"), Timestamp: 1}})); err != nil {
		t.Fatal(err)
	}
	want := readAllRecords(t, l)
	l.Close()
	l = openLog(t, dir, cfg)
	defer l.Close()
	if l.NextOffset() != cut+31 || len(readAllRecords(t, l)) != len(want) {
		t.Fatalf("reopened: next %d, %d records, want %d and %d", l.NextOffset(), len(readAllRecords(t, l)), cut+31, len(want))
	}
	if err := l.Verify(l.NextOffset()); err != nil {
		t.Fatal(err)
	}
}

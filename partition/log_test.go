package partition

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// variedBatch makes batches of 1-5 records and 0-150 byte values.
func variedBatch(rng *rand.Rand) func(int, int64) []byte {
	return func(_ int, base int64) []byte {
		return simpleBatch(base, 1+rng.IntN(5), rng.IntN(150), 1000+base)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	tests := []struct {
		name string
		mut  func(*Config)
	}{
		{"SegmentBytes", func(c *Config) { c.SegmentBytes = 100 }},
		{"SegmentBytes", func(c *Config) { c.SegmentBytes = 1 << 31 }},
		{"SegmentMs", func(c *Config) { c.SegmentMs = -1 }},
		{"SegmentMs", func(c *Config) { c.SegmentMs = time.Microsecond }},
		{"IndexIntervalBytes", func(c *Config) { c.IndexIntervalBytes = 0 }},
		{"MaxBatchBytes", func(c *Config) { c.MaxBatchBytes = 10 }},
		{"MaxBatchBytes", func(c *Config) { c.MaxBatchBytes = 2 << 30 }},
	}
	for _, tc := range tests {
		c := DefaultConfig()
		tc.mut(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !bytes.Contains([]byte(err.Error()), []byte(tc.name)) {
			t.Errorf("%s: got %v", tc.name, err)
		}
		if _, err := Open(t.TempDir(), c, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Open accepted invalid config: %v", tc.name, err)
		}
	}
}

func TestAppendReadRoundTrip(t *testing.T) {
	configs := map[string]Config{
		"default":        DefaultConfig(),
		"small segments": smallConfig(),
		"dense index":    func() Config { c := smallConfig(); c.IndexIntervalBytes = 1; return c }(),
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			l := openLog(t, t.TempDir(), cfg)
			defer l.Close()
			want := appendAll(t, l, 60, variedBatch(rand.New(rand.NewPCG(1, 2))))
			checkReadAll(t, l, want)
			// Every offset, including those inside a batch, reads the
			// batch that contains it.
			for _, b := range want {
				h := mustHeader(t, b)
				for off := h.BaseOffset; off <= h.LastOffset(); off++ {
					got, err := l.Read(off, 1, l.NextOffset())
					if err != nil || !bytes.Equal(got, b) {
						t.Fatalf("Read(%d) = %d bytes, %v; want batch at %d", off, len(got), err, h.BaseOffset)
					}
				}
			}
		})
	}
}

func TestReadLimits(t *testing.T) {
	l := openLog(t, t.TempDir(), smallConfig())
	defer l.Close()
	// Three records per batch: batch i covers offsets 3i..3i+2.
	want := appendAll(t, l, 12, func(i int, base int64) []byte { return simpleBatch(base, 3, 40+i, int64(i)) })
	sz := func(i int) int { return len(want[i]) }
	cat := func(from, to int) []byte { return bytes.Join(want[from:to], nil) }
	next := l.NextOffset()
	tests := []struct {
		name      string
		offset    int64
		maxBytes  int
		maxOffset int64
		want      []byte
		err       error
	}{
		{"whole first batch", 0, sz(0), next, cat(0, 1), nil},
		{"two batches fit exactly", 0, sz(0) + sz(1), next, cat(0, 2), nil},
		{"second batch one byte short", 0, sz(0) + sz(1) - 1, next, cat(0, 1), nil},
		{"first batch always returned", 4, 1, next, cat(1, 2), nil},
		{"zero maxBytes", 4, 0, next, cat(1, 2), nil},
		{"negative maxBytes", 4, -5, next, cat(1, 2), nil},
		{"maxOffset at boundary", 0, 1 << 20, 9, cat(0, 3), nil},
		{"maxOffset mid batch includes it", 0, 1 << 20, 10, cat(0, 4), nil},
		{"mid batch start", 5, 1 << 20, 9, cat(1, 3), nil},
		{"offset at maxOffset", 9, 1 << 20, 9, nil, nil},
		{"offset past maxOffset", 10, 1 << 20, 9, nil, nil},
		{"offset at next", next, 1 << 20, next + 5, nil, nil},
		{"across segments", 0, 1 << 20, next, cat(0, 12), nil},
		{"huge maxBytes", 1, math.MaxInt, math.MaxInt64, cat(0, 12), nil},
		{"below start", -1, 1 << 20, next, nil, ErrOffsetOutOfRange},
		{"past next", next + 1, 1 << 20, next + 5, nil, ErrOffsetOutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Read(tc.offset, tc.maxBytes, tc.maxOffset)
			if tc.err != nil {
				wantErr(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes (%d batches), want %d bytes", len(got), len(splitOrFail(t, got)), len(tc.want))
			}
			if tc.want == nil && got != nil {
				t.Fatal("want nil slice")
			}
		})
	}
	if n := len(l.Segments()); n < 3 {
		t.Fatalf("test needs several segments, have %d", n)
	}
}

func TestRollBySize(t *testing.T) {
	cfg := smallConfig()
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	appendAll(t, l, 10, func(_ int, base int64) []byte { return simpleBatch(base, 1, 250, 0) })
	big := simpleBatch(l.NextOffset(), 1, 2000, 0)
	if err := l.Append(big); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, 2, func(_ int, base int64) []byte { return simpleBatch(base, 1, 250, 0) })
	segs := l.Segments()
	var total int64
	for i, s := range segs {
		total += s.Size
		if s.Size > cfg.SegmentBytes && s.Size != int64(len(big)) {
			t.Errorf("segment %d has %d bytes, over SegmentBytes", i, s.Size)
		}
		if fileSize(t, s.Path) != s.Size {
			t.Errorf("segment %d file size %d, want %d", i, fileSize(t, s.Path), s.Size)
		}
	}
	if total != l.Size() {
		t.Fatalf("Size() = %d, segments sum to %d", l.Size(), total)
	}
	// 317-byte batches: three fit in 1 KiB, so 10 take 4 segments, then the
	// big batch alone, then the last two together.
	if len(segs) != 6 || segs[4].BaseOffset != 10 || segs[4].Size != int64(len(big)) {
		t.Fatalf("unexpected segments %+v", segs)
	}
}

func TestRollByTime(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentMs = time.Second
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	// The roll compares batch MaxTimestamps, so out-of-order and even
	// older timestamps must not roll.
	stamps := []int64{5000, 5500, 4000, 5999, 6000, 6100, 6999, 7000, 100}
	for _, ts := range stamps {
		if err := l.Append(simpleBatch(l.NextOffset(), 1, 10, ts)); err != nil {
			t.Fatal(err)
		}
	}
	var bases []int64
	for _, s := range l.Segments() {
		bases = append(bases, s.BaseOffset)
	}
	if want := []int64{0, 4, 7}; !slicesEqual(bases, want) {
		t.Fatalf("segment bases %v, want %v", bases, want)
	}
	// After reopen the active segment's first timestamp must be known.
	l.Close()
	l = openLog(t, l.dir, cfg)
	defer l.Close()
	if err := l.Append(simpleBatch(l.NextOffset(), 1, 10, 8000)); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Segments()); n != 4 {
		t.Fatalf("%d segments after reopen roll, want 4", n)
	}
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReopenSameState(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, smallConfig())
	rng := rand.New(rand.NewPCG(3, 4))
	want := appendAll(t, l, 40, variedBatch(rng))
	segs, next := l.Segments(), l.NextOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, l.Append(simpleBatch(next, 1, 1, 0)), ErrClosed)
	_, err := l.Read(0, 100, next)
	wantErr(t, err, ErrClosed)
	wantErr(t, l.Close(), ErrClosed)

	for round := 0; round < 2; round++ {
		l = openLog(t, dir, smallConfig())
		if l.NextOffset() != next || l.StartOffset() != 0 {
			t.Fatalf("reopen: start %d next %d, want 0 %d", l.StartOffset(), l.NextOffset(), next)
		}
		got := l.Segments()
		if len(got) != len(segs) {
			t.Fatalf("reopen: %d segments, want %d", len(got), len(segs))
		}
		for i := range got {
			if got[i] != segs[i] {
				t.Fatalf("segment %d: %+v, want %+v", i, got[i], segs[i])
			}
		}
		checkReadAll(t, l, want)
		l.Close()
	}
	l = openLog(t, dir, smallConfig())
	defer l.Close()
	want = append(want, appendAll(t, l, 5, variedBatch(rng))...)
	checkReadAll(t, l, want)
}

// bruteOffsetForTimestamp is the reference answer for OffsetForTimestamp.
func bruteOffsetForTimestamp(t *testing.T, batches [][]byte, ts int64) (int64, int64, bool) {
	for _, b := range batches {
		if h := mustHeader(t, b); h.MaxTimestamp >= ts {
			return h.BaseOffset, h.MaxTimestamp, true
		}
	}
	return 0, 0, false
}

func checkOffsetForTimestamp(t *testing.T, l *Log, batches [][]byte, lo, hi int64) {
	t.Helper()
	for ts := lo; ts <= hi; ts++ {
		off, bts, found, err := l.OffsetForTimestamp(ts)
		if err != nil {
			t.Fatal(err)
		}
		woff, wts, wfound := bruteOffsetForTimestamp(t, batches, ts)
		if off != woff || bts != wts || found != wfound {
			t.Fatalf("OffsetForTimestamp(%d) = %d %d %v, want %d %d %v", ts, off, bts, found, woff, wts, wfound)
		}
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	cfg.IndexIntervalBytes = 150
	l := openLog(t, dir, cfg)
	rng := rand.New(rand.NewPCG(5, 6))
	// Timestamps wander up with noise, so they are not monotonic.
	batches := appendAll(t, l, 80, func(i int, base int64) []byte {
		return simpleBatch(base, 1+rng.IntN(3), rng.IntN(80), int64(i*10+rng.IntN(40)))
	})
	if _, _, found, _ := l.OffsetForTimestamp(1 << 40); found {
		t.Fatal("found a batch newer than all")
	}
	checkOffsetForTimestamp(t, l, batches, -5, 900)
	l.Close()
	l = openLog(t, dir, cfg)
	defer l.Close()
	checkOffsetForTimestamp(t, l, batches, -5, 900)
}

func TestTruncate(t *testing.T) {
	cfg := smallConfig()
	rng := rand.New(rand.NewPCG(7, 8))
	mk := func(i int, base int64) []byte {
		return simpleBatch(base, 1+rng.IntN(3), rng.IntN(120), int64(1000-i*7+rng.IntN(30)))
	}
	for _, cut := range []int{0, 1, 5, 17, 18, 29, 30} {
		dir := t.TempDir()
		l := openLog(t, dir, cfg)
		batches := appendAll(t, l, 30, mk)
		offset := l.NextOffset()
		if cut < len(batches) {
			offset = mustHeader(t, batches[cut]).BaseOffset
		}
		if err := l.Truncate(offset); err != nil {
			t.Fatalf("Truncate(%d): %v", offset, err)
		}
		if l.NextOffset() != offset {
			t.Fatalf("NextOffset %d after Truncate(%d)", l.NextOffset(), offset)
		}
		kept := batches[:cut]
		checkReadAll(t, l, kept)
		checkOffsetForTimestamp(t, l, kept, 700, 1100)
		more := appendAll(t, l, 4, mk)
		kept = append(append([][]byte(nil), kept...), more...)
		checkReadAll(t, l, kept)
		l.Close()
		l = openLog(t, dir, cfg)
		checkReadAll(t, l, kept)
		checkOffsetForTimestamp(t, l, kept, 700, 1100)
		l.Close()
	}
}

func TestTruncateErrors(t *testing.T) {
	l := openLog(t, t.TempDir(), smallConfig())
	defer l.Close()
	appendAll(t, l, 10, func(_ int, base int64) []byte { return simpleBatch(base, 3, 100, 0) })
	wantErr(t, l.Truncate(4), ErrNotBatchBoundary)
	wantErr(t, l.Truncate(29), ErrNotBatchBoundary)
	wantErr(t, l.Truncate(31), ErrOffsetOutOfRange)
	wantErr(t, l.Truncate(-1), ErrOffsetOutOfRange)
	if err := l.Truncate(30); err != nil || l.NextOffset() != 30 {
		t.Fatalf("no-op truncate: %v, next %d", err, l.NextOffset())
	}
	if err := l.Truncate(3); err != nil || l.NextOffset() != 3 {
		t.Fatalf("truncate: %v, next %d", err, l.NextOffset())
	}
}

func TestReset(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	l := openLog(t, dir, cfg)
	appendAll(t, l, 20, func(_ int, base int64) []byte { return simpleBatch(base, 2, 100, 0) })
	if err := l.Reset(1000); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		if l.StartOffset() != 1000 || l.NextOffset() != 1000 || l.Size() != 0 || len(l.Segments()) != 1 {
			t.Fatalf("after reset: start %d next %d size %d segs %v", l.StartOffset(), l.NextOffset(), l.Size(), l.Segments())
		}
		if b, err := l.Read(1000, 100, 2000); b != nil || err != nil {
			t.Fatalf("Read of empty log: %v %v", b, err)
		}
		_, err := l.Read(0, 100, 2000)
		wantErr(t, err, ErrOffsetOutOfRange)
		if _, _, found, err := l.OffsetForTimestamp(0); found || err != nil {
			t.Fatalf("OffsetForTimestamp on empty log: %v %v", found, err)
		}
	}
	check()
	l.Close()
	l = openLog(t, dir, cfg)
	check()
	want := appendAll(t, l, 5, func(_ int, base int64) []byte { return simpleBatch(base, 2, 100, 0) })
	checkReadAll(t, l, want)
	if err := l.Reset(0); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, dir, cfg)
	defer l.Close()
	if l.StartOffset() != 0 || l.NextOffset() != 0 {
		t.Fatalf("reset to 0: start %d next %d", l.StartOffset(), l.NextOffset())
	}
	wantErr(t, l.Reset(-1), ErrOffsetOutOfRange)
}

func TestAdvanceStart(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	l := openLog(t, dir, cfg)
	batches := appendAll(t, l, 20, func(_ int, base int64) []byte { return simpleBatch(base, 1, 250, 0) })
	segs := l.Segments()
	// Inside the second segment: nothing is deleted, but reads below the
	// new start are refused.
	mid := segs[1].BaseOffset - 1
	if n, err := l.AdvanceStart(mid); n != 0 || err != nil {
		t.Fatalf("deleted %d (%v), want 0", n, err)
	}
	if l.StartOffset() != mid {
		t.Fatalf("start %d, want %d", l.StartOffset(), mid)
	}
	_, err := l.Read(mid-1, 100, l.NextOffset())
	wantErr(t, err, ErrOffsetOutOfRange)
	checkReadAll(t, l, batches[mid:])
	if n, err := l.AdvanceStart(mid - 1); n != 0 || err != nil || l.StartOffset() != mid {
		t.Fatalf("moving back: deleted %d (%v), start %d", n, err, l.StartOffset())
	}
	n, err := l.AdvanceStart(segs[2].BaseOffset)
	if n != 2 || err != nil {
		t.Fatalf("deleted %d (%v), want 2", n, err)
	}
	if _, err := os.Stat(segs[0].Path); !os.IsNotExist(err) {
		t.Fatalf("segment file still there: %v", err)
	}
	checkReadAll(t, l, batches[segs[2].BaseOffset:])
	_, err = l.AdvanceStart(l.NextOffset() + 1)
	wantErr(t, err, ErrOffsetOutOfRange)
	// The active segment is never deleted, even when the start reaches
	// the end of the log.
	n, err = l.AdvanceStart(l.NextOffset())
	if err != nil || n != len(segs)-3 || len(l.Segments()) != 1 {
		t.Fatalf("deleted %d (%v), %d left", n, err, len(l.Segments()))
	}
	base := l.Segments()[0].BaseOffset
	l.Close()
	// A reopened log starts at its first segment: the caller keeps the
	// logical start (the partition FSM's checkpoint).
	l = openLog(t, dir, cfg)
	defer l.Close()
	if l.StartOffset() != base || l.NextOffset() != 20 {
		t.Fatalf("reopen: start %d next %d", l.StartOffset(), l.NextOffset())
	}
	checkReadAll(t, l, batches[base:])
}

func TestRetentionPoint(t *testing.T) {
	cfg := smallConfig()
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	// Batch i has timestamp 1000*i.
	appendAll(t, l, 20, func(i int, base int64) []byte { return simpleBatch(base, 1, 250, int64(1000*i)) })
	segs := l.Segments()
	if len(segs) < 4 {
		t.Fatalf("%d segments, want at least 4", len(segs))
	}
	if got := l.RetentionPoint(1e9, -1, -1); got != 0 {
		t.Fatalf("no limits: %d", got)
	}
	// Time: segment 0's newest batch is segs[1].BaseOffset-1.
	newest0 := 1000 * (segs[1].BaseOffset - 1)
	if got := l.RetentionPoint(newest0+500, 500, -1); got != 0 {
		t.Fatalf("exactly retention.ms old: %d, want 0 (kept)", got)
	}
	if got := l.RetentionPoint(newest0+501, 500, -1); got != segs[1].BaseOffset {
		t.Fatalf("one ms past retention.ms: %d, want %d", got, segs[1].BaseOffset)
	}
	// Far in the future every closed segment is due, never the active one.
	if got := l.RetentionPoint(1e12, 1, -1); got != segs[len(segs)-1].BaseOffset {
		t.Fatalf("all expired: %d, want %d", got, segs[len(segs)-1].BaseOffset)
	}
	// Size: keep at least retention.bytes.
	total := l.Size()
	if got := l.RetentionPoint(0, -1, total); got != 0 {
		t.Fatalf("at retention.bytes: %d", got)
	}
	if got := l.RetentionPoint(0, -1, total-segs[0].Size); got != segs[1].BaseOffset {
		t.Fatalf("one segment over retention.bytes: %d, want %d", got, segs[1].BaseOffset)
	}
	if got := l.RetentionPoint(0, -1, 0); got != segs[len(segs)-1].BaseOffset {
		t.Fatalf("retention.bytes 0: %d", got)
	}
	if _, err := l.AdvanceStart(segs[1].BaseOffset + 1); err != nil {
		t.Fatal(err)
	}
	if got := l.RetentionPoint(newest0+501, 500, -1); got != segs[1].BaseOffset+1 {
		t.Fatalf("never behind the start: %d", got)
	}
}

func TestAppendRejects(t *testing.T) {
	cfg := smallConfig()
	cfg.MaxBatchBytes = 500
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	appendAll(t, l, 3, func(_ int, base int64) []byte { return simpleBatch(base, 2, 10, 0) })
	wantErr(t, l.Append(simpleBatch(5, 1, 10, 0)), ErrOffsetMismatch)
	wantErr(t, l.Append(simpleBatch(7, 1, 10, 0)), ErrOffsetMismatch)
	bad := simpleBatch(6, 1, 10, 0)
	bad[len(bad)-2] ^= 0x40
	wantErr(t, l.Append(bad), ErrCorruptBatch)
	wantErr(t, l.Append(bad[:40]), ErrCorruptBatch)
	wantErr(t, l.Append(simpleBatch(6, 1, 600, 0)), ErrBatchTooLarge)
	if l.NextOffset() != 6 {
		t.Fatalf("rejected appends moved NextOffset to %d", l.NextOffset())
	}
	if err := l.Append(simpleBatch(6, 1, 10, 0)); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentReadDuringAppend is meant for -race: readers validate every
// batch they get while the writer appends, rolls, truncates and deletes.
func TestConcurrentReadDuringAppend(t *testing.T) {
	cfg := smallConfig()
	cfg.SegmentBytes = 4096
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 8)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			errc <- concurrentReader(l, rand.New(rand.NewPCG(seed, 1)), stop)
		}(uint64(r))
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 1500; i++ {
		if err := l.Append(simpleBatch(l.NextOffset(), 1+rng.IntN(4), rng.IntN(200), int64(i))); err != nil {
			t.Fatal(err)
		}
		switch {
		case i%300 == 299:
			if _, err := l.AdvanceStart(l.NextOffset() - 100); err != nil {
				t.Fatal(err)
			}
		case i%97 == 96:
			// Cut back to some earlier batch boundary in the log.
			b, err := l.Read(max(l.StartOffset(), l.NextOffset()-20), 1, l.NextOffset())
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Truncate(mustHeader(t, b).BaseOffset); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func concurrentReader(l *Log, rng *rand.Rand, stop chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		start, next := l.StartOffset(), l.NextOffset()
		if next == start {
			continue
		}
		off := start + rng.Int64N(next-start)
		b, err := l.Read(off, rng.IntN(3000), next)
		if errors.Is(err, ErrOffsetOutOfRange) {
			continue // retention or truncation moved the range
		}
		if err != nil {
			return err
		}
		bs, err := SplitBatches(b)
		if err != nil {
			return err
		}
		expect := int64(-1)
		for _, x := range bs {
			h, _ := ParseBatchHeader(x)
			if expect >= 0 && h.BaseOffset != expect {
				return errors.New("read returned non-contiguous batches")
			}
			expect = h.LastOffset() + 1
		}
		if len(bs) > 0 {
			if h, _ := ParseBatchHeader(bs[0]); off < h.BaseOffset || off > h.LastOffset() {
				return errors.New("first batch does not contain the offset")
			}
		}
		if _, _, _, err := l.OffsetForTimestamp(rng.Int64N(1500)); err != nil {
			return err
		}
	}
}

func TestRecoveryTailDamage(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
		keep   int // batches of the last segment that must survive
	}{
		{"partial last batch", func(t *testing.T, p string, sz int64) { truncateFile(t, p, sz-5) }, 2},
		{"partial header", func(t *testing.T, p string, sz int64) { truncateFile(t, p, sz-int64(len(lastBatch))+30) }, 2},
		{"garbage appended", func(t *testing.T, p string, _ int64) { appendFile(t, p, bytes.Repeat([]byte{0xab}, 100)) }, 3},
		{"zeros appended", func(t *testing.T, p string, _ int64) { appendFile(t, p, make([]byte, 4096)) }, 3},
		{"flipped crc of last", func(t *testing.T, p string, sz int64) { flipByte(t, p, sz-int64(len(lastBatch))+posCRC) }, 2},
		{"empty file", func(t *testing.T, p string, _ int64) { truncateFile(t, p, 0) }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := smallConfig()
			l := openLog(t, dir, cfg)
			// Batches of 317 bytes: segments hold 3, so 6 batches leave
			// the last segment with batches 3, 4, 5.
			batches := appendAll(t, l, 6, func(_ int, base int64) []byte { return simpleBatch(base, 1, 250, 0) })
			lastBatch = batches[5]
			segs := l.Segments()
			l.Close()
			last := segs[len(segs)-1]
			tc.damage(t, last.Path, last.Size)
			l = openLog(t, dir, cfg)
			defer l.Close()
			kept := batches[:3+tc.keep]
			checkReadAll(t, l, kept)
			if _, err := os.Stat(last.Path); err != nil {
				t.Fatal(err)
			}
			if got := fileSize(t, last.Path); got != l.Segments()[len(l.Segments())-1].Size {
				t.Fatalf("file not truncated: %d bytes", got)
			}
			more := appendAll(t, l, 2, func(_ int, base int64) []byte { return simpleBatch(base, 1, 250, 0) })
			checkReadAll(t, l, append(kept, more...))
		})
	}
}

var lastBatch []byte

func truncateFile(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, pos int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[pos] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRecoveryIndexesAndChain(t *testing.T) {
	idx := func(base int64, suffix string) func(dir string) string {
		return func(dir string) string { return segmentPath(dir, base, suffix) }
	}
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		batches int // batches expected after reopen
	}{
		{"missing offset index", func(t *testing.T, dir string) { os.Remove(idx(0, indexSuffix)(dir)) }, 12},
		{"missing time index", func(t *testing.T, dir string) { os.Remove(idx(3, timeIndexSuffix)(dir)) }, 12},
		{"odd index size", func(t *testing.T, dir string) { appendFile(t, idx(3, indexSuffix)(dir), []byte{1, 2, 3}) }, 12},
		{"index points nowhere", func(t *testing.T, dir string) {
			os.WriteFile(idx(3, indexSuffix)(dir), []byte{0, 0, 0, 1, 0, 0, 0, 7}, 0o644)
		}, 12},
		{"stray files ignored", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "junk.log"), []byte("x"), 0o644)
			os.WriteFile(filepath.Join(dir, "123.log"), []byte("x"), 0o644)
		}, 12},
		{"gap before segment drops it and later", func(t *testing.T, dir string) {
			os.Remove(idx(6, logSuffix)(dir))
		}, 6},
		{"damaged closed segment tail drops later", func(t *testing.T, dir string) {
			truncateFile(t, idx(3, logSuffix)(dir), 400)
		}, 4},
		{"segment from the future dropped", func(t *testing.T, dir string) {
			os.WriteFile(idx(500, logSuffix)(dir), simpleBatch(500, 1, 1, 0), 0o644)
		}, 12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := smallConfig()
			l := openLog(t, dir, cfg)
			batches := appendAll(t, l, 12, func(_ int, base int64) []byte { return simpleBatch(base, 1, 250, 0) })
			l.Close()
			tc.damage(t, dir)
			l = openLog(t, dir, cfg)
			checkReadAll(t, l, batches[:tc.batches])
			checkOffsetForTimestamp(t, l, batches[:tc.batches], -1, 2)
			more := appendAll(t, l, 3, func(_ int, base int64) []byte { return simpleBatch(base, 1, 250, 0) })
			want := append(batches[:tc.batches:tc.batches], more...)
			checkReadAll(t, l, want)
			l.Close()
			l = openLog(t, dir, cfg)
			defer l.Close()
			checkReadAll(t, l, want)
		})
	}
}

// Snapshot persistence syncs the log from another goroutine while the FSM
// appends; under -race this failed before the writer methods were
// serialised.
func TestSyncConcurrentWithAppend(t *testing.T) {
	l := openLog(t, t.TempDir(), smallConfig())
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			if err := l.Sync(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 500; i++ {
		if err := l.Append(simpleBatch(l.NextOffset(), 2, 64, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}

// TestAppendStartsWriteback: every writebackBytes of appends, the
// segment's new range is handed to the kernel's writeback, so that the
// fsync at the next sync point does not find a busy partition's whole
// stretch dirty at once.
func TestAppendStartsWriteback(t *testing.T) {
	type call struct{ off, n int64 }
	var calls []call
	startWritebackFn = func(_ *os.File, off, n int64) { calls = append(calls, call{off, n}) }
	defer func() { startWritebackFn = startWriteback }()
	l := openLog(t, t.TempDir(), DefaultConfig())
	defer l.Close()
	for l.active().size < 3*writebackBytes+writebackBytes/2 {
		if err := l.Append(simpleBatch(l.NextOffset(), 16, 4096, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if len(calls) != 3 {
		t.Fatalf("%d writebacks for %d bytes, want 3: %v", len(calls), l.active().size, calls)
	}
	var next int64
	for _, c := range calls {
		if c.off != next || c.n < writebackBytes || c.n > writebackBytes+70<<10 {
			t.Fatalf("writebacks %v: not contiguous ranges of about %d bytes", calls, writebackBytes)
		}
		next = c.off + c.n
	}
}

// A partition holds one descriptor while idle, its active segment's log:
// its index files are open only from a flush to the sync after it. A node
// hosts thousands of partitions.
func TestIndexFilesClosedWhileIdle(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, smallConfig())
	open := func(when string) {
		t.Helper()
		if s := l.active(); s.idxF != nil || s.timeF != nil {
			t.Fatalf("%s: index files of the active segment are open", when)
		}
	}
	open("new log")
	want := appendAll(t, l, 30, func(_ int, base int64) []byte { return simpleBatch(base, 2, 40, 1000+base) })
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	open("after sync")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, smallConfig())
	defer l.Close()
	open("reopened")
	checkReadAll(t, l, want)
}

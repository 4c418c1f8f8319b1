package partition

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"
)

// sameIgnoringEpoch compares batches except for the partition leader epoch,
// which the v2 format leaves outside the CRC: damage there cannot be
// detected by recovery, so it is not held against it.
func sameIgnoringEpoch(a, b []byte) bool {
	return len(a) == len(b) && len(a) >= BatchHeaderSize &&
		bytes.Equal(a[:posLeaderEpoch], b[:posLeaderEpoch]) &&
		bytes.Equal(a[posMagic:], b[posMagic:])
}

// damageFile applies fuzz-chosen damage to the file and returns the
// position of the first damaged byte (len(file) if only garbage was added).
func damageFile(t *testing.T, path string, cut uint32, flips, garbage []byte) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first := int64(len(b))
	if cut&1 != 0 { // low bit selects whether to truncate at all
		n := int64(cut>>1) % (int64(len(b)) + 1)
		b, first = b[:n], n
	}
	for i := 0; i+2 < len(flips) && len(b) > 0; i += 3 {
		pos := int64(int(flips[i])<<8|int(flips[i+1])) % int64(len(b))
		if flips[i+2] != 0 {
			b[pos] ^= flips[i+2]
			first = min(first, pos)
		}
	}
	b = append(b, garbage...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return first
}

func FuzzRecoverTail(f *testing.F) {
	f.Add(uint8(5), uint64(1), uint32(0), []byte(nil), []byte(nil))
	f.Add(uint8(5), uint64(2), uint32(201), []byte(nil), []byte(nil))
	f.Add(uint8(12), uint64(3), uint32(0), []byte{0, 10, 0xff, 1, 0, 1}, []byte{1, 2, 3})
	f.Add(uint8(3), uint64(4), uint32(0), []byte(nil), make([]byte, 200))
	f.Add(uint8(20), uint64(5), uint32(3), []byte{0, 17, 4}, []byte(nil))
	f.Fuzz(func(t *testing.T, k uint8, seed uint64, cut uint32, flips, garbage []byte) {
		if len(flips) > 300 || len(garbage) > 4096 {
			return
		}
		dir := t.TempDir()
		cfg := smallConfig()
		cfg.IndexIntervalBytes = 64
		l := openLog(t, dir, cfg)
		rng := rand.New(rand.NewPCG(seed, uint64(k)))
		written := appendAll(t, l, 1+int(k%24), func(_ int, base int64) []byte {
			return simpleBatch(base, 1+rng.IntN(4), rng.IntN(120), rng.Int64N(1000))
		})
		segs := l.Segments()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		last := segs[len(segs)-1]
		firstBad := last.Size
		if len(flips) > 0 || garbage != nil || cut&1 != 0 {
			firstBad = damageFile(t, last.Path, cut, flips, garbage)
		}

		l = openLog(t, dir, cfg)
		recovered := checkRecovered(t, l, written, last, firstBad)
		next := simpleBatch(l.NextOffset(), 2, 10, 5)
		if err := l.Append(next); err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
		got, err := l.Read(l.NextOffset()-2, 1<<20, l.NextOffset())
		if err != nil || !bytes.Equal(got, next) {
			t.Fatalf("read back appended batch: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// Recovery must be idempotent: a second open changes nothing.
		l = openLog(t, dir, cfg)
		defer l.Close()
		checkReadAll(t, l, append(recovered, next))
	})
}

// checkRecovered verifies the log after damage to the last segment at
// firstBad (a position within segment last).
func checkRecovered(t *testing.T, l *Log, written [][]byte, last SegmentInfo, firstBad int64) [][]byte {
	t.Helper()
	if l.StartOffset() != 0 {
		t.Fatalf("start offset %d", l.StartOffset())
	}
	// Everything completely before the first damaged byte must survive.
	mustKeep := int64(0)
	boundary := map[int64]bool{0: true}
	for _, b := range written {
		h := mustHeader(t, b)
		boundary[h.LastOffset()+1] = true
		if h.BaseOffset < last.BaseOffset {
			mustKeep = h.LastOffset() + 1
		}
	}
	pos := int64(0)
	for _, b := range written {
		h := mustHeader(t, b)
		if h.BaseOffset < last.BaseOffset {
			continue
		}
		if pos+int64(len(b)) <= firstBad {
			mustKeep = h.LastOffset() + 1
		}
		pos += int64(len(b))
	}
	next := l.NextOffset()
	if !boundary[next] || next < mustKeep {
		t.Fatalf("NextOffset %d: boundary %v, must keep up to %d", next, boundary[next], mustKeep)
	}
	got, err := l.Read(0, 1<<30, next)
	if err != nil {
		t.Fatal(err)
	}
	bs := splitOrFail(t, got)
	if len(bs) > len(written) {
		t.Fatalf("read %d batches, wrote %d", len(bs), len(written))
	}
	end := int64(0)
	for i, b := range bs {
		if !sameIgnoringEpoch(b, written[i]) {
			t.Fatalf("batch %d differs from what was written", i)
		}
		end = mustHeader(t, b).LastOffset() + 1
	}
	if end != next {
		t.Fatalf("read ends at %d, NextOffset %d", end, next)
	}
	return bs
}

func FuzzSplitBatches(f *testing.F) {
	a, b := simpleBatch(0, 2, 10, 0), simpleBatch(2, 1, 0, 5)
	f.Add([]byte(nil))
	f.Add(a)
	f.Add(append(bytes.Clone(a), b...))
	f.Add(append(bytes.Clone(a), 0, 0, 0))
	f.Add(a[:BatchHeaderSize])
	f.Fuzz(func(t *testing.T, in []byte) {
		_, _ = ParseBatchHeader(in)
		if h, err := ValidateBatch(in); err == nil && h.Size() != len(in) {
			t.Fatalf("valid batch of %d bytes claims size %d", len(in), h.Size())
		}
		parts, err := SplitBatches(in)
		if err != nil {
			return
		}
		if !bytes.Equal(bytes.Join(parts, nil), in) {
			t.Fatal("parts do not reassemble the input")
		}
		for _, p := range parts {
			if _, err := ValidateBatch(p); err != nil {
				t.Fatalf("split returned invalid batch: %v", err)
			}
		}
	})
}

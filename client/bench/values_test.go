package bench

import (
	"bytes"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// batchOf returns the next n values producer seq of a default produce
// case sends, as one produce batch would carry them.
func batchOf(t *testing.T, size, seq, n int) [][]byte {
	t.Helper()
	next, err := ProduceCase{RecordSize: size}.values(seq)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = next()
		if len(out[i]) != size {
			t.Fatalf("value %d has %d bytes, want %d", i, len(out[i]), size)
		}
	}
	return out
}

// TestValuesDistinct checks that the records of a batch all differ, so no
// reused value makes the benchmark measure deduplication.
func TestValuesDistinct(t *testing.T) {
	for _, size := range []int{100, 1024} {
		vals := batchOf(t, size, 0, 1000)
		seen := make(map[string]int, len(vals))
		for i, v := range vals {
			if j, dup := seen[string(v)]; dup {
				t.Fatalf("%d B: value %d repeats value %d", size, i, j)
			}
			seen[string(v)] = i
		}
	}
}

// TestValuesDisjoint checks the stronger property the codecs care about:
// the values of a batch of up to 4 MiB are cut from windows of the pool
// that share no byte, so a codec finds no match between them. The walk is
// a rotation, so the first n starts stand for any n consecutive ones.
func TestValuesDisjoint(t *testing.T) {
	for _, size := range []int{16, 100, 1024, 16 << 10, 1 << 20} {
		v, err := NewValues(size, 3)
		if err != nil {
			t.Fatal(err)
		}
		n := max(2, (4<<20)/size)
		starts := make([]uint64, n)
		for i := range starts {
			starts[i] = v.off
			v.Next()
		}
		slices.Sort(starts)
		for i := 1; i < n; i++ {
			if gap := starts[i] - starts[i-1]; gap < uint64(size) {
				t.Fatalf("%d B: two of %d consecutive values overlap (starts %d apart)", size, n, gap)
			}
		}
	}
}

// TestValuesIncompressible compresses a batch's worth of consecutive
// values with franz-go's own codecs. With one reused value snappy shrinks
// 1 KiB records about 20x (zstd over 100x); here no codec may save more than 2%.
func TestValuesIncompressible(t *testing.T) {
	codecs := map[string]kgo.CompressionCodec{
		"snappy": kgo.SnappyCompression(),
		"lz4":    kgo.Lz4Compression(),
		"zstd":   kgo.ZstdCompression(),
		"gzip":   kgo.GzipCompression(),
	}
	for _, c := range []struct{ size, n int }{{1024, 1000}, {100, 10000}} {
		raw := bytes.Join(batchOf(t, c.size, 1, c.n), nil)
		for name, codec := range codecs {
			comp, err := kgo.DefaultCompressor(codec)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			out, _ := comp.Compress(&buf, raw)
			if saved := 1 - float64(len(out))/float64(len(raw)); saved > 0.02 {
				t.Errorf("%d x %d B: %s shrank %d bytes to %d (%.1f%% saved)", c.n, c.size, name, len(raw), len(out), 100*saved)
			}
		}
	}
}

// TestValuesProducersDiffer checks that two producers do not send the same
// sequence.
func TestValuesProducersDiffer(t *testing.T) {
	a, b := batchOf(t, 100, 0, 1), batchOf(t, 100, 1, 1)
	if bytes.Equal(a[0], b[0]) {
		t.Fatal("producers 0 and 1 start with the same value")
	}
}

// TestValuesCannotWriteIntoPool checks that appending to a value copies
// rather than overwriting the next value's bytes.
func TestValuesCannotWriteIntoPool(t *testing.T) {
	v, err := NewValues(8, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Next(); cap(got) != len(got) {
		t.Fatalf("value has cap %d > len %d", cap(got), len(got))
	}
}

// BenchmarkValuesNext shows the per-record cost on the client: an add and
// a modulo, no copying and no random numbers.
func BenchmarkValuesNext(b *testing.B) {
	v, err := NewValues(1024, 0)
	if err != nil {
		b.Fatal(err)
	}
	var n int
	for b.Loop() {
		n += len(v.Next())
	}
	_ = n
}

package partition

import (
	"fmt"
	"testing"
)

// Benchmarks are short sanity checks of the hot paths, not load tests:
// run with -benchtime=1s or less on small machines.

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			l := openLog(b, b.TempDir(), DefaultConfig())
			defer l.Close()
			batch := simpleBatch(0, 1, size, 0)
			b.SetBytes(int64(len(batch)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				SetBaseOffset(batch, l.NextOffset())
				if err := l.Append(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRead(b *testing.B) {
	l := openLog(b, b.TempDir(), DefaultConfig())
	defer l.Close()
	batch := simpleBatch(0, 10, 100, 0) // ~1.2 KiB
	for i := 0; i < 20000; i++ {
		SetBaseOffset(batch, l.NextOffset())
		if err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	next := l.NextOffset()
	for _, maxBytes := range []int{1 << 10, 1 << 20} {
		b.Run(byteSize(maxBytes), func(b *testing.B) {
			b.ReportAllocs()
			var n int64
			for i := 0; i < b.N; i++ {
				out, err := l.Read(int64(i*7919)%next, maxBytes, next)
				if err != nil {
					b.Fatal(err)
				}
				n += int64(len(out))
			}
			b.SetBytes(n / int64(b.N))
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

package partition

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// testRecord is one record of a batch built by buildBatch.
type testRecord struct {
	key, value []byte
	ts         int64
}

// buildBatch encodes a valid, uncompressed, non-idempotent batch at base.
func buildBatch(base int64, recs []testRecord) []byte {
	out := make([]Record, len(recs))
	for i, r := range recs {
		out[i] = Record{Key: r.key, Value: r.value, Timestamp: r.ts}
	}
	return EncodeBatch(base, -1, -1, -1, out)
}

// simpleBatch builds a batch of n records with valueSize-byte values whose
// timestamps are ts, ts+1, ...; content depends on base so batches differ.
func simpleBatch(base int64, n, valueSize int, ts int64) []byte {
	recs := make([]testRecord, n)
	for i := range recs {
		v := make([]byte, valueSize)
		for j := range v {
			v[j] = byte(int(base)*31 + i*7 + j)
		}
		recs[i] = testRecord{key: []byte{byte(i)}, value: v, ts: ts + int64(i)}
	}
	return buildBatch(base, recs)
}

// smallConfig makes segments and index intervals small so that tests with
// few bytes exercise rolling and index seeks.
func smallConfig() Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 1024
	cfg.IndexIntervalBytes = 100
	cfg.SegmentMs = 0
	return cfg
}

func openLog(t testing.TB, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// appendAll appends batches built by mk for n batches and returns them.
func appendAll(t testing.TB, l *Log, n int, mk func(i int, base int64) []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 0; i < n; i++ {
		b := mk(i, l.NextOffset())
		if err := l.Append(b); err != nil {
			t.Fatalf("Append batch %d: %v", i, err)
		}
		out = append(out, b)
	}
	return out
}

// splitOrFail splits read output into validated batches.
func splitOrFail(t testing.TB, b []byte) [][]byte {
	t.Helper()
	bs, err := SplitBatches(b)
	if err != nil {
		t.Fatalf("read returned invalid batches: %v", err)
	}
	return bs
}

// checkReadAll reads the whole log and compares it with want.
func checkReadAll(t testing.TB, l *Log, want [][]byte) {
	t.Helper()
	var got [][]byte
	for off := l.StartOffset(); off < l.NextOffset(); {
		b, err := l.Read(off, 1<<20, l.NextOffset())
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		bs := splitOrFail(t, b)
		if len(bs) == 0 {
			t.Fatalf("Read(%d) returned nothing before NextOffset %d", off, l.NextOffset())
		}
		got = append(got, bs...)
		h, _ := ParseBatchHeader(bs[len(bs)-1])
		off = h.LastOffset() + 1
	}
	if len(got) != len(want) {
		t.Fatalf("read %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
}

func mustHeader(t testing.TB, b []byte) BatchHeader {
	t.Helper()
	h, err := ValidateBatch(b)
	if err != nil {
		t.Fatalf("ValidateBatch: %v", err)
	}
	return h
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

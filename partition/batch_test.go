package partition

import (
	"bytes"
	"testing"
)

func TestBuildBatchValid(t *testing.T) {
	b := buildBatch(42, []testRecord{{value: []byte("a"), ts: 100}, {value: []byte("bb"), ts: 90}, {value: nil, ts: 120}})
	h := mustHeader(t, b)
	if h.BaseOffset != 42 || h.LastOffset() != 44 || h.NumRecords != 3 || h.FirstTimestamp != 100 || h.MaxTimestamp != 120 {
		t.Fatalf("unexpected header %+v", h)
	}
	if h.Size() != len(b) || h.Compression() != 0 || h.IsControl() || h.IsTransactional() {
		t.Fatalf("unexpected header %+v", h)
	}
}

func TestParseBatchHeaderRejects(t *testing.T) {
	good := simpleBatch(0, 2, 10, 0)
	tests := []struct {
		name   string
		mutate func([]byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:BatchHeaderSize-1] }},
		{"magic", func(b []byte) []byte { b[posMagic] = 1; return b }},
		{"length", func(b []byte) []byte {
			b[posLength], b[posLength+1], b[posLength+2], b[posLength+3] = 0, 0, 0, 48
			return b
		}},
		{"negative delta", func(b []byte) []byte { b[posLastOffsetDelta] = 0xff; return b }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(bytes.Clone(good))
			_, err := ParseBatchHeader(b)
			wantErr(t, err, ErrCorruptBatch)
		})
	}
}

func TestValidateBatch(t *testing.T) {
	good := simpleBatch(7, 3, 20, 1000)
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		ok     bool
	}{
		{"good", func(b []byte) []byte { return b }, true},
		{"epoch not covered by crc", func(b []byte) []byte { SetLeaderEpoch(b, 9); return b }, true},
		{"base not covered by crc", func(b []byte) []byte { SetBaseOffset(b, 99); return b }, true},
		{"flipped record byte", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, false},
		{"flipped attribute", func(b []byte) []byte { b[posAttributes+1] ^= 0x10; return b }, false},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, false},
		{"extra byte", func(b []byte) []byte { return append(b, 0) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ValidateBatch(tc.mutate(bytes.Clone(good)))
			if tc.ok && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if !tc.ok {
				wantErr(t, err, ErrCorruptBatch)
			}
		})
	}
}

func TestSetters(t *testing.T) {
	b := simpleBatch(0, 1, 5, 0)
	SetBaseOffset(b, 1<<40)
	SetLeaderEpoch(b, 77)
	h := mustHeader(t, b)
	if h.BaseOffset != 1<<40 || h.LeaderEpoch != 77 {
		t.Fatalf("got %+v", h)
	}
}

func TestSplitBatches(t *testing.T) {
	a, b, c := simpleBatch(0, 1, 5, 0), simpleBatch(1, 4, 50, 0), simpleBatch(5, 2, 0, 0)
	all := append(append(append([]byte(nil), a...), b...), c...)
	tests := []struct {
		name string
		in   []byte
		want int
		ok   bool
	}{
		{"empty", nil, 0, true},
		{"one", a, 1, true},
		{"three", all, 3, true},
		{"trailing byte", append(bytes.Clone(all), 0), 0, false},
		{"trailing partial batch", all[:len(all)-3], 0, false},
		{"corrupt middle", func() []byte { x := bytes.Clone(all); x[len(a)+70] ^= 0xff; return x }(), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SplitBatches(tc.in)
			if !tc.ok {
				wantErr(t, err, ErrCorruptBatch)
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("got %d batches, err %v; want %d", len(got), err, tc.want)
			}
			if !bytes.Equal(bytes.Join(got, nil), tc.in) {
				t.Fatal("split does not reassemble to input")
			}
		})
	}
}

package partition

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// compressBatch rewrites an uncompressed batch with its records section
// compressed by codec, as a client would send it.
func compressBatch(t *testing.T, b []byte, codec int8, xerial bool) []byte {
	t.Helper()
	recs := b[BatchHeaderSize:]
	var z []byte
	switch codec {
	case codecGzip:
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(recs)
		w.Close()
		z = buf.Bytes()
	case codecSnappy:
		z = snappy.Encode(nil, recs)
		if xerial {
			framed := append(append([]byte{}, xerialMagic...), 0, 0, 0, 1, 0, 0, 0, 1)
			framed = binary.BigEndian.AppendUint32(framed, uint32(len(z)))
			z = append(framed, z...)
		}
	case codecLZ4:
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		w.Write(recs)
		w.Close()
		z = buf.Bytes()
	case codecZstd:
		e, _ := zstd.NewWriter(nil)
		z = e.EncodeAll(recs, nil)
	}
	out := append(append([]byte{}, b[:BatchHeaderSize]...), z...)
	binary.BigEndian.PutUint32(out[posLength:], uint32(len(out)-lengthPrefix))
	attrs := binary.BigEndian.Uint16(out[posAttributes:])
	binary.BigEndian.PutUint16(out[posAttributes:], attrs&^0x07|uint16(codec))
	binary.BigEndian.PutUint32(out[posCRC:], crc32.Checksum(out[posAttributes:], crcTable))
	return out
}

// TestDecodeCompressedBatches: every codec Kafka clients use, snappy in
// both its raw and its xerial (Java) framing, decodes to the records
// that were written; a corrupt compressed section is an error.
func TestDecodeCompressedBatches(t *testing.T) {
	var recs []Record
	for i := range 50 {
		recs = append(recs, Record{Key: []byte(fmt.Sprint("k", i)), Value: bytes.Repeat([]byte{byte(i)}, 100), Timestamp: int64(1000 + i)})
	}
	plain := EncodeBatch(7, -1, -1, -1, recs)
	for _, c := range []struct {
		name   string
		codec  int8
		xerial bool
	}{{"gzip", codecGzip, false}, {"snappy", codecSnappy, false}, {"snappy-xerial", codecSnappy, true}, {"lz4", codecLZ4, false}, {"zstd", codecZstd, false}} {
		t.Run(c.name, func(t *testing.T) {
			b := compressBatch(t, plain, c.codec, c.xerial)
			got, offs, err := DecodeRecords(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(recs) || offs[0] != 7 || offs[49] != 56 {
				t.Fatalf("%d records, offsets %d..%d", len(got), offs[0], offs[len(offs)-1])
			}
			for i := range recs {
				if !bytes.Equal(got[i].Value, recs[i].Value) || string(got[i].Key) != string(recs[i].Key) || got[i].Timestamp != recs[i].Timestamp {
					t.Fatalf("record %d differs", i)
				}
			}
			bad := append([]byte{}, b...)
			for i := BatchHeaderSize; i < len(bad); i++ {
				bad[i] ^= 0x5a
			}
			binary.BigEndian.PutUint32(bad[posCRC:], crc32.Checksum(bad[posAttributes:], crcTable))
			if _, _, err := DecodeRecords(bad); err == nil {
				t.Fatal("a corrupt compressed section decoded")
			}
		})
	}
}

// TestMaxTimestampOffset: the first record with the largest timestamp
// below end, over several segments, inside compressed batches too; a
// record at or past end does not count.
func TestMaxTimestampOffset(t *testing.T) {
	l := openLog(t, t.TempDir(), smallConfig())
	defer l.Close()
	ts := func(vs ...int64) []testRecord {
		var out []testRecord
		for _, v := range vs {
			out = append(out, testRecord{key: []byte("k"), value: bytes.Repeat([]byte("v"), 300), ts: v})
		}
		return out
	}
	appendOne := func(b []byte) {
		t.Helper()
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	appendOne(buildBatch(0, ts(100, 300, 200)))                                       // 0-2
	appendOne(compressBatch(t, buildBatch(3, ts(50, 300, 10)), codecZstd, false))     // 3-5
	appendOne(compressBatch(t, buildBatch(6, ts(400, 700, 700)), codecSnappy, false)) // 6-8
	appendOne(buildBatch(9, ts(900)))                                                 // 9
	if segs := len(l.segs); segs < 2 {
		t.Fatalf("%d segments: the test wants several", segs)
	}
	for _, c := range []struct {
		end, off, ts int64
	}{{3, 1, 300}, {6, 1, 300}, {9, 7, 700}, {10, 9, 900}} {
		off, got, found, err := l.MaxTimestampOffset(c.end)
		if err != nil || !found || off != c.off || got != c.ts {
			t.Errorf("below %d: offset %d timestamp %d found %v err %v; want %d at %d", c.end, off, got, found, err, c.ts, c.off)
		}
	}
	if _, _, found, _ := l.MaxTimestampOffset(0); found {
		t.Error("found a record below offset 0")
	}
}

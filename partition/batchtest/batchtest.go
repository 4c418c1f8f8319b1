// Package batchtest builds valid Kafka record batches v2 for tests, with
// kmsg (the encoder franz-go clients use) and a real CRC32C.
package batchtest

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Batch encodes values as one uncompressed, non-idempotent batch at base
// with timestamps ts, ts+1, ...
func Batch(base int64, ts int64, values ...[]byte) []byte {
	return Idempotent(base, ts, -1, -1, -1, values...)
}

// Idempotent is Batch with producer id, epoch and base sequence set.
func Idempotent(base, ts, producerID int64, epoch int16, seq int32, values ...[]byte) []byte {
	var body []byte
	for i, v := range values {
		rec := kmsg.Record{TimestampDelta64: int64(i), OffsetDelta: int32(i), Value: v}
		// Length counts the bytes after itself; a zero varint is 1 byte.
		rec.Length = int32(len(rec.AppendTo(nil)) - 1)
		body = rec.AppendTo(body)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:     base,
		Length:          int32(49 + len(body)),
		Magic:           2,
		LastOffsetDelta: int32(len(values) - 1),
		FirstTimestamp:  ts,
		MaxTimestamp:    ts + int64(len(values)) - 1,
		ProducerID:      producerID,
		ProducerEpoch:   epoch,
		FirstSequence:   seq,
		NumRecords:      int32(len(values)),
		Records:         body,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

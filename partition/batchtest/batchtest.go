// Package batchtest builds valid Kafka record batches v2 for tests, with
// kmsg (the encoder franz-go clients use) and a real CRC32C.
package batchtest

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one record of a batch.
type Record struct {
	Key, Value []byte
	Timestamp  int64
}

// Producer is the idempotent-producer identity of a batch; NoProducer marks
// a plain batch.
type Producer struct {
	ID       int64
	Epoch    int16
	Sequence int32
}

// NoProducer is the identity of a batch from a non-idempotent producer.
var NoProducer = Producer{ID: -1, Epoch: -1, Sequence: -1}

// Batch encodes values as one uncompressed, non-idempotent batch at base
// with timestamps ts, ts+1, ...
func Batch(base int64, ts int64, values ...[]byte) []byte {
	return Idempotent(base, ts, -1, -1, -1, values...)
}

// Idempotent is Batch with producer id, epoch and base sequence set.
func Idempotent(base, ts, producerID int64, epoch int16, seq int32, values ...[]byte) []byte {
	recs := make([]Record, len(values))
	for i, v := range values {
		recs[i] = Record{Value: v, Timestamp: ts + int64(i)}
	}
	return Build(base, Producer{ID: producerID, Epoch: epoch, Sequence: seq}, recs...)
}

// Build encodes recs (at least one) as one uncompressed batch at base.
func Build(base int64, p Producer, recs ...Record) []byte {
	if len(recs) == 0 {
		panic("batchtest: a batch needs at least one record")
	}
	first, maxTs := recs[0].Timestamp, recs[0].Timestamp
	var body []byte
	for i, r := range recs {
		maxTs = max(maxTs, r.Timestamp)
		rec := kmsg.Record{TimestampDelta64: r.Timestamp - first, OffsetDelta: int32(i), Key: r.Key, Value: r.Value}
		// Length counts the bytes after itself; a zero varint is 1 byte.
		rec.Length = int32(len(rec.AppendTo(nil)) - 1)
		body = rec.AppendTo(body)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:     base,
		Length:          int32(49 + len(body)),
		Magic:           2,
		LastOffsetDelta: int32(len(recs) - 1),
		FirstTimestamp:  first,
		MaxTimestamp:    maxTs,
		ProducerID:      p.ID,
		ProducerEpoch:   p.Epoch,
		FirstSequence:   p.Sequence,
		NumRecords:      int32(len(recs)),
		Records:         body,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

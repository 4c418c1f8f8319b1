// Package batchtest builds valid Kafka record batches v2 for tests, with
// kmsg (the encoder franz-go clients use) and a real CRC32C.
package batchtest

import (
	"github.com/quirelog/quire/partition"
)

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
	out := make([]partition.Record, len(recs))
	for i, r := range recs {
		out[i] = partition.Record(r)
	}
	return partition.EncodeBatch(base, p.ID, p.Epoch, p.Sequence, out)
}

// Transactional is Idempotent for a batch written inside the producer's
// transaction.
func Transactional(base, ts, producerID int64, epoch int16, seq int32, values ...[]byte) []byte {
	recs := make([]partition.Record, len(values))
	for i, v := range values {
		recs[i] = partition.Record{Value: v, Timestamp: ts + int64(i)}
	}
	return partition.EncodeTxnBatch(base, producerID, epoch, seq, recs)
}

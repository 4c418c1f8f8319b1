package partition

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is one record of a batch that Quire writes itself, such as the
// group coordinator's state records.
type Record struct {
	Key, Value []byte
	Timestamp  int64
}

// EncodeBatch encodes recs (at least one) as one uncompressed record batch
// v2 at base, from the producer (id -1 for none), with a real CRC-32C.
func EncodeBatch(base int64, producerID int64, epoch int16, seq int32, recs []Record) []byte {
	return encodeBatch(base, 0, producerID, epoch, seq, recs)
}

// Batch attribute bits.
const (
	attrTransactional = 0x10
	attrControl       = 0x20
)

// EncodeTxnBatch is EncodeBatch for a batch written inside the producer's
// transaction.
func EncodeTxnBatch(base int64, producerID int64, epoch int16, seq int32, recs []Record) []byte {
	return encodeBatch(base, attrTransactional, producerID, epoch, seq, recs)
}

// EncodeControlBatch encodes a transaction marker: a transactional control
// batch of one control record whose key says commit or abort and whose
// value carries the coordinator epoch, as Kafka writes them.
func EncodeControlBatch(base int64, producerID int64, epoch int16, commit bool, coordinatorEpoch int32, ts int64) []byte {
	key := kmsg.ControlRecordKey{Type: kmsg.ControlRecordKeyTypeAbort}
	if commit {
		key.Type = kmsg.ControlRecordKeyTypeCommit
	}
	val := kmsg.EndTxnMarker{CoordinatorEpoch: coordinatorEpoch}
	rec := Record{Key: key.AppendTo(nil), Value: val.AppendTo(nil), Timestamp: ts}
	return encodeBatch(base, attrTransactional|attrControl, producerID, epoch, -1, []Record{rec})
}

// ControlType reads a control batch's record key: commit or abort. ok is
// false for a batch that is not a transaction marker.
func ControlType(b []byte) (commit, ok bool) {
	recs, _, err := DecodeRecords(b)
	if err != nil || len(recs) != 1 {
		return false, false
	}
	var key kmsg.ControlRecordKey
	if key.ReadFrom(recs[0].Key) != nil {
		return false, false
	}
	switch key.Type {
	case kmsg.ControlRecordKeyTypeCommit:
		return true, true
	case kmsg.ControlRecordKeyTypeAbort:
		return false, true
	}
	return false, false
}

func encodeBatch(base int64, attrs int16, producerID int64, epoch int16, seq int32, recs []Record) []byte {
	if len(recs) == 0 {
		panic("partition: a batch needs at least one record")
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
		Length:          int32(minBatchLength + len(body)),
		Magic:           2,
		Attributes:      attrs,
		LastOffsetDelta: int32(len(recs) - 1),
		FirstTimestamp:  first,
		MaxTimestamp:    maxTs,
		ProducerID:      producerID,
		ProducerEpoch:   epoch,
		FirstSequence:   seq,
		NumRecords:      int32(len(recs)),
		Records:         body,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[posCRC:], crc32.Checksum(b[posAttributes:], crcTable))
	return b
}

// DecodeRecords returns the records of one batch, decompressed, with
// absolute offsets.
func DecodeRecords(b []byte) ([]Record, []int64, error) {
	h, err := ValidateBatch(b)
	if err != nil {
		return nil, nil, err
	}
	// Compaction leaves batches with fewer records than offsets.
	if h.NumRecords < 0 || int64(h.NumRecords) > int64(h.LastOffsetDelta)+1 {
		return nil, nil, fmt.Errorf("%w: %d records for an offset range of %d", ErrCorruptBatch, h.NumRecords, int64(h.LastOffsetDelta)+1)
	}
	rest, err := decompress(h.Compression(), b[BatchHeaderSize:h.Size()])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCorruptBatch, err)
	}
	// A record takes at least 7 bytes: the header's count cannot size
	// the slices beyond what the bytes can hold.
	n := min(int(h.NumRecords), len(rest)/7+1)
	recs := make([]Record, 0, n)
	offs := make([]int64, 0, n)
	for i := int32(0); i < h.NumRecords; i++ {
		length, n := binary.Varint(rest)
		if n <= 0 || length < 0 || int64(len(rest)-n) < length {
			return nil, nil, fmt.Errorf("%w: record %d truncated", ErrCorruptBatch, i)
		}
		var rec kmsg.Record
		if err := rec.ReadFrom(rest[:n+int(length)]); err != nil {
			return nil, nil, fmt.Errorf("%w: record %d: %v", ErrCorruptBatch, i, err)
		}
		rest = rest[n+int(length):]
		if rec.OffsetDelta < 0 || rec.OffsetDelta > h.LastOffsetDelta {
			return nil, nil, fmt.Errorf("%w: record %d at offset delta %d, batch covers %d", ErrCorruptBatch, i, rec.OffsetDelta, h.LastOffsetDelta)
		}
		recs = append(recs, Record{Key: rec.Key, Value: rec.Value, Timestamp: h.FirstTimestamp + rec.TimestampDelta64})
		offs = append(offs, h.BaseOffset+int64(rec.OffsetDelta))
	}
	return recs, offs, nil
}

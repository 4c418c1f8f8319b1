package partition

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// BatchHeaderSize is the size of the fixed record batch v2 header.
const BatchHeaderSize = 61

// Byte positions of the record batch v2 header fields.
const (
	posBaseOffset      = 0
	posLength          = 8
	posLeaderEpoch     = 12
	posMagic           = 16
	posCRC             = 17
	posAttributes      = 21
	posLastOffsetDelta = 23
	posFirstTimestamp  = 27
	posMaxTimestamp    = 35
	posProducerID      = 43
	posProducerEpoch   = 51
	posBaseSequence    = 53
	posNumRecords      = 57

	// lengthPrefix is the part of the header not counted by Length.
	lengthPrefix = posLeaderEpoch
	// minBatchLength is the smallest Length a header-only batch can have.
	minBatchLength = BatchHeaderSize - lengthPrefix
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the decoded fixed header of a record batch v2.
type BatchHeader struct {
	BaseOffset      int64
	Length          int32
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	FirstTimestamp  int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	NumRecords      int32
}

// Size is the total size in bytes of the batch, header included.
func (h BatchHeader) Size() int { return lengthPrefix + int(h.Length) }

// LastOffset is the offset of the last record the batch covers.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// IsTransactional reports attribute bit 4.
func (h BatchHeader) IsTransactional() bool { return h.Attributes&0x10 != 0 }

// LogAppendTime reports attribute bit 3: the broker's append time is the
// timestamp of every record, held in MaxTimestamp.
func (h BatchHeader) LogAppendTime() bool { return h.Attributes&0x08 != 0 }

// StampLogAppendTime makes b a batch of LogAppendTime: attribute bit 3
// set, ts as its max timestamp, the CRC recomputed. Kafka's broker does
// this to every batch of a topic with message.timestamp.type
// LogAppendTime; readers then take ts as every record's timestamp.
func StampLogAppendTime(b []byte, ts int64) {
	be := binary.BigEndian
	be.PutUint16(b[posAttributes:], be.Uint16(b[posAttributes:])|0x08)
	be.PutUint64(b[posMaxTimestamp:], uint64(ts))
	be.PutUint32(b[posCRC:], crc32.Checksum(b[posAttributes:], crcTable))
}

// IsControl reports attribute bit 5.
func (h BatchHeader) IsControl() bool { return h.Attributes&0x20 != 0 }

// Compression returns the codec in attribute bits 0-2 (0 none, 1 gzip,
// 2 snappy, 3 lz4, 4 zstd).
func (h BatchHeader) Compression() int8 { return int8(h.Attributes & 0x07) }

// ParseBatchHeader decodes and sanity checks the first BatchHeaderSize bytes
// of b. It does not look at the records or the CRC, so b may be a prefix.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < BatchHeaderSize {
		return BatchHeader{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrCorruptBatch, len(b), BatchHeaderSize)
	}
	be := binary.BigEndian
	h := BatchHeader{
		BaseOffset:      int64(be.Uint64(b[posBaseOffset:])),
		Length:          int32(be.Uint32(b[posLength:])),
		LeaderEpoch:     int32(be.Uint32(b[posLeaderEpoch:])),
		Magic:           int8(b[posMagic]),
		CRC:             be.Uint32(b[posCRC:]),
		Attributes:      int16(be.Uint16(b[posAttributes:])),
		LastOffsetDelta: int32(be.Uint32(b[posLastOffsetDelta:])),
		FirstTimestamp:  int64(be.Uint64(b[posFirstTimestamp:])),
		MaxTimestamp:    int64(be.Uint64(b[posMaxTimestamp:])),
		ProducerID:      int64(be.Uint64(b[posProducerID:])),
		ProducerEpoch:   int16(be.Uint16(b[posProducerEpoch:])),
		BaseSequence:    int32(be.Uint32(b[posBaseSequence:])),
		NumRecords:      int32(be.Uint32(b[posNumRecords:])),
	}
	switch {
	case h.Magic != 2:
		return h, fmt.Errorf("%w: magic %d, want 2", ErrCorruptBatch, h.Magic)
	case h.Length < minBatchLength:
		return h, fmt.Errorf("%w: length %d below minimum %d", ErrCorruptBatch, h.Length, minBatchLength)
	case h.LastOffsetDelta < 0:
		return h, fmt.Errorf("%w: negative last offset delta %d", ErrCorruptBatch, h.LastOffsetDelta)
	}
	return h, nil
}

// ValidateBatch checks that b is exactly one complete batch with a sane
// header and a matching CRC-32C.
func ValidateBatch(b []byte) (BatchHeader, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, err
	}
	if len(b) != h.Size() {
		return h, fmt.Errorf("%w: %d bytes, header says %d", ErrCorruptBatch, len(b), h.Size())
	}
	if got := crc32.Checksum(b[posAttributes:], crcTable); got != h.CRC {
		return h, fmt.Errorf("%w: crc %08x, header says %08x", ErrCorruptBatch, got, h.CRC)
	}
	return h, nil
}

// SplitBatches splits concatenated batches, such as the records field of a
// produce request, into validated batches. The returned slices alias b. An
// empty b yields no batches and no error; any bad batch or trailing partial
// batch is an error.
func SplitBatches(b []byte) ([][]byte, error) {
	var out [][]byte
	for pos := 0; pos < len(b); {
		h, err := ParseBatchHeader(b[pos:])
		if err != nil {
			return nil, fmt.Errorf("batch %d at byte %d: %w", len(out), pos, err)
		}
		end := pos + h.Size()
		if end > len(b) {
			return nil, fmt.Errorf("batch %d at byte %d: %w: %d bytes left, header says %d",
				len(out), pos, ErrCorruptBatch, len(b)-pos, h.Size())
		}
		if _, err := ValidateBatch(b[pos:end]); err != nil {
			return nil, fmt.Errorf("batch %d at byte %d: %w", len(out), pos, err)
		}
		out = append(out, b[pos:end:end])
		pos = end
	}
	return out, nil
}

// SetBaseOffset rewrites the base offset in place. The CRC does not cover
// it, so the batch stays valid.
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[posBaseOffset:], uint64(off))
}

// SetLeaderEpoch rewrites the partition leader epoch in place. The CRC does
// not cover it, so the batch stays valid.
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[posLeaderEpoch:], uint32(epoch))
}

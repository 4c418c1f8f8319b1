// Package statelog is what the coordinators share about the internal
// topics they keep their state in (__consumer_offsets,
// __transaction_state): the view of one partition its leader writes
// through, the key hash that picks the partition, and the replay that
// rebuilds state from it.
package statelog

import (
	"context"
	"unicode/utf16"

	"github.com/quirelog/quire/partition"
)

// Log is one partition of an internal topic as its leader sees it.
type Log interface {
	// Epoch is the leader epoch (Raft term) this view serves in.
	Epoch() int32
	StartOffset() int64
	HighWatermark() int64
	// Read returns stored batches from offset, at most about maxBytes.
	Read(offset int64, maxBytes int) ([]byte, error)
	// Append commits one batch through the partition's Raft group and
	// returns its base offset. It fails once leadership of Epoch is lost.
	Append(ctx context.Context, batch []byte) (int64, error)
}

// PartitionFor is the partition of a key (a group id, a transactional
// id): Java's String.hashCode, as Kafka computes it, so a key maps where
// it would in Kafka with the same partition count.
func PartitionFor(key string, partitions int32) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(key)) {
		h = 31*h + int32(u)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// Replay reads the log from its start to the high watermark as of the
// call and hands fn every batch, whole, with its header.
func Replay(log Log, fn func(h partition.BatchHeader, batch []byte)) error {
	hw := log.HighWatermark()
	for off := log.StartOffset(); off < hw; {
		data, err := log.Read(off, 1<<20)
		if err != nil {
			return err
		}
		batches, err := partition.SplitBatches(data)
		if err != nil {
			return err
		}
		if len(batches) == 0 {
			return partition.ErrCorruptBatch
		}
		for _, b := range batches {
			h, err := partition.ParseBatchHeader(b)
			if err != nil {
				return err
			}
			off = h.LastOffset() + 1
			fn(h, b)
		}
	}
	return nil
}

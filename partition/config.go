package partition

import (
	"fmt"
	"math"
	"time"
)

// Config controls segment layout and limits of a Log.
type Config struct {
	// SegmentBytes is the size in bytes above which the active segment is
	// rolled: a batch that would make the segment exceed it starts a new
	// segment. A single batch larger than SegmentBytes still gets a segment
	// of its own. Range 1 KiB to 2 GiB-1 (file positions are 32-bit in the
	// offset index). Default 1 GiB.
	SegmentBytes int64

	// SegmentMs rolls the active segment when a batch's MaxTimestamp minus
	// the MaxTimestamp of the segment's first batch reaches this duration.
	// It compares record timestamps, not the wall clock, so replicas roll
	// identically. Must be 0 (disabled) or at least 1ms. Default 7 days.
	SegmentMs time.Duration

	// IndexIntervalBytes is the minimum distance in bytes between two
	// sparse index entries. Smaller values index more densely and make
	// seeks scan less. Range 1 to 2 GiB-1. Default 4096.
	IndexIntervalBytes int

	// MaxBatchBytes is the largest batch in bytes that Append accepts.
	// Range BatchHeaderSize (61) to 1 GiB. Default 16 MiB.
	MaxBatchBytes int

	// PowerLossJournal, after every sync, records the size of each segment
	// and index file in PowerLossJournalFile, so that a chaos run can cut
	// a killed node's files back to what was durable, as a power cut
	// would. Test clusters only: it costs a directory scan per sync.
	PowerLossJournal bool
}

// PowerLossJournalFile is where PowerLossJournal records durable sizes,
// in the log directory: a JSON object of file name to byte size.
const PowerLossJournalFile = "power-loss-journal.json"

const (
	minSegmentBytes = 1 << 10
	maxSegmentBytes = math.MaxInt32
	maxBatchBytes   = 1 << 30
)

// DefaultConfig returns the configuration used when nothing is tuned.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       1 << 30,
		SegmentMs:          7 * 24 * time.Hour,
		IndexIntervalBytes: 4096,
		MaxBatchBytes:      16 << 20,
	}
}

// Validate reports the first setting that is out of range.
func (c Config) Validate() error {
	switch {
	case c.SegmentBytes < minSegmentBytes || c.SegmentBytes > maxSegmentBytes:
		return fmt.Errorf("%w: SegmentBytes %d not in [%d, %d]", ErrInvalidConfig, c.SegmentBytes, minSegmentBytes, maxSegmentBytes)
	case c.SegmentMs < 0 || (c.SegmentMs > 0 && c.SegmentMs < time.Millisecond):
		return fmt.Errorf("%w: SegmentMs %v must be 0 or at least 1ms", ErrInvalidConfig, c.SegmentMs)
	case c.IndexIntervalBytes < 1 || c.IndexIntervalBytes > math.MaxInt32:
		return fmt.Errorf("%w: IndexIntervalBytes %d not in [1, %d]", ErrInvalidConfig, c.IndexIntervalBytes, math.MaxInt32)
	case c.MaxBatchBytes < BatchHeaderSize || c.MaxBatchBytes > maxBatchBytes:
		return fmt.Errorf("%w: MaxBatchBytes %d not in [%d, %d]", ErrInvalidConfig, c.MaxBatchBytes, BatchHeaderSize, maxBatchBytes)
	}
	return nil
}

package partition

import "errors"

var (
	// ErrCorruptBatch reports bytes that are not a valid record batch v2.
	ErrCorruptBatch = errors.New("partition: corrupt record batch")
	// ErrOffsetMismatch reports an appended batch whose base offset is not
	// the log's next offset.
	ErrOffsetMismatch = errors.New("partition: batch base offset does not match next offset")
	// ErrBatchTooLarge reports a batch bigger than Config.MaxBatchBytes.
	ErrBatchTooLarge = errors.New("partition: record batch too large")
	// ErrOffsetOutOfRange reports an offset outside [StartOffset, NextOffset].
	ErrOffsetOutOfRange = errors.New("partition: offset out of range")
	// ErrNotBatchBoundary reports a truncation point inside a batch.
	ErrNotBatchBoundary = errors.New("partition: offset is not a batch boundary")
	// ErrClosed reports use of a closed Log.
	ErrClosed = errors.New("partition: log closed")
	// ErrInvalidConfig reports a Config that failed Validate.
	ErrInvalidConfig = errors.New("partition: invalid config")
)

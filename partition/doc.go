// Package partition owns the on-disk log of a single Kafka partition.
//
// It stores Kafka record-batch v2 bytes exactly as they were appended, split
// into segment files named after their base offset:
//
//	<dir>/00000000000000000000.log        batches, back to back
//	<dir>/00000000000000000000.index      sparse offset index
//	<dir>/00000000000000000000.timeindex  sparse time index
//
// The package is responsible for segment rolling, the sparse offset and time
// indexes, crash recovery of the log tail, reads by offset and by timestamp,
// truncation and retention. It deliberately knows nothing about replication
// or the network: the caller decides which offsets are committed (maxOffset
// in Read) and when data must be durable (Sync).
//
// Index files are derived data. They can always be rebuilt from the segment
// files, which is what Open does for the active segment and for any closed
// segment whose index files look damaged.
//
// Concurrency: one writer goroutine at a time may call Append, Truncate,
// Reset, AdvanceStart, SetConfig, Sync and Close. Read, OffsetForTimestamp and
// the accessors may be called concurrently from any number of goroutines.
package partition

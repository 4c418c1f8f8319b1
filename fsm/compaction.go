package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/hashicorp/raft"

	"github.com/quirelog/quire/partition"
)

// Compact is the Raft entry that asks every replica to compact the
// partition below upTo: keep the latest record of each key, remove
// aborted transactions' records, and remove tombstones whose timestamp is
// below horizon (the leader's clock minus delete.retention.ms). The
// leader decides both once; each replica then rewrites its own closed
// segments in the background and arrives at the same batches, because
// what survives depends only on the log below upTo, upTo and horizon.
func Compact(upTo, horizon int64) []byte {
	b := binary.BigEndian.AppendUint64([]byte{cmdCompact}, uint64(upTo))
	return binary.BigEndian.AppendUint64(b, uint64(horizon))
}

// applyCompact raises the compaction target. It never reaches into an
// open transaction, whose fate is not known yet, and the horizon never
// moves back, so that compacting to a later target removes a superset of
// what an earlier one removed.
func (p *PartitionFSM) applyCompact(l *raft.Log) interface{} {
	if len(l.Data) != 17 {
		panic(fmt.Sprintf("partition %s: compaction entry of %d bytes", p.dir, len(l.Data)))
	}
	upTo := int64(binary.BigEndian.Uint64(l.Data[1:]))
	horizon := int64(binary.BigEndian.Uint64(l.Data[9:]))
	p.applied = l.Index
	upTo = min(upTo, p.lso.Load(), p.log.NextOffset())
	if upTo > p.compactTarget.Load() {
		p.compactTarget.Store(upTo)
	}
	if horizon > p.compactHorizon.Load() {
		p.compactHorizon.Store(horizon)
	}
	return nil
}

// CompactionTarget is the offset below which the partition is to be
// compacted, and CleanedTo how far this replica has compacted.
func (p *PartitionFSM) CompactionTarget() int64 { return p.compactTarget.Load() }
func (p *PartitionFSM) CleanedTo() int64        { return p.cleanedTo.Load() }

// CompactionDue reports whether this replica has closed segments below
// the target that it has not compacted to it.
// A later horizon alone makes one due too: older tombstones can go.
func (p *PartitionFSM) CompactionDue() bool {
	done := p.cleanedTo.Load()
	if p.compactTarget.Load() > done {
		return true
	}
	return p.compactHorizon.Load() > p.cleanedHorizon.Load() && done > p.log.StartOffset()
}

// TombstonesKept is how many tombstones the last compaction kept: a
// later horizon may remove them.
func (p *PartitionFSM) TombstonesKept() int64 { return p.tombstonesKept.Load() }

// CompactionHorizon is the tombstone horizon of the current target.
func (p *PartitionFSM) CompactionHorizon() int64 { return p.compactHorizon.Load() }

// errStaleSnapshot fails a snapshot whose segments compaction replaced
// after it was taken; raft takes another later.
var errStaleSnapshot = errors.New("segments compacted since the snapshot was taken")

// RunCompaction compacts the replica's closed segments to the current
// target. It runs on a cleaner goroutine, beside Apply and reads: the log
// swaps each rewritten segment in on its own.
//
// pace, if set, is told of the bytes read as the pass goes, and may sleep
// to throttle it.
func (p *PartitionFSM) RunCompaction(pace func(int)) (partition.CompactStats, error) {
	target, horizon := p.compactTarget.Load(), p.compactHorizon.Load()
	// The leader's segments decided the target; this replica's active
	// segment may begin below it.
	if err := p.log.RollBefore(target); err != nil {
		return partition.CompactStats{}, fmt.Errorf("partition %s: roll before compaction: %w", p.dir, err)
	}
	start := p.log.StartOffset()
	inAborted := abortedIndex(p.AbortedTxns(start, target))
	restores := p.restores.Load()
	// Below cleanedTo the log is compacted already: each key is there at
	// most once. Only the part above needs reading for keys; a record
	// below survives unless its key comes again above. That gives what
	// reading the whole log would, whatever cleanedTo is on this replica.
	from := max(start, p.cleanedTo.Load())
	latest := map[[16]byte]int64{}
	var tombstones int64
	err := p.log.ScanRecords(from, target, inAborted, pace, func(_ partition.BatchHeader, r partition.CompactRecord) {
		if r.Key != nil {
			latest[keyHash(r.Key)] = r.Offset
		}
	})
	if err != nil {
		return partition.CompactStats{}, fmt.Errorf("partition %s: compaction scan: %w", p.dir, err)
	}
	st, err := p.log.Compact(partition.Compaction{
		UpTo: target,
		Pace: pace,
		Batch: func(h partition.BatchHeader) partition.BatchAction {
			if inAborted(h) {
				return partition.DropBatch
			}
			return partition.FilterRecords
		},
		// A record with a null key has nothing to be the latest of: Kafka's
		// cleaner drops them too (they cannot be produced to a compacted
		// topic, but a topic may have become one).
		Record: func(_ partition.BatchHeader, r partition.CompactRecord) bool {
			if r.Key == nil {
				return false
			}
			last, later := latest[keyHash(r.Key)]
			if r.Offset < from {
				later = later && last > r.Offset
			} else {
				later = last != r.Offset
			}
			keep := !later && !(r.Tombstone && r.Timestamp < horizon)
			if keep && r.Tombstone {
				tombstones++
			}
			return keep
		},
		// A commit marker tells a reader nothing once the records it
		// commits are below the last stable offset (the partition's
		// transaction state lives in the FSM, not in the log), so it goes
		// as a tombstone does, after delete.retention.ms. Abort markers
		// stay: a read_committed fetch's aborted-transactions list sends
		// readers looking for them.
		Marker: func(h partition.BatchHeader, commit bool) bool {
			return !commit || h.MaxTimestamp >= horizon
		},
	})
	if err != nil {
		return st, fmt.Errorf("partition %s: compaction: %w", p.dir, err)
	}
	// A Restore meanwhile replaced the log this pass looked at.
	if st.Skipped == 0 && p.restores.Load() == restores {
		p.cleanedTo.Store(st.CleanedTo)
		p.cleanedHorizon.Store(horizon)
		p.tombstonesKept.Store(tombstones)
	}
	return st, nil
}

// abortedIndex answers whether a data batch belongs to one of the aborted
// transactions: per producer, their offset ranges in order.
func abortedIndex(aborted []AbortedTxn) func(partition.BatchHeader) bool {
	byPID := map[int64][]AbortedTxn{}
	for _, a := range aborted {
		byPID[a.ProducerID] = append(byPID[a.ProducerID], a)
	}
	for _, list := range byPID {
		sort.Slice(list, func(i, j int) bool { return list[i].FirstOffset < list[j].FirstOffset })
	}
	return func(h partition.BatchHeader) bool {
		if !h.IsTransactional() || h.IsControl() {
			return false
		}
		list := byPID[h.ProducerID]
		// The last transaction of the producer that began at or before
		// the batch is the only one that can hold it.
		i := sort.Search(len(list), func(i int) bool { return list[i].FirstOffset > h.BaseOffset }) - 1
		return i >= 0 && h.BaseOffset <= list[i].LastOffset
	}
}

func keyHash(k []byte) [16]byte {
	sum := sha256.Sum256(k)
	return [16]byte(sum[:16])
}

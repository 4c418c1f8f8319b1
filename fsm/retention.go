package fsm

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/hashicorp/raft"
)

// TrimPrefix is the Raft entry that moves the partition's log start offset
// to offset (retention, DeleteRecords). The leader picks the offset once,
// from its own clock and segments; every replica moves its start to the
// same offset at the same point of the log, whatever its segments look
// like, and deletes the segments wholly below it.
func TrimPrefix(offset int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{cmdTrimPrefix}, uint64(offset))
}

// TrimResult is what Apply returns for a TrimPrefix entry: the log start
// offset afterwards.
type TrimResult struct{ StartOffset int64 }

// applyTrim moves the start offset. An offset beyond the log end stops
// at the end: the proposer checked it against the high watermark, and
// every entry before this one has been applied, so the end is at least
// there. The new start is made durable in the checkpoint before any
// segment is deleted, so a restart never replays produce entries into a
// log that lost the segments under them.
func (p *PartitionFSM) applyTrim(l *raft.Log) *TrimResult {
	if len(l.Data) != 9 {
		panic(fmt.Sprintf("partition %s: trim entry of %d bytes", p.dir, len(l.Data)))
	}
	off := min(int64(binary.BigEndian.Uint64(l.Data[1:])), p.log.NextOffset())
	p.applied = l.Index
	if off <= p.log.StartOffset() {
		return &TrimResult{StartOffset: p.log.StartOffset()}
	}
	if err := p.log.Sync(); err != nil {
		panic(fmt.Sprintf("partition %s: sync before trimming to %d: %v", p.dir, off, err))
	}
	p.pruneAborted(off)
	m := p.currentManifest()
	m.StartOffset = off
	if err := p.writeCheckpoint(m); err != nil {
		panic(fmt.Sprintf("partition %s: checkpoint before trimming to %d: %v", p.dir, off, err))
	}
	if err := p.advanceStart(off); err != nil {
		panic(err.Error())
	}
	p.updateLSO()
	p.wake()
	return &TrimResult{StartOffset: off}
}

func (p *PartitionFSM) advanceStart(off int64) error {
	n, err := p.log.AdvanceStart(off)
	if err != nil {
		return fmt.Errorf("partition %s: move start to %d: %w", p.dir, off, err)
	}
	if n > 0 {
		p.logger.Debug("log start moved", "start", off, "segments_deleted", n)
	}
	return nil
}

// pruneAborted forgets the aborted transactions that end below the start
// offset: no read can reach them any more.
func (p *PartitionFSM) pruneAborted(start int64) {
	p.txnMu.Lock()
	defer p.txnMu.Unlock()
	i := sort.Search(len(p.aborted), func(i int) bool { return p.aborted[i].LastOffset >= start })
	if i > 0 {
		p.aborted = append([]AbortedTxn(nil), p.aborted[i:]...)
	}
}

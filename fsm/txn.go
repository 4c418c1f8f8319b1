package fsm

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/partition"
)

// Marker ends a producer's transaction on one partition: committed as a
// Raft entry of its own, it appends the control batch (Kafka's
// transaction marker) that commits or aborts what the producer wrote
// there since its last marker.
type Marker struct {
	ProducerID int64
	// Epoch is the producer epoch the marker is written with. With
	// transaction version 2 the coordinator bumps the epoch as the
	// transaction ends, so the marker fences every batch of the ending
	// transaction that arrives late.
	Epoch  int16
	Commit bool
	// TV2 marks a marker of transaction version 2, whose epoch is always
	// past the epoch its transaction wrote with. A TV2 marker whose epoch
	// is not past the producer's is late (a duplicate, or a retry that
	// lost the race with the first attempt): its transaction has ended
	// here already, and were it applied, it would end the producer's next
	// transaction half way through.
	TV2              bool
	CoordinatorEpoch int32
	// Timestamp is the control record's time, chosen by the leader that
	// proposes the marker so every replica writes the same bytes.
	Timestamp int64
}

// MarkerResult is what Apply returns for a marker command.
type MarkerResult struct {
	// Offset is the control batch's offset, -1 when it was refused.
	Offset int64
	// Err is a Kafka error (kerr) when the marker was refused.
	Err error
}

const markerSize = 1 + 8 + 2 + 1 + 4 + 8

// EncodeMarker is the Raft entry of a marker command.
func EncodeMarker(m Marker) []byte {
	b := make([]byte, 0, markerSize)
	b = append(b, cmdMarker)
	b = binary.BigEndian.AppendUint64(b, uint64(m.ProducerID))
	b = binary.BigEndian.AppendUint16(b, uint16(m.Epoch))
	var flags byte
	if m.Commit {
		flags |= markerCommit
	}
	if m.TV2 {
		flags |= markerTV2
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint32(b, uint32(m.CoordinatorEpoch))
	return binary.BigEndian.AppendUint64(b, uint64(m.Timestamp))
}

// Marker flag bits.
const (
	markerCommit byte = 1 << iota
	markerTV2
)

func decodeMarker(data []byte) (Marker, error) {
	if len(data) != markerSize || data[0] != cmdMarker || data[11]&^(markerCommit|markerTV2) != 0 {
		return Marker{}, fmt.Errorf("%w: marker of %d bytes", errBadCommand, len(data))
	}
	be := binary.BigEndian
	return Marker{
		ProducerID:       int64(be.Uint64(data[1:])),
		Epoch:            int16(be.Uint16(data[9:])),
		Commit:           data[11]&markerCommit != 0,
		TV2:              data[11]&markerTV2 != 0,
		CoordinatorEpoch: int32(be.Uint32(data[12:])),
		Timestamp:        int64(be.Uint64(data[16:])),
	}, nil
}

// openTxn is a producer's transaction that has written to this partition
// and has no marker yet: read_committed readers stop at its first offset.
type openTxn struct {
	ProducerID  int64 `json:"producer_id"`
	Epoch       int16 `json:"epoch"`
	FirstOffset int64 `json:"first_offset"`
}

// AbortedTxn is an aborted transaction's span on this partition, as Fetch
// reports it to read_committed consumers: from its first record to its
// abort marker.
type AbortedTxn struct {
	ProducerID  int64 `json:"producer_id"`
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
}

// checkTxn applies the transactional rules to a data batch that passed the
// idempotence check: a producer writes either inside a transaction or
// outside one, and a transaction is written in one epoch.
func (p *PartitionFSM) checkTxn(h partition.BatchHeader) error {
	if h.ProducerID < 0 {
		if h.IsTransactional() {
			return kerr.InvalidRecord
		}
		return nil
	}
	o := p.open[h.ProducerID]
	switch {
	case o == nil:
		return nil
	case !h.IsTransactional():
		return kerr.InvalidTxnState
	case o.Epoch != h.ProducerEpoch:
		// The open transaction's marker has not been written: the
		// coordinator is still completing it.
		return kerr.InvalidTxnState
	}
	return nil
}

// noteTxnBatch records that a transactional batch was appended at base.
func (p *PartitionFSM) noteTxnBatch(h partition.BatchHeader, base int64) {
	if !h.IsTransactional() || p.open[h.ProducerID] != nil {
		return
	}
	p.openMu.Lock()
	p.open[h.ProducerID] = &openTxn{ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, FirstOffset: base}
	p.openMu.Unlock()
}

// HasOpenTxn reports whether the producer has a transaction of this epoch
// open on the partition: its next batch continues it, and the leader need
// not ask the coordinator whether the partition is in the transaction.
func (p *PartitionFSM) HasOpenTxn(pid int64, epoch int16) bool {
	p.openMu.RLock()
	defer p.openMu.RUnlock()
	o := p.open[pid]
	return o != nil && o.Epoch == epoch
}

// applyMarker appends m's control batch and ends the producer's open
// transaction here, if it has one. A marker from an older epoch than the
// producer's is refused: its transaction was already ended by a newer
// one; so is a TV2 marker that is not newer (see Marker.TV2).
func (p *PartitionFSM) applyMarker(m Marker, term int32) *MarkerResult {
	st := p.producers[m.ProducerID]
	if st != nil && (m.Epoch < st.Epoch || (m.TV2 && m.Epoch == st.Epoch)) {
		return &MarkerResult{Offset: -1, Err: kerr.InvalidProducerEpoch}
	}
	base := p.log.NextOffset()
	batch := partition.EncodeControlBatch(base, m.ProducerID, m.Epoch, m.Commit, m.CoordinatorEpoch, m.Timestamp)
	partition.SetLeaderEpoch(batch, term)
	if err := p.log.Append(batch); err != nil {
		panic(fmt.Sprintf("partition %s: append marker at %d: %v", p.dir, base, err))
	}
	p.noteEpoch(term, base)
	if st == nil {
		st = &producerState{ID: m.ProducerID, Epoch: m.Epoch}
		p.producers[m.ProducerID] = st
	} else if m.Epoch != st.Epoch {
		// A new epoch starts its sequences at zero.
		st.Epoch, st.Batches = m.Epoch, nil
	}
	st.LastTimestamp = max(st.LastTimestamp, m.Timestamp)
	if o := p.open[m.ProducerID]; o != nil {
		p.openMu.Lock()
		delete(p.open, m.ProducerID)
		p.openMu.Unlock()
		if !m.Commit {
			p.txnMu.Lock()
			p.aborted = append(p.aborted, AbortedTxn{ProducerID: m.ProducerID, FirstOffset: o.FirstOffset, LastOffset: base})
			p.txnMu.Unlock()
		}
	}
	return &MarkerResult{Offset: base}
}

// updateLSO sets the last stable offset after an apply: the first offset
// of the oldest open transaction, or the high watermark when none is
// open.
func (p *PartitionFSM) updateLSO() {
	lso := p.log.NextOffset()
	for _, o := range p.open {
		lso = min(lso, o.FirstOffset)
	}
	// DeleteRecords may move the start past an open transaction's first
	// offset; nothing below the start can be read, stable or not.
	p.lso.Store(max(lso, p.log.StartOffset()))
}

// LastStableOffset is the offset below which every transaction has ended:
// read_committed consumers read no further.
func (p *PartitionFSM) LastStableOffset() int64 { return p.lso.Load() }

// ReadCommitted is Read for read_committed consumers: never past the last
// stable offset.
func (p *PartitionFSM) ReadCommitted(offset int64, maxBytes int) ([]byte, error) {
	return p.log.Read(offset, maxBytes, p.lso.Load())
}

// AbortedTxns lists the aborted transactions that overlap [from, to), in
// the order their markers were written.
func (p *PartitionFSM) AbortedTxns(from, to int64) []AbortedTxn {
	p.txnMu.RLock()
	defer p.txnMu.RUnlock()
	// Markers are appended in offset order, so LastOffset ascends.
	i := sort.Search(len(p.aborted), func(i int) bool { return p.aborted[i].LastOffset >= from })
	var out []AbortedTxn
	for _, a := range p.aborted[i:] {
		if a.FirstOffset < to {
			out = append(out, a)
		}
	}
	return out
}

// sortedOpen returns the open transactions in producer id order, so
// checkpoints and snapshots are deterministic.
func sortedOpen(m map[int64]*openTxn) []openTxn {
	out := make([]openTxn, 0, len(m))
	for _, o := range m {
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProducerID < out[j].ProducerID })
	return out
}

package fsm

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"github.com/quirelog/quire/partition"
	"github.com/twmb/franz-go/pkg/kerr"
)

// maxCachedBatches is how many recent batches per producer are remembered
// for duplicate detection; Kafka producers keep at most 5 in flight.
const maxCachedBatches = 5

// cachedBatch is what the idempotence check remembers of an appended batch.
type cachedBatch struct {
	FirstSeq   int32 `json:"first_seq"`
	LastSeq    int32 `json:"last_seq"`
	BaseOffset int64 `json:"base_offset"`
}

// producerState is the idempotent-producer state of one producer id.
type producerState struct {
	ID      int64         `json:"id"`
	Epoch   int16         `json:"epoch"`
	Batches []cachedBatch `json:"batches"` // oldest first
	// LastTimestamp is the newest batch or marker time of the producer
	// here, what expiry goes by (as Kafka's producer.id.expiration.ms
	// does); 0 in state written before it was kept, which never expires.
	LastTimestamp int64 `json:"last_timestamp,omitempty"`
}

// seqCheck is the outcome of the idempotence check for one batch.
type seqCheck struct {
	err       error
	duplicate bool
	dupOffset int64
}

// addSeq adds delta to a sequence number; sequences wrap at MaxInt32.
func addSeq(seq int32, delta int32) int32 {
	return int32((int64(seq) + int64(delta)) % (int64(math.MaxInt32) + 1))
}

// checkSequence applies Kafka's idempotent-producer rules to a batch header
// against the producer's state (nil if the producer is unknown).
func checkSequence(st *producerState, h partition.BatchHeader) seqCheck {
	if st == nil {
		// Unknown producer (new, or its state expired): accept. There is
		// nothing we could be duplicating.
		return seqCheck{}
	}
	switch {
	case h.ProducerEpoch < st.Epoch:
		return seqCheck{err: kerr.InvalidProducerEpoch}
	case h.BaseSequence < 0:
		// No sequence: a coordinator wrote it for the producer (its
		// transactional offset commits); only the epoch is checked.
		return seqCheck{}
	case h.ProducerEpoch > st.Epoch:
		if h.BaseSequence != 0 {
			return seqCheck{err: kerr.OutOfOrderSequenceNumber}
		}
		return seqCheck{}
	}
	lastSeq := addSeq(h.BaseSequence, h.LastOffsetDelta)
	for _, b := range st.Batches {
		if b.FirstSeq == h.BaseSequence && b.LastSeq == lastSeq {
			return seqCheck{duplicate: true, dupOffset: b.BaseOffset}
		}
	}
	if n := len(st.Batches); n == 0 && h.BaseSequence != 0 {
		// The epoch is known but no sequence of it: only a marker (or a
		// coordinator's write) has been appended in it, as after every
		// end of a transaction of version 2, whose marker carries the
		// epoch the next transaction writes with. Its first batch is
		// sequence 0; a later one must not pass it (when the first was
		// refused, say by its transaction check), as Kafka rules too.
		return seqCheck{err: kerr.OutOfOrderSequenceNumber}
	} else if n > 0 && h.BaseSequence != addSeq(st.Batches[n-1].LastSeq, 1) {
		return seqCheck{err: kerr.OutOfOrderSequenceNumber}
	}
	return seqCheck{}
}

// record updates the producer's state after its batch was appended.
func (st *producerState) record(h partition.BatchHeader, baseOffset int64) {
	if h.ProducerEpoch != st.Epoch {
		st.Epoch = h.ProducerEpoch
		st.Batches = st.Batches[:0]
	}
	st.LastTimestamp = max(st.LastTimestamp, h.MaxTimestamp)
	if h.BaseSequence < 0 {
		return
	}
	st.Batches = append(st.Batches, cachedBatch{
		FirstSeq:   h.BaseSequence,
		LastSeq:    addSeq(h.BaseSequence, h.LastOffsetDelta),
		BaseOffset: baseOffset,
	})
	if len(st.Batches) > maxCachedBatches {
		st.Batches = append(st.Batches[:0], st.Batches[len(st.Batches)-maxCachedBatches:]...)
	}
}

// sortedProducers returns a deep copy of the producer states in id order,
// so snapshots are deterministic.
func sortedProducers(m map[int64]*producerState) []producerState {
	out := make([]producerState, 0, len(m))
	for _, st := range m {
		c := *st
		c.Batches = append([]cachedBatch(nil), st.Batches...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ExpireProducers is the Raft entry that forgets producers whose last
// write here is older than before (a time in milliseconds the proposing
// leader chose), unless a transaction of theirs is open. Expiry is an
// entry, not a clock read in Apply, so that every replica forgets the
// same producers at the same point of the log.
func ExpireProducers(before int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{cmdExpireProducers}, uint64(before))
}

// ExpireResult is what Apply returns for an expiry entry.
type ExpireResult struct{ Expired int }

func (p *PartitionFSM) applyExpire(data []byte) *ExpireResult {
	if len(data) != 9 {
		panic(fmt.Sprintf("partition %s: expiry entry of %d bytes", p.dir, len(data)))
	}
	before := int64(binary.BigEndian.Uint64(data[1:]))
	res := &ExpireResult{}
	for id, st := range p.producers {
		if st.LastTimestamp != 0 && st.LastTimestamp < before && p.open[id] == nil {
			delete(p.producers, id)
			res.Expired++
		}
	}
	p.producerCount.Store(int64(len(p.producers)))
	return res
}

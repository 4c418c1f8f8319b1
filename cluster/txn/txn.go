package txn

import (
	"context"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// locked finds the state of a known transactional id and locks it; the
// caller unlocks m.mu.
func (c *Coordinator) locked(ctx context.Context, id string) (*shard, *txnMeta, error) {
	s, err := c.shardFor(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	m := s.get(id)
	if m == nil {
		return nil, nil, kerr.InvalidProducerIDMapping
	}
	m.mu.Lock()
	if s.Dead() {
		m.mu.Unlock()
		return nil, nil, kerr.NotCoordinator
	}
	return s, m, nil
}

// InitProducerID gives the transactional id its producer id and a new
// epoch, which fences every older producer instance with it. A
// transaction the id left open is aborted first: the answer is then
// CONCURRENT_TRANSACTIONS, which the client retries until the abort's
// markers are written. pid and epoch, when not -1 (v3+), are what the
// asking producer last had; an instance older than the current one is
// refused with PRODUCER_FENCED.
func (c *Coordinator) InitProducerID(ctx context.Context, id string, timeoutMs int32, pid int64, epoch int16) (int64, int16, error) {
	if timeoutMs <= 0 || time.Duration(timeoutMs)*time.Millisecond > c.cfg.MaxTimeout {
		return -1, -1, kerr.InvalidTransactionTimeout
	}
	s, err := c.shardFor(ctx, id)
	if err != nil {
		return -1, -1, err
	}
	m := s.put(&txnMeta{txnState: txnState{id: id, pid: -1, epoch: -1, prevPID: -1, start: -1}})
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.Dead() {
		return -1, -1, kerr.NotCoordinator
	}
	if pid >= 0 && m.pid >= 0 && !(pid == m.pid && epoch == m.epoch) {
		return -1, -1, kerr.ProducerFenced
	}
	var next txnState
	switch {
	case m.pid < 0:
		newPID, err := c.cluster.NextProducerID(ctx)
		if err != nil {
			return -1, -1, err
		}
		next = txnState{id: id, pid: newPID, epoch: 0, prevPID: -1, timeoutMs: timeoutMs,
			state: stateOf(kmsg.TransactionStateEmpty), start: -1}
	case m.state.preparing() || m.completing:
		return -1, -1, kerr.ConcurrentTransactions
	case kmsg.TransactionState(m.state) == kmsg.TransactionStateOngoing:
		// The producer restarted mid-transaction: abort what it left,
		// with a new epoch, so that its late batches are fenced.
		next = m.txnState
		next.epoch = fenceEpoch(m.epoch)
		next.state = stateOf(kmsg.TransactionStatePrepareAbort)
		if err := s.write(ctx, next); err != nil {
			return -1, -1, err
		}
		m.txnState = next
		s.complete(m)
		return -1, -1, kerr.ConcurrentTransactions
	default:
		next = m.txnState
		if m.epoch >= math.MaxInt16-1 {
			// The epoch would overflow: a new producer id starts over.
			newPID, err := c.cluster.NextProducerID(ctx)
			if err != nil {
				return -1, -1, err
			}
			next.prevPID, next.pid, next.epoch = m.pid, newPID, 0
		} else {
			next.epoch = m.epoch + 1
		}
		next.timeoutMs, next.state, next.parts, next.start = timeoutMs, stateOf(kmsg.TransactionStateEmpty), nil, -1
	}
	if err := s.write(ctx, next); err != nil {
		return -1, -1, err
	}
	m.txnState = next
	return m.pid, m.epoch, nil
}

// fenceEpoch is the epoch an abort that fences the producer writes its
// markers with: one more, unless that would overflow.
func fenceEpoch(e int16) int16 {
	if e == math.MaxInt16 {
		return e
	}
	return e + 1
}

// bumpForEnd moves next to the epoch a transaction version 2 end gives
// the producer. Where the epochs run out, the producer moves to a new
// producer id at epoch 0 and the old one goes to prevPID; the markers
// still close the old id's transaction (see markerProducer).
func (c *Coordinator) bumpForEnd(ctx context.Context, next *txnState) error {
	if next.epoch < math.MaxInt16-1 {
		next.epoch++
		return nil
	}
	newPID, err := c.cluster.NextProducerID(ctx)
	if err != nil {
		return err
	}
	next.prevPID, next.pid, next.epoch = next.pid, newPID, 0
	return nil
}

// retriedEnd reports whether an EndTxn from pid and epoch is a retry of
// the transaction version 2 end that moved m to its current epoch.
func retriedEnd(m *txnMeta, pid int64, epoch int16) bool {
	if pid == m.pid && epoch == m.epoch-1 {
		return true
	}
	return m.tv2 && m.epoch == 0 && pid == m.prevPID && pid >= 0 && epoch >= math.MaxInt16-1
}

// checkProducer applies the rules every transactional request shares:
// the producer id must be the transaction's, and its epoch current.
func checkProducer(m *txnMeta, pid int64, epoch int16) error {
	switch {
	case m.pid < 0 || m.pid != pid:
		return kerr.InvalidProducerIDMapping
	case epoch != m.epoch || epoch == math.MaxInt16:
		// The last epoch is for markers only (see fenceEpoch): a
		// producer fenced into it must start over with a new id.
		return kerr.ProducerFenced
	case m.state.preparing() || m.completing:
		return kerr.ConcurrentTransactions
	}
	return nil
}

// AddPartitions makes parts part of the producer's transaction, starting
// the transaction if none is under way. Partitions of unknown topics fail
// the whole request: their errors are in the map, and the other
// partitions are not added.
func (c *Coordinator) AddPartitions(ctx context.Context, id string, pid int64, epoch int16, parts []TopicPartition) (map[TopicPartition]error, error) {
	s, m, err := c.locked(ctx, id)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if err := checkProducer(m, pid, epoch); err != nil {
		return nil, err
	}
	var unknown map[TopicPartition]error
	for _, tp := range parts {
		if tp.Partition < 0 || tp.Partition >= c.cluster.PartitionCount(tp.Topic) {
			if unknown == nil {
				unknown = make(map[TopicPartition]error)
			}
			unknown[tp] = kerr.UnknownTopicOrPartition
		}
	}
	if unknown != nil {
		return unknown, nil
	}
	ongoing := kmsg.TransactionState(m.state) == kmsg.TransactionStateOngoing
	next := m.txnState
	if !ongoing {
		next.parts, next.start = nil, c.cfg.Now().UnixMilli()
		next.state = stateOf(kmsg.TransactionStateOngoing)
	}
	next.parts = next.withParts(parts)
	if ongoing && len(next.parts) == len(m.parts) {
		return nil, nil
	}
	if err := s.write(ctx, next); err != nil {
		return nil, err
	}
	m.txnState = next
	return nil, nil
}

// Verify checks, for a partition leader about to append the first batch of
// a transaction, that the producer's current transaction holds the
// partition (KIP-890's verification). A batch that fails it (a late one
// from a transaction already ended, or one never added) is refused, so it
// cannot open a transaction on the partition that no marker would close.
func (c *Coordinator) Verify(ctx context.Context, id string, pid int64, epoch int16, parts []TopicPartition) (map[TopicPartition]error, error) {
	_, m, err := c.locked(ctx, id)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if err := checkProducer(m, pid, epoch); err != nil {
		return nil, err
	}
	var out map[TopicPartition]error
	ongoing := kmsg.TransactionState(m.state) == kmsg.TransactionStateOngoing
	for _, tp := range parts {
		if !ongoing || !m.has(tp) {
			if out == nil {
				out = make(map[TopicPartition]error)
			}
			out[tp] = kerr.InvalidTxnState
		}
	}
	return out, nil
}

// EndTxn decides the producer's transaction: the decision is written
// first, then the markers (in the background; see complete), and the
// answer does not wait for them. With transaction version 2 (tv2) the
// epoch is bumped as the transaction ends, and the new producer id and
// epoch are returned; a retried request from the epoch before is answered
// as the first was.
func (c *Coordinator) EndTxn(ctx context.Context, id string, pid int64, epoch int16, commit, tv2 bool) (int64, int16, error) {
	s, m, err := c.locked(ctx, id)
	if err != nil {
		return -1, -1, err
	}
	defer m.mu.Unlock()
	prepare, done := kmsg.TransactionStatePrepareAbort, kmsg.TransactionStateCompleteAbort
	if commit {
		prepare, done = kmsg.TransactionStatePrepareCommit, kmsg.TransactionStateCompleteCommit
	}
	state := kmsg.TransactionState(m.state)
	if tv2 && retriedEnd(m, pid, epoch) && (state == prepare || state == done) {
		if m.epoch == math.MaxInt16 {
			// A fence took the last epoch; no transaction may use it.
			return -1, -1, kerr.ProducerFenced
		}
		// A retry of the request that bumped the epoch.
		if err := s.confirm(ctx, m); err != nil {
			return -1, -1, err
		}
		return m.pid, m.epoch, nil
	}
	if err := checkProducer(m, pid, epoch); err != nil {
		return -1, -1, err
	}
	next := m.txnState
	next.tv2 = tv2
	switch {
	case state == kmsg.TransactionStateOngoing:
		next.state = stateOf(prepare)
		if tv2 {
			if err := c.bumpForEnd(ctx, &next); err != nil {
				return -1, -1, err
			}
		}
		if err := s.write(ctx, next); err != nil {
			return -1, -1, err
		}
		m.txnState = next
		s.complete(m)
		return m.pid, m.epoch, nil
	case tv2 && !commit:
		// Transaction version 2 lets a producer abort with nothing under
		// way; the epoch moves on all the same.
		if err := c.bumpForEnd(ctx, &next); err != nil {
			return -1, -1, err
		}
		next.state, next.parts, next.start = stateOf(done), nil, -1
		if err := s.write(ctx, next); err != nil {
			return -1, -1, err
		}
		m.txnState = next
		return m.pid, m.epoch, nil
	case state == done && !tv2:
		// A retry of a version 1 end, which keeps the epoch. (Under
		// version 2 a retry carries the epoch before; the current one
		// here means the client believes in a transaction this
		// coordinator never saw: INVALID_TXN_STATE, as in Kafka.)
		if err := s.confirm(ctx, m); err != nil {
			return -1, -1, err
		}
		return m.pid, m.epoch, nil
	}
	return -1, -1, kerr.InvalidTxnState
}

// confirm writes m's state again before an answer that would otherwise
// rest on this node's memory alone. A coordinator paused past its
// leadership wakes with a stale view: it once told a producer its
// commit was done (the last transaction's), while the new coordinator
// had the producer's next transaction open, and aborted it on timeout.
// The write goes through Raft only while this node still leads.
func (s *shard) confirm(ctx context.Context, m *txnMeta) error {
	return s.write(ctx, m.txnState)
}

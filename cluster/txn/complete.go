package txn

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/fsm"
)

// complete finishes a decided transaction in the background: it writes
// the marker on every partition of the transaction, retrying each until
// it is committed, and then records the transaction complete. It stops
// when the shard is dropped; the next leader replays the decision and
// starts over (a marker written twice only appends another). The caller
// holds m.mu, or has m to itself.
func (s *shard) complete(m *txnMeta) {
	if m.completing {
		return
	}
	m.completing = true
	st := m.txnState
	commit := kmsg.TransactionState(st.state) == kmsg.TransactionStatePrepareCommit
	pid, epoch := st.markerProducer()
	marker := fsm.Marker{ProducerID: pid, Epoch: epoch, Commit: commit, TV2: st.tv2,
		CoordinatorEpoch: s.epoch, Timestamp: s.c.cfg.Now().UnixMilli()}
	go func() {
		var wg sync.WaitGroup
		for _, tp := range st.parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.retry(func(ctx context.Context) error { return s.c.cluster.WriteMarker(ctx, tp, marker) }, "marker", st.id, tp)
			}()
		}
		wg.Wait()
		m.mu.Lock()
		defer m.mu.Unlock()
		next := m.txnState
		next.state = stateOf(kmsg.TransactionStateCompleteAbort)
		if commit {
			next.state = stateOf(kmsg.TransactionStateCompleteCommit)
		}
		next.parts, next.start = nil, -1
		if !s.retry(func(ctx context.Context) error { return s.write(ctx, next) }, "completion", st.id, TopicPartition{}) {
			return
		}
		m.txnState = next
		m.completing = false
	}()
}

// retry runs op until it succeeds or the shard is dropped, backing off
// up to two seconds, and reports whether it succeeded.
func (s *shard) retry(op func(ctx context.Context) error, what, id string, tp TopicPartition) bool {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if s.stop.Err() != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(s.stop, writeTimeout)
		err := op(ctx)
		cancel()
		if err == nil {
			return true
		}
		if attempt%20 == 0 {
			s.c.logger.Warn("transaction "+what+" still failing; retrying", "transactional_id", id,
				"topic", tp.Topic, "partition", tp.Partition, "attempts", attempt, "error", err)
		}
		select {
		case <-s.stop.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// abortExpired aborts, with a new epoch that fences the producer, every
// transaction under way for longer than its timeout.
func (s *shard) abortExpired(now time.Time) {
	for _, m := range s.sorted() {
		m.mu.Lock()
		if kmsg.TransactionState(m.state) == kmsg.TransactionStateOngoing && !m.completing && m.start > 0 &&
			now.UnixMilli()-m.start > int64(m.timeoutMs) && !s.Dead() {
			next := m.txnState
			next.epoch = fenceEpoch(m.epoch)
			next.state = stateOf(kmsg.TransactionStatePrepareAbort)
			ctx, cancel := context.WithTimeout(s.stop, writeTimeout)
			if err := s.write(ctx, next); err == nil {
				s.c.logger.Info("transaction timed out; aborting it", "transactional_id", m.id,
					"producer_id", m.pid, "timeout_ms", m.timeoutMs, "partitions", len(m.parts))
				m.txnState = next
				s.complete(m)
			}
			cancel()
		}
		m.mu.Unlock()
	}
}

package txn

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/cluster/statelog"
	"github.com/quirelog/quire/partition"
)

// shard is the state of one __transaction_state partition while this node
// leads it in one epoch. A new epoch gets a new shard, loaded from the
// log: another leader may have written in between.
type shard struct {
	statelog.Loading
	c     *Coordinator
	part  int32
	epoch int32
	log   statelog.Log

	// stop ends the completions this shard runs when it is dropped.
	stop   context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	txns map[string]*txnMeta
}

func newShard(c *Coordinator, part int32, log statelog.Log) *shard {
	stop, cancel := context.WithCancel(context.Background())
	s := &shard{c: c, part: part, epoch: log.Epoch(), log: log, stop: stop, cancel: cancel, txns: make(map[string]*txnMeta)}
	s.Init()
	return s
}

// Epoch is the leader epoch the shard was loaded in.
func (s *shard) Epoch() int32 { return s.epoch }

// Drop ends the shard: requests that hold it answer NOT_COORDINATOR, and
// its completions stop (the next leader finishes them).
func (s *shard) Drop() {
	if s.Kill() {
		s.cancel()
	}
}

// load replays the partition: the latest record per transactional id is
// its state. Transactions their last leader had decided to commit or
// abort are then finished.
func (s *shard) Load() {
	start := time.Now()
	records := 0
	err := statelog.Replay(s.log, func(h partition.BatchHeader, b []byte) {
		if h.IsControl() {
			return
		}
		recs, _, err := partition.DecodeRecords(b)
		if err != nil {
			s.c.logger.Error("transaction state batch unreadable; skipped", "partition", s.part, "offset", h.BaseOffset, "error", err)
			return
		}
		for _, r := range recs {
			id, m, err := decodeRecord(r)
			if err != nil {
				s.c.logger.Warn("transaction state record unreadable; skipped", "partition", s.part, "error", err)
				continue
			}
			records++
			if m == nil {
				delete(s.txns, id)
				continue
			}
			s.txns[id] = m
		}
	})
	if err != nil {
		s.c.logger.Error("transaction state load failed", "partition", s.part, "error", err)
		s.Finish(kerr.CoordinatorNotAvailable)
		return
	}
	pending := 0
	for _, m := range s.txns {
		if m.state.preparing() {
			pending++
			s.complete(m)
		}
	}
	s.c.logger.Info("transaction coordinator loaded", "partition", s.part, "epoch", s.epoch, "transactions", len(s.txns),
		"records", records, "completing", pending, "took", time.Since(start))
	s.Finish(nil)
}

// get returns the transaction's state, nil when the id is unknown.
func (s *shard) get(id string) *txnMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txns[id]
}

// put makes m the state of its id, or returns the state another request
// put first.
func (s *shard) put(m *txnMeta) *txnMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.txns[m.id]; old != nil {
		return old
	}
	s.txns[m.id] = m
	return m
}

// sorted lists the transactions by id.
func (s *shard) sorted() []*txnMeta {
	s.mu.Lock()
	out := make([]*txnMeta, 0, len(s.txns))
	for _, m := range s.txns {
		out = append(out, m)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// writeTimeout bounds one state write.
const writeTimeout = 15 * time.Second

// write commits the transaction's next state through the partition's Raft
// group; the caller holds m.mu and changes m only once this succeeds.
func (s *shard) write(ctx context.Context, next txnState) error {
	if s.Dead() {
		return kerr.NotCoordinator
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	now := s.c.cfg.Now().UnixMilli()
	rec := encodeRecord(next, now)
	_, err := s.log.Append(wctx, partition.EncodeBatch(0, -1, -1, -1, []partition.Record{rec}))
	if err != nil {
		if c := kafkaerr.Code(err); c == kerr.NotLeaderForPartition.Code || c == kerr.NotCoordinator.Code {
			return kerr.NotCoordinator
		}
		if errors.Is(err, context.DeadlineExceeded) || kafkaerr.Code(err) == kerr.RequestTimedOut.Code {
			// The write may still commit: the client retries, and finds
			// the outcome (or this state) then.
			return kerr.ConcurrentTransactions
		}
		return err
	}
	return nil
}

// stateOf is how the transaction's state reads in Kafka's terms.
type stateOf kmsg.TransactionState

func (st stateOf) preparing() bool {
	switch kmsg.TransactionState(st) {
	case kmsg.TransactionStatePrepareCommit, kmsg.TransactionStatePrepareAbort:
		return true
	}
	return false
}

package txn

import (
	"context"
	"regexp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Described is one transactional id as operators see it.
type Described struct {
	ID            string           `json:"transactional_id"`
	ProducerID    int64            `json:"producer_id"`
	ProducerEpoch int16            `json:"producer_epoch"`
	State         string           `json:"state"`
	TimeoutMs     int32            `json:"timeout_ms"`
	StartMs       int64            `json:"start_ms"`
	Partitions    []TopicPartition `json:"partitions"`
	// Partition is the __transaction_state partition that holds it.
	Partition int32 `json:"coordinator_partition"`
}

// Describe reports a transactional id this node coordinates; the error is
// the Kafka error to answer otherwise (NOT_COORDINATOR,
// TRANSACTIONAL_ID_NOT_FOUND, ...).
func (c *Coordinator) Describe(ctx context.Context, id string) (Described, error) {
	s, err := c.shardFor(ctx, id)
	if err != nil {
		return Described{}, err
	}
	m := s.get(id)
	if m == nil {
		return Described{}, errNotFound
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pid < 0 {
		return Described{}, errNotFound
	}
	return describe(s.part, &m.txnState), nil
}

func describe(part int32, st *txnState) Described {
	return Described{ID: st.id, ProducerID: st.pid, ProducerEpoch: st.epoch, State: kmsg.TransactionState(st.state).String(),
		TimeoutMs: st.timeoutMs, StartMs: st.start, Partitions: append([]TopicPartition{}, st.parts...), Partition: part}
}

// Filter selects transactions for List; zero values select everything.
type Filter struct {
	States      []string
	ProducerIDs []int64
	// RunningFor keeps transactions under way for at least this long.
	RunningFor time.Duration
	// IDPattern keeps transactional ids that match it.
	IDPattern *regexp.Regexp
}

// List reports the transactional ids of every __transaction_state
// partition this node leads, by id.
func (c *Coordinator) List(f Filter) []Described {
	now := c.cfg.Now().UnixMilli()
	var out []Described
	for _, s := range c.shards.Sorted() {
		if !s.Loaded() || s.Dead() {
			continue
		}
		for _, m := range s.sorted() {
			m.mu.Lock()
			d := describe(s.part, &m.txnState)
			known := m.pid >= 0
			m.mu.Unlock()
			switch {
			case !known,
				len(f.States) > 0 && !slices.Contains(f.States, d.State),
				len(f.ProducerIDs) > 0 && !slices.Contains(f.ProducerIDs, d.ProducerID),
				f.RunningFor > 0 && (d.StartMs <= 0 || time.Duration(now-d.StartMs)*time.Millisecond < f.RunningFor),
				f.IDPattern != nil && !f.IDPattern.MatchString(d.ID):
				continue
			}
			out = append(out, d)
		}
	}
	return out
}

// OldestOpen is how long the oldest transaction under way on this node's
// partitions has been running, 0 when none is.
func (c *Coordinator) OldestOpen() time.Duration {
	now := c.cfg.Now().UnixMilli()
	var oldest int64
	for _, d := range c.List(Filter{States: []string{"Ongoing", "PrepareCommit", "PrepareAbort"}}) {
		if d.StartMs > 0 {
			oldest = max(oldest, now-d.StartMs)
		}
	}
	return time.Duration(oldest) * time.Millisecond
}

package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TxnInfo is one transactional id as operators see it.
type TxnInfo struct {
	ID            string `json:"transactional_id"`
	Coordinator   int32  `json:"coordinator"`
	State         string `json:"state"`
	ProducerID    int64  `json:"producer_id"`
	ProducerEpoch int16  `json:"producer_epoch"`
	TimeoutMs     int32  `json:"timeout_ms"`
	// StartMs is when the transaction under way began (-1 for none), and
	// RunningMs how long ago that was.
	StartMs    int64    `json:"start_ms"`
	RunningMs  int64    `json:"running_ms,omitempty"`
	Partitions []string `json:"partitions"`
}

// Transactions describes the transactional ids in states (all when
// empty), or only the ids named.
func (a *Admin) Transactions(ctx context.Context, states []string, ids ...string) ([]TxnInfo, error) {
	if len(ids) == 0 {
		listed, err := a.adm.ListTransactions(ctx, nil, states)
		if err != nil && len(listed) == 0 {
			return nil, err
		}
		ids = listed.TransactionalIDs()
		if len(ids) == 0 {
			return []TxnInfo{}, nil
		}
	}
	described, err := a.adm.DescribeTransactions(ctx, ids...)
	var shardErrs *kadm.ShardErrors
	if err != nil && !errors.As(err, &shardErrs) {
		return nil, err
	}
	now := time.Now().UnixMilli()
	out := []TxnInfo{}
	for _, d := range described.Sorted() {
		if d.Err != nil {
			return nil, fmt.Errorf("%s: %w", d.TxnID, d.Err)
		}
		info := TxnInfo{ID: d.TxnID, Coordinator: d.Coordinator, State: d.State, ProducerID: d.ProducerID,
			ProducerEpoch: d.ProducerEpoch, TimeoutMs: d.TimeoutMillis, StartMs: d.StartTimestamp, Partitions: []string{}}
		if d.StartTimestamp > 0 {
			info.RunningMs = now - d.StartTimestamp
		}
		d.Topics.EachPartitions(func(topic string, ps []int32) {
			for _, p := range ps {
				info.Partitions = append(info.Partitions, fmt.Sprintf("%s-%d", topic, p))
			}
		})
		sort.Strings(info.Partitions)
		out = append(out, info)
	}
	return out, nil
}

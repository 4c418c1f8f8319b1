package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/cluster/kafkaapi"
	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/fsm"
)

// retentionLoop has each partition this node leads delete the closed
// segments past its retention.ms or retention.bytes, through a TrimPrefix
// entry in the partition's Raft group: the leader's clock and segments
// pick the new log start offset once, and every replica moves to it.
func (n *Node) retentionLoop() {
	n.loop(n.cfg.RetentionCheckInterval, nil, n.enforceRetention)
}

func (n *Node) enforceRetention() {
	now := time.Now().UnixMilli()
	for _, r := range n.allReplicas() {
		ts := r.settings.Load()
		if !ts.deletePolicy || ts.retentionMs < 0 && ts.retentionBytes < 0 || kafkaapi.IsInternal(r.tp.topic) {
			continue
		}
		if ok, _ := r.leader(); !ok {
			continue
		}
		off := r.fsm.Log().RetentionPoint(now, ts.retentionMs, ts.retentionBytes)
		if off <= r.fsm.StartOffset() {
			continue
		}
		start, err := n.trimPrefix(r, off)
		if err != nil {
			n.logger.Debug("retention not committed", "partition", r.tp.String(), "error", err)
			continue
		}
		n.metrics.retentionTrims.Inc()
		n.logger.Debug("retention moved the log start", "partition", r.tp.String(), "start", start)
	}
}

// trimPrefix commits a new log start offset for a partition this node
// leads and returns the start in force afterwards.
func (n *Node) trimPrefix(r *replica, off int64) (int64, error) {
	r.group.active(n.quietTimeout(), n.cfg.GroupTimeout)
	f := r.group.raft.Apply(fsm.TrimPrefix(off), 10*time.Second)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, kerr.NotLeaderForPartition
		}
		return 0, kafkaerr.Errorf(kerr.RequestTimedOut, "log start not committed: %v", err)
	}
	return f.Response().(*fsm.TrimResult).StartOffset, nil
}

// deleteRecords moves a partition's log start offset to offset (-1: the
// high watermark), as Kafka's DeleteRecords does, and returns the new
// start (the low watermark).
func (n *Node) deleteRecords(ctx context.Context, topic string, partition int32, offset int64) (int64, error) {
	r, err := n.leaderReplica(topic, partition)
	if err != nil {
		return -1, err
	}
	if ts := r.settings.Load(); !ts.deletePolicy {
		return -1, kafkaerr.Errorf(kerr.PolicyViolation, "records of %s cannot be deleted: its cleanup.policy is compact", r.tp)
	}
	hw := r.fsm.HighWatermark()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return -1, kafkaerr.Errorf(kerr.OffsetOutOfRange, "offset %d is not in [0, %d], the partition's high watermark", offset, hw)
	}
	if offset <= r.fsm.StartOffset() {
		return r.fsm.StartOffset(), nil
	}
	type result struct {
		start int64
		err   error
	}
	done := make(chan result, 1)
	go func() {
		start, err := n.trimPrefix(r, offset)
		done <- result{start, err}
	}()
	select {
	case res := <-done:
		return res.start, res.err
	case <-ctx.Done():
		return -1, kafkaerr.Errorf(kerr.RequestTimedOut, "log start not committed in time")
	}
}

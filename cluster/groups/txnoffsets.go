package groups

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/partition"
)

// TxnOffsetCommit v0-5: offsets committed inside a producer's
// transaction. They are written to the group's __consumer_offsets
// partition as a transactional batch of that producer, and stay pending
// (invisible to OffsetFetch, which answers UNSTABLE_OFFSET_COMMIT to
// require_stable fetches) until the transaction's marker reaches the
// partition: a commit marker makes them the group's committed offsets, an
// abort drops them. A producer whose epoch was bumped is fenced by the
// partition itself. From v5 (transaction version 2) the partition is
// added to the transaction here, as AddOffsetsToTxn would.
func (c *Coordinator) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	fill := func(code int16) *kmsg.TxnOffsetCommitResponse {
		for _, t := range req.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	s, err := c.groupShard(ctx, req.Group)
	if err != nil {
		return fill(kafkaerr.Code(err))
	}
	// A producer that names no member (v0-2, or a plain transactional
	// producer) commits whatever state the group is in, as in Kafka.
	simple := req.Generation < 0 && req.MemberID == ""
	g := s.group(req.Group, true)
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	if !simple {
		check := kmsg.NewOffsetCommitRequest()
		check.Version, check.Generation, check.MemberID, check.InstanceID = 9, req.Generation, req.MemberID, req.InstanceID
		if code := g.checkCommit(&check, false); code != 0 {
			return fill(code)
		}
	}
	now := c.cfg.Now().UnixMilli()
	var recs []partition.Record
	var pending []stateRecord
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		count := c.cluster.PartitionCount(t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			o, code := c.commitEntry(count, p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, now)
			rp.ErrorCode = code
			if code == 0 {
				recs = append(recs, partition.Record{Key: offsetKey(g.id, t.Topic, p.Partition), Value: offsetValue(o), Timestamp: now})
				v := kmsg.NewOffsetCommitValue()
				v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = o.offset, o.leaderEpoch, o.metadata, o.timestamp
				pending = append(pending, stateRecord{group: g.id, topic: t.Topic, partition: p.Partition, offset: &v})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(recs) == 0 {
		return resp
	}
	err = nil
	if req.Version >= 5 {
		// Transaction version 2: the partition joins the transaction here.
		err = c.cluster.AddToTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, s.part)
	}
	if err == nil {
		err = s.writeTxn(ctx, req.ProducerID, req.ProducerEpoch, recs)
	}
	if err != nil {
		code := kafkaerr.Code(err)
		if code == kerr.InvalidProducerEpoch.Code && req.Version >= 3 {
			code = kerr.ProducerFenced.Code
		}
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].ErrorCode == 0 {
					resp.Topics[i].Partitions[j].ErrorCode = code
				}
			}
		}
		return resp
	}
	s.mu.Lock()
	s.pending[req.ProducerID] = append(s.pending[req.ProducerID], pending...)
	s.mu.Unlock()
	return resp
}

// writeTxn commits records through the partition's Raft group as a batch
// of the producer's transaction. It carries no sequence number: the
// coordinator writes it, not the producer, and the partition checks only
// the epoch.
func (s *shard) writeTxn(ctx context.Context, pid int64, epoch int16, recs []partition.Record) error {
	if s.Dead() {
		return kerr.NotCoordinator
	}
	if pid < 0 || epoch < 0 {
		return kerr.InvalidProducerIDMapping
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if _, err := s.log.Append(wctx, partition.EncodeTxnBatch(0, pid, epoch, -1, recs)); err != nil {
		if kafkaerr.Code(err) == kerr.NotLeaderForPartition.Code {
			return kerr.NotCoordinator
		}
		return err
	}
	return nil
}

// TxnEnded applies a transaction marker just written to the partition
// this node coordinates: the producer's pending offsets become committed
// (commit) or are dropped (abort). A shard that is not loaded yet finds
// the marker when it replays the partition.
func (c *Coordinator) TxnEnded(ctx context.Context, part int32, pid int64, commit bool) {
	s, err := c.shards.Get(ctx, part)
	if err != nil {
		return
	}
	s.settle(pid, commit)
}

// settle ends the producer's pending offsets on this shard.
func (s *shard) settle(pid int64, commit bool) {
	s.mu.Lock()
	recs := s.pending[pid]
	delete(s.pending, pid)
	s.mu.Unlock()
	if !commit {
		return
	}
	for _, r := range recs {
		g := s.group(r.group, true)
		g.mu.Lock()
		g.offsets[topicPart{r.topic, r.partition}] = committed{
			offset: r.offset.Offset, leaderEpoch: r.offset.LeaderEpoch,
			metadata: r.offset.Metadata, timestamp: r.offset.CommitTimestamp,
		}
		g.mu.Unlock()
	}
}

// unstable reports whether a transaction has offsets pending for the
// group's partition.
func (s *shard) unstable(group string, tp topicPart) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, recs := range s.pending {
		for _, r := range recs {
			if r.group == group && r.topic == tp.topic && r.partition == tp.partition {
				return true
			}
		}
	}
	return false
}

// replayTxn applies a transactional batch or a marker met while loading
// the partition.
func (s *shard) replayTxn(h partition.BatchHeader, b []byte) {
	if h.IsControl() {
		if commit, ok := partition.ControlType(b); ok {
			s.settle(h.ProducerID, commit)
		}
		return
	}
	recs, _, err := partition.DecodeRecords(b)
	if err != nil {
		s.c.logger.Error("transactional offsets unreadable; skipped", "partition", s.part, "offset", h.BaseOffset, "error", err)
		return
	}
	for _, r := range recs {
		rec, err := decodeRecord(r)
		if err != nil || rec.isMeta || rec.isConsumer || rec.tombstone {
			continue
		}
		s.pending[h.ProducerID] = append(s.pending[h.ProducerID], rec)
	}
}

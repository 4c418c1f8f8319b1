package cluster

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListOffsets v1-6: earliest (-2), latest (-1, the high watermark) and by
// timestamp (the first batch whose max timestamp
// is at or after the asked time). Leader epoch fencing from v4.
//
// Not yet: v7's max-timestamp lookup (-3); read_committed distinguishes
// nothing (LSO = high watermark).
func (n *Node) handleListOffsets(req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.Timestamp, rp.Offset, rp.LeaderEpoch = -1, -1, -1
			if err := n.listOffset(t.Topic, p, &rp); err != nil {
				rp.ErrorCode = errCode(err)
				rp.Timestamp, rp.Offset, rp.LeaderEpoch = -1, -1, -1
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (n *Node) listOffset(topic string, p kmsg.ListOffsetsRequestTopicPartition, rp *kmsg.ListOffsetsResponseTopicPartition) error {
	r, err := n.leaderReplica(topic, p.Partition)
	if err != nil {
		return err
	}
	_, epoch := r.leader()
	if err := checkLeaderEpoch(p.CurrentLeaderEpoch, epoch); err != nil {
		return err
	}
	rp.LeaderEpoch = epoch
	switch p.Timestamp {
	case -2:
		rp.Offset = r.fsm.StartOffset()
	case -1:
		rp.Offset = r.fsm.HighWatermark()
	default:
		if p.Timestamp < 0 {
			return kerr.InvalidRequest
		}
		off, ts, found, err := r.fsm.OffsetForTimestamp(p.Timestamp)
		if err != nil {
			return kerr.KafkaStorageError
		}
		if found && off < r.fsm.HighWatermark() {
			rp.Offset, rp.Timestamp = off, ts
		}
	}
	return nil
}

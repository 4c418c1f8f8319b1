package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// ListOffsets v1-11: earliest (-2: the log start offset, which retention
// and DeleteRecords move), latest (-1: the high watermark, or the last
// stable offset for read_committed), by timestamp (the first batch whose
// max timestamp is at or after the asked time, below the same bound; never
// below the log start, so a lookup into a retained or compacted range
// lands on a record that is still there), the record with the largest
// timestamp (-3, v7+, KIP-734: the first such record, found inside its
// batch), and the earliest local offset (-4, v8+: without tiered storage,
// the log start). Quire has no tiered storage: the latest tiered offset
// (-5, v9+) and the earliest pending upload (-6, v11+) are -1, as from a
// Kafka broker with remote storage off. v10's timeout bounds remote
// lookups, which never happen. Leader epoch fencing from v4.
func init() { register(kmsg.ListOffsets, 1, 11, plain(serveListOffsets)) }

func serveListOffsets(_ context.Context, b Broker, req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.Timestamp, rp.Offset, rp.LeaderEpoch = -1, -1, -1
			if err := listOffset(b, t.Topic, req.Version, req.IsolationLevel, p, &rp); err != nil {
				rp.ErrorCode = kafkaerr.Code(err)
				rp.Timestamp, rp.Offset, rp.LeaderEpoch = -1, -1, -1
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func listOffset(b Broker, topic string, version int16, isolation int8, p kmsg.ListOffsetsRequestTopicPartition, rp *kmsg.ListOffsetsResponseTopicPartition) error {
	if (p.Timestamp == -3 && version < 7) || (p.Timestamp == -4 && version < 8) || (p.Timestamp == -5 && version < 9) || (p.Timestamp == -6 && version < 11) {
		return kerr.UnsupportedVersion
	}
	lp, err := b.LeaderPartition(topic, p.Partition)
	if err != nil {
		return err
	}
	epoch := lp.LeaderEpoch()
	if err := checkLeaderEpoch(p.CurrentLeaderEpoch, epoch); err != nil {
		return err
	}
	rp.LeaderEpoch = epoch
	end := lp.HighWatermark()
	if isolation == readCommitted {
		end = lp.LastStableOffset()
	}
	switch p.Timestamp {
	case -2, -4:
		rp.Offset = lp.StartOffset()
	case -5, -6:
		// Nothing is tiered.
	case -1:
		rp.Offset = end
	case -3:
		off, ts, found, err := lp.MaxTimestampOffset(end)
		if err != nil {
			return kerr.KafkaStorageError
		}
		if found {
			rp.Offset, rp.Timestamp = off, ts
		}
	default:
		if p.Timestamp < 0 {
			return kerr.InvalidRequest
		}
		off, ts, found, err := lp.OffsetForTimestamp(p.Timestamp)
		if err != nil {
			return kerr.KafkaStorageError
		}
		if found && off < end {
			rp.Offset, rp.Timestamp = off, ts
		}
	}
	return nil
}

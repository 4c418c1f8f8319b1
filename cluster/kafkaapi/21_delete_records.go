package kafkaapi

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// DeleteRecords v0-2: moves each partition's log start offset (the low
// watermark) forward to the offset given, or to the high watermark for
// -1, through the partition's Raft group, so that every replica agrees on
// it; segments wholly below it are deleted. Offsets beyond the high
// watermark are OFFSET_OUT_OF_RANGE, partitions led elsewhere
// NOT_LEADER_OR_FOLLOWER, compact-only topics POLICY_VIOLATION, as in
// Kafka. Partitions are trimmed concurrently, each waited for within the
// request timeout.
func init() { register(kmsg.DeleteRecords, 0, 2, plain(serveDeleteRecords)) }

func serveDeleteRecords(ctx context.Context, b Broker, req *kmsg.DeleteRecordsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	cctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	var wg sync.WaitGroup
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.DeleteRecordsResponseTopicPartition, len(t.Partitions))
		for i, p := range t.Partitions {
			rp := &rt.Partitions[i]
			*rp = kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition = p.Partition
			wg.Add(1)
			go func(topic string, partition int32, offset int64) {
				defer wg.Done()
				low, err := b.DeleteRecords(cctx, topic, partition, offset)
				rp.LowWatermark, rp.ErrorCode = low, kafkaerr.Code(err)
			}(t.Topic, p.Partition, p.Offset)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	wg.Wait()
	return resp
}

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// OffsetForLeaderEpoch v0-4 (KIP-101/320): for the asked epoch, the largest
// epoch we know that is <= it and the offset where the following epoch
// begins (the high watermark for the current epoch). Clients use it to
// detect log truncation after a leader change. Leader epoch = Raft term.
func init() { register(kmsg.OffsetForLeaderEpoch, 0, 4, plain(serveOffsetForLeaderEpoch)) }

func serveOffsetForLeaderEpoch(_ context.Context, b Broker, req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LeaderEpoch, rp.EndOffset = -1, -1
			lp, err := b.LeaderPartition(t.Topic, p.Partition)
			if err == nil {
				err = checkLeaderEpoch(p.CurrentLeaderEpoch, lp.LeaderEpoch())
			}
			if err != nil {
				rp.ErrorCode = kafkaerr.Code(err)
			} else {
				rp.LeaderEpoch, rp.EndOffset = lp.EndOffsetForEpoch(p.LeaderEpoch)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/txn"
)

// AddPartitionsToTxn v0-3: the producer's form, one transaction per
// request. The partitions join the transaction (starting it if none is
// under way) once that is recorded through the coordinator's Raft group.
// A partition of an unknown topic fails the whole request, as in Kafka:
// it gets UNKNOWN_TOPIC_OR_PARTITION and the others
// OPERATION_NOT_ATTEMPTED.
func init() { register(kmsg.AddPartitionsToTxn, 0, 3, plain(serveAddPartitionsToTxn)) }

func serveAddPartitionsToTxn(ctx context.Context, b Broker, req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	var parts []txn.TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, txn.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	bad, err := b.Txns().AddPartitions(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, parts)
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition = p
			switch {
			case err != nil:
				rp.ErrorCode = fencedCode(err, req.Version >= 2)
			case bad != nil && bad[txn.TopicPartition{Topic: t.Topic, Partition: p}] != nil:
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case bad != nil:
				rp.ErrorCode = kerr.OperationNotAttempted.Code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

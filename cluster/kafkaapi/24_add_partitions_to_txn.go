package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/cluster/txn"
)

// AddPartitionsToTxn v0-4. v0-3 is the producer's form, one transaction
// per request: the partitions join the transaction (starting it if none
// is under way) once that is recorded through the coordinator's Raft
// group. A partition of an unknown topic fails the whole request, as in
// Kafka: it gets UNKNOWN_TOPIC_OR_PARTITION and the others
// OPERATION_NOT_ATTEMPTED. v4 is the brokers' batched form; with
// verify_only it only checks that each partition is in the transaction
// (a partition leader asks before the first transactional batch, see
// Produce).
func init() { register(kmsg.AddPartitionsToTxn, 0, 4, plain(AddPartitionsToTxn)) }

// AddPartitionsToTxn serves the request; the node also serves v4 to peer
// partition leaders over the node port.
func AddPartitionsToTxn(ctx context.Context, b Broker, req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version < 4 {
		topics := make([]kmsg.AddPartitionsToTxnRequestTransactionTopic, len(req.Topics))
		for i, t := range req.Topics {
			topics[i] = kmsg.AddPartitionsToTxnRequestTransactionTopic{Topic: t.Topic, Partitions: t.Partitions}
		}
		one := kmsg.AddPartitionsToTxnRequestTransaction{TransactionalID: req.TransactionalID,
			ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, Topics: topics}
		for _, t := range addToTxn(ctx, b, one, req.Version).Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.AddPartitionsToTxnResponseTopicPartition{Partition: p.Partition, ErrorCode: p.ErrorCode})
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, tx := range req.Transactions {
		resp.Transactions = append(resp.Transactions, addToTxn(ctx, b, tx, req.Version))
	}
	return resp
}

// addToTxn adds (or, with VerifyOnly, checks) one transaction's
// partitions and answers per partition.
func addToTxn(ctx context.Context, b Broker, tx kmsg.AddPartitionsToTxnRequestTransaction, version int16) kmsg.AddPartitionsToTxnResponseTransaction {
	var parts []txn.TopicPartition
	for _, t := range tx.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, txn.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	var bad map[txn.TopicPartition]error
	var err error
	if tx.VerifyOnly {
		bad, err = b.Txns().Verify(ctx, tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, parts)
	} else {
		bad, err = b.Txns().AddPartitions(ctx, tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, parts)
	}
	out := kmsg.NewAddPartitionsToTxnResponseTransaction()
	out.TransactionalID = tx.TransactionalID
	for _, t := range tx.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
			rp.Partition = p
			switch e := bad[txn.TopicPartition{Topic: t.Topic, Partition: p}]; {
			case err != nil:
				rp.ErrorCode = fencedCode(err, version >= 2)
			case e != nil:
				rp.ErrorCode = kafkaerr.Code(e)
			case bad != nil && !tx.VerifyOnly:
				rp.ErrorCode = kerr.OperationNotAttempted.Code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		out.Topics = append(out.Topics, rt)
	}
	return out
}

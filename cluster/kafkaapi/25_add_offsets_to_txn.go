package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/groups"
	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/cluster/txn"
)

// AddOffsetsToTxn v0-3: the group's __consumer_offsets partition joins the
// transaction, so that the commit or abort marker also ends the offsets
// committed with TxnOffsetCommit.
func init() { register(kmsg.AddOffsetsToTxn, 0, 3, plain(serveAddOffsetsToTxn)) }

func serveAddOffsetsToTxn(ctx context.Context, b Broker, req *kmsg.AddOffsetsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	if req.Group == "" || len(req.Group) > groups.MaxGroupIDBytes {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	t, err := b.GroupsTopic(ctx)
	if err != nil {
		resp.ErrorCode = kafkaerr.Code(err)
		return resp
	}
	tp := txn.TopicPartition{Topic: groups.Topic, Partition: groups.PartitionFor(req.Group, int32(len(t.Partitions)))}
	bad, err := b.Txns().AddPartitions(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, []txn.TopicPartition{tp})
	switch {
	case err != nil:
		resp.ErrorCode = fencedCode(err, req.Version >= 2)
	case bad != nil:
		resp.ErrorCode = kafkaerr.Code(bad[tp])
	}
	return resp
}

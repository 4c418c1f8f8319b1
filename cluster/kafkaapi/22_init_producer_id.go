package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// InitProducerID v0-4. Without a transactional id: a fresh producer id
// from a block this node reserved through the metadata group, epoch 0.
// With one: the transaction coordinator's producer id for it and a new
// epoch, which fences older instances (see txn.Coordinator.InitProducerID).
func init() { register(kmsg.InitProducerID, 0, 4, plain(serveInitProducerID)) }

func serveInitProducerID(ctx context.Context, b Broker, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		id, epoch, err := b.Txns().InitProducerID(ctx, *req.TransactionalID, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch)
		if err != nil {
			resp.ErrorCode = fencedCode(err, req.Version >= 4)
			return resp
		}
		resp.ProducerID, resp.ProducerEpoch = id, epoch
		return resp
	}
	id, err := b.NextProducerID(ctx)
	if err != nil {
		resp.ErrorCode = kafkaerr.Code(err)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}

// fencedCode is err's Kafka code, with PRODUCER_FENCED told as
// INVALID_PRODUCER_EPOCH to clients of versions from before it existed
// (KIP-588).
func fencedCode(err error, knowsFenced bool) int16 {
	code := kafkaerr.Code(err)
	if code == kerr.ProducerFenced.Code && !knowsFenced {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// InitProducerID v0-4 for idempotent producers: a fresh producer id from a
// block this node reserved through the metadata group, epoch 0.
//
// Not yet: transactional ids (answered with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED until the transaction coordinator
// exists) and epoch bumps of an existing id (v3+ ProducerID/Epoch).
func init() { register(kmsg.InitProducerID, 0, 4, plain(serveInitProducerID)) }

func serveInitProducerID(ctx context.Context, b Broker, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
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

package cluster

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/fsm"
)

// pidBlockSize is how many producer ids a node reserves per metadata write.
const pidBlockSize = 1000

// InitProducerID v0-4 for idempotent producers: a fresh producer id from a
// block this node reserved through the metadata group, epoch 0.
//
// Not yet: transactional ids (answered with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED until the transaction coordinator
// exists) and epoch bumps of an existing id (v3+ ProducerID/Epoch).
func (n *Node) handleInitProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
	id, err := n.nextProducerID(ctx)
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}

func (n *Node) nextProducerID(ctx context.Context) (int64, error) {
	n.pidMu.Lock()
	defer n.pidMu.Unlock()
	if n.pidNext >= n.pidEnd {
		cctx, cancel := requestTimeout(ctx, 10000)
		defer cancel()
		res, err := n.proposeMeta(cctx, &fsm.AllocPIDsCmd{Count: pidBlockSize})
		if err != nil {
			return 0, metaErr(err)
		}
		n.pidNext, n.pidEnd = res.FirstProducerID, res.FirstProducerID+pidBlockSize
	}
	id := n.pidNext
	n.pidNext++
	return id, nil
}

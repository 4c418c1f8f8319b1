package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn v0-5: commits or aborts the producer's transaction. The answer
// comes once the decision is recorded through the coordinator's Raft
// group; the markers follow in the background, and the producer's next
// transaction waits for them (CONCURRENT_TRANSACTIONS). v5 is transaction
// version 2: the epoch is bumped as the transaction ends, and the answer
// carries the producer id and epoch of the next one.
func init() { register(kmsg.EndTxn, 0, 5, plain(serveEndTxn)) }

func serveEndTxn(ctx context.Context, b Broker, req *kmsg.EndTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	pid, epoch, err := b.Txns().EndTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, req.Version >= 5)
	if err != nil {
		resp.ErrorCode = fencedCode(err, req.Version >= 2)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = pid, epoch
	return resp
}

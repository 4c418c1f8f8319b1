package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TxnOffsetCommit v0-5: offsets committed inside a transaction, pending
// until its marker (see groups.Coordinator.TxnOffsetCommit).
func init() { register(kmsg.TxnOffsetCommit, 0, 5, plain(serveTxnOffsetCommit)) }

func serveTxnOffsetCommit(ctx context.Context, b Broker, req *kmsg.TxnOffsetCommitRequest) kmsg.Response {
	return b.Groups().TxnOffsetCommit(ctx, req)
}

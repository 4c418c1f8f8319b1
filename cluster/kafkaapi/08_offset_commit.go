package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit v0-9: acknowledged once committed through the group's
// __consumer_offsets partition.
//
// Not yet: retention_time_ms (v2-4) is ignored, as Kafka 2.1+ ignores it.
func init() { register(kmsg.OffsetCommit, 0, 9, plain(offsetCommit)) }

func offsetCommit(ctx context.Context, b Broker, req *kmsg.OffsetCommitRequest) kmsg.Response {
	return b.Groups().OffsetCommit(ctx, req)
}

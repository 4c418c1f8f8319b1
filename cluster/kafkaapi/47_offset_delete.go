package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetDelete v0: a group's commits for topics it is not subscribed to.
func init() { register(kmsg.OffsetDelete, 0, 0, plain(offsetDelete)) }

func offsetDelete(ctx context.Context, b Broker, req *kmsg.OffsetDeleteRequest) kmsg.Response {
	return b.Groups().OffsetDelete(ctx, req)
}

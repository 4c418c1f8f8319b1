package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetFetch v0-9; v8+ asks for several groups at once.
//
// Not yet: require_stable (v7+) has nothing to wait for until
// transactions exist.
func init() { register(kmsg.OffsetFetch, 0, 9, plain(offsetFetch)) }

func offsetFetch(ctx context.Context, b Broker, req *kmsg.OffsetFetchRequest) kmsg.Response {
	return b.Groups().OffsetFetch(ctx, req)
}

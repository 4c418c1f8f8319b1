package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ConsumerGroupDescribe v0-1: a next-generation consumer group's epochs,
// assignor, and each member's current and target assignment.
func init() { register(kmsg.ConsumerGroupDescribe, 0, 1, plain(consumerGroupDescribe)) }

func consumerGroupDescribe(ctx context.Context, b Broker, req *kmsg.ConsumerGroupDescribeRequest) kmsg.Response {
	return b.Groups().ConsumerGroupDescribe(ctx, req)
}

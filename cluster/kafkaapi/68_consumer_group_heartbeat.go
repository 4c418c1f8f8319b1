package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/transport/kafka"
)

// ConsumerGroupHeartbeat v0-1: the next-generation consumer group
// protocol (KIP-848), where the coordinator assigns partitions and each
// member reconciles through its heartbeats (see package groups).
func init() { register(kmsg.ConsumerGroupHeartbeat, 0, 1, withConn(consumerGroupHeartbeat)) }

func consumerGroupHeartbeat(ctx context.Context, b Broker, c *kafka.ConnInfo, req *kmsg.ConsumerGroupHeartbeatRequest) kmsg.Response {
	return b.Groups().ConsumerGroupHeartbeat(ctx, groupClient(c), req)
}

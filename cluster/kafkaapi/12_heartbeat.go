package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat v0-4: keeps a classic member's session.
func init() { register(kmsg.Heartbeat, 0, 4, plain(heartbeat)) }

func heartbeat(ctx context.Context, b Broker, req *kmsg.HeartbeatRequest) kmsg.Response {
	return b.Groups().Heartbeat(ctx, req)
}

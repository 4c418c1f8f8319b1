package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup v0-5; v3+ removes a batch of members, by member or
// instance id.
func init() { register(kmsg.LeaveGroup, 0, 5, plain(leaveGroup)) }

func leaveGroup(ctx context.Context, b Broker, req *kmsg.LeaveGroupRequest) kmsg.Response {
	return b.Groups().LeaveGroup(ctx, req)
}

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup v0-5: the leader hands in the assignment, which is written
// through Raft before the members get their shares.
func init() { register(kmsg.SyncGroup, 0, 5, plain(syncGroup)) }

func syncGroup(ctx context.Context, b Broker, req *kmsg.SyncGroupRequest) kmsg.Response {
	return b.Groups().SyncGroup(ctx, req)
}
